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
	p := &ptraceRevoker{restored: map[int]string{}}
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
	restored map[int]string // pid -> what its late restore did, until taken
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
	// Restored takes the news for pid: what was done, in words, and
	// whether there was any.
	Restored(pid int) (string, bool)
}

func (p *ptraceRevoker) restore(r revoke.Restore) {
	what := r.String() + ": " + describeReport(r.Report)
	p.mu.Lock()
	p.restored[r.PID] = what
	p.mu.Unlock()
}

// Held implements HeldReporter: what the tracer process still holds or
// works on, one line each.
func (p *ptraceRevoker) Held() []string {
	var out []string
	pid := p.t.PID()
	for _, h := range p.t.Holding() {
		what := "a revoke under way"
		if h.Stuck != nil {
			what = "left inside " + h.Stuck.Inside()
		}
		out = append(out, fmt.Sprintf("the tracer process (pid %d) holds pid %d: %s for %v; it finishes the revoke or restores the process and releases it on its own",
			pid, h.PID, what, time.Since(h.Since).Round(time.Second)))
	}
	return out
}

// HeldReporter is a Revoker (or System) that revokes in a process of its
// own (the tracer process) and can say which processes it still holds:
// what goes on after mounttop exits.
type HeldReporter interface {
	Held() []string
}

// Restored implements RestoreReporter.
func (p *ptraceRevoker) Restored(pid int) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	what, ok := p.restored[pid]
	delete(p.restored, pid)
	return what, ok
}

// Revoke hands the targets to the revoker and says what was done. A
// process that exited is ErrHolderGone; a revoke that did nothing but fail
// item by item is an error with those failures.
func (p *ptraceRevoker) Revoke(ctx context.Context, pid int, t RevokeTargets) (string, error) {
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
		return "", ErrHolderGone
	case errors.Is(err, revoke.ErrReused):
		return "", fmt.Errorf("%w: %w", ErrHolderGone, err)
	}
	did := describeReport(rep)
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

// describeReport renders a revoke.Report in the operator's words.
func describeReport(rep revoke.Report) string {
	var parts []string
	if n := len(rep.Closed); n > 0 {
		s := make([]string, n)
		for i, fd := range rep.Closed {
			s[i] = fmt.Sprint(fd)
		}
		verb := "closed fd "
		if rep.Placeholder {
			verb = "put a placeholder on fd "
		}
		parts = append(parts, verb+strings.Join(s, ", "))
	}
	if n := len(rep.Unmapped); n > 0 {
		parts = append(parts, fmt.Sprintf("unmapped %d %s (PROT_NONE)", n, plural(n, "mapping")))
	}
	if n := len(rep.Chdir); n > 0 {
		parts = append(parts, fmt.Sprintf("moved the cwd of %d %s into an empty read-only directory", n, plural(n, "thread")))
	}
	if len(rep.Failed) > 0 {
		parts = append(parts, "failed: "+strings.Join(rep.Failed, "; "))
	}
	parts = append(parts, rep.Notes...)
	if len(parts) == 0 {
		return "nothing left to revoke"
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (%d %s stopped for %v)", rep.Threads, plural(rep.Threads, "thread"), rep.Duration.Round(10e3))
}
