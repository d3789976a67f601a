package unmount

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"mounttop/unmount/revoke"
)

// defaultRevoker is the ptrace revoker of unmount/revoke: it seizes every
// thread of the holder, injects dup3(2) of a placeholder (or close(2)) /
// mmap(2) PROT_NONE / fchdir(2) into an empty directory on no mounted tree
// and lets the process run on (DESIGN.md, revoke). The tracing runs in a
// tracer process of its own (revoke.Tracer), started by the first revoke,
// so that a holder inside an injected syscall is restored even if mounttop
// dies meanwhile. The tracer process writes what it does to journal j
// (nil: nowhere), also after mounttop is gone.
func defaultRevoker(j *Journal) *ptraceRevoker {
	p := &ptraceRevoker{restored: map[int]Restore{}}
	opts := []revoke.Option{revoke.Restored(p.restore)}
	if j != nil {
		opts = append(opts, revoke.TracerLog(j.f))
	}
	p.t = revoke.NewTracer(opts...)
	return p
}

type ptraceRevoker struct {
	t *revoke.Tracer

	mu       sync.Mutex
	restored map[int]Restore // pid -> its late restore, until taken
}

// Close ends the connection to the tracer process. It waits a short while
// for it to exit; if it still holds a process inside an injected syscall,
// the error says so, and the tracer process restores that process and
// exits on its own when the call returns.
func (p *ptraceRevoker) Close() error { return p.t.Close() }

// RevokeWorkers implements ConcurrentRevoker: the tracer process revokes
// this many holders at once, each from a tracer thread of its own.
func (p *ptraceRevoker) RevokeWorkers() int { return p.t.Workers() }

// RestoreReporter is a Revoker (or System) that says when a holder left
// inside an injected syscall has been restored and released since.
type RestoreReporter interface {
	// Restored takes the news for pid: what was done, and whether there
	// was any.
	Restored(pid int) (Restore, bool)
}

func (p *ptraceRevoker) restore(r revoke.Restore) {
	did := revokedOf(r.Report)
	got := Restore{PID: r.PID, Did: &did}
	if r.Stuck != nil {
		got.Syscall, got.Arg = r.Stuck.Syscall, r.Stuck.Arg
	}
	if r.Err != nil {
		got.ErrText = r.Err.Error()
	}
	p.mu.Lock()
	p.restored[r.PID] = got
	p.mu.Unlock()
}

// Held implements HeldReporter: what the tracer process still holds or
// works on (PendingHeld).
func (p *ptraceRevoker) Held() []Pending {
	var out []Pending
	pid := p.t.PID()
	for _, h := range p.t.Holding() {
		held := Pending{Kind: PendingHeld, Who: Who{PID: h.PID}, Tracer: pid, For: time.Since(h.Since)}
		if h.Stuck != nil {
			held.InsideText = h.Stuck.Inside()
		}
		out = append(out, held)
	}
	return out
}

// HeldReporter is a Revoker (or System) that revokes in a process of its
// own (the tracer process) and can say which processes it still holds:
// what goes on after mounttop exits.
type HeldReporter interface {
	Held() []Pending
}

// Restored implements RestoreReporter.
func (p *ptraceRevoker) Restored(pid int) (Restore, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	what, ok := p.restored[pid]
	delete(p.restored, pid)
	return what, ok
}

// Revoke hands the targets to the revoker and says what was done. A
// process that exited is ErrHolderGone; a revoke that did nothing but fail
// item by item is an error with those failures.
func (p *ptraceRevoker) Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error) {
	rt := revoke.Targets{FDs: t.FDs, CwdTIDs: t.CwdTIDs, Placeholder: t.Placeholder, StartTime: t.StartTime, CopyIDs: t.CopyIDs, InjectTimeout: t.InjectTimeout}
	for _, m := range t.Maps {
		rt.Maps = append(rt.Maps, revoke.Range{Start: m.Start, End: m.End})
	}
	for tid, fds := range t.ThreadFDs {
		rt.ThreadFDs = append(rt.ThreadFDs, revoke.ThreadFDs{TID: tid, FDs: fds})
	}
	slices.SortFunc(rt.ThreadFDs, func(a, b revoke.ThreadFDs) int { return a.TID - b.TID })
	for _, id := range t.Mounts {
		rt.Mounts = append(rt.Mounts, uint64(id))
	}
	rep, err := p.t.Revoke(ctx, pid, rt)
	switch {
	case errors.Is(err, revoke.ErrGone):
		return Revoked{}, ErrHolderGone
	case errors.Is(err, revoke.ErrReused):
		return Revoked{}, fmt.Errorf("%w: %w", ErrHolderGone, err)
	}
	did := revokedOf(rep)
	if errors.Is(err, revoke.ErrNoStop) || errors.Is(err, revoke.ErrStuck) {
		return did, transient{err}
	}
	if err != nil {
		return did, err
	}
	if len(rep.Closed)+len(rep.Unmapped)+len(rep.Chdir) == 0 && len(rep.Failed) > 0 {
		// Every item failed or had changed since the scan (left alone):
		// the next drain pass scans again and tries what it finds then.
		return did, transient{errors.New(strings.Join(rep.Failed, "; "))}
	}
	return did, nil
}

// revokedOf takes the figures of a revoke.Report.
func revokedOf(rep revoke.Report) Revoked {
	return Revoked{
		Closed:      rep.Closed,
		Placeholder: rep.Placeholder,
		Unmapped:    len(rep.Unmapped),
		Chdir:       len(rep.Chdir),
		FailedText:  rep.Failed,
		NotesText:   rep.Notes,
		Threads:     rep.Threads,
		Stopped:     rep.Duration,
	}
}
