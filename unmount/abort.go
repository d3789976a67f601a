package unmount

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
)

// A staged run against a server that does not answer (DESIGN.md, "Dead
// servers"): every call that can reach the server runs bounded
// (internal/bounded) and an abandoned one is named in an event; the probe
// says whether the server answers; if not, the run cuts the filesystem off
// it (Abort) before revoking, so that injected close(2) and munmap(2)
// calls, which would wait on FUSE FLUSH or an NFS commit, return at once.
// The holders keep running; their I/O on the mount fails (ENOTCONN, EIO).

// revoking lists the holders a Revoke is working on right now, for the
// operator who asks what is still pending (Unmounter.Pending).
type revoking struct {
	mu  sync.Mutex
	now map[int]revokeInFlight
}

type revokeInFlight struct {
	who   Who
	since time.Time
}

func (v *revoking) begin(pid int, who Who) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.now == nil {
		v.now = map[int]revokeInFlight{}
	}
	v.now[pid] = revokeInFlight{who, time.Now()}
}

func (v *revoking) end(pid int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.now, pid)
}

// Pending says, one line each, what this Unmounter has not finished: the
// calls it abandoned that are still blocked in the kernel (a syncfs, an
// open, a statfs waiting on a server) and the holders a revoke is working
// on (ptrace: seizing its threads or injecting into them). A process that exits now leaves the
// abandoned calls to the kernel (they end with it) and a holder mid-revoke
// in the state the revoker documents. Safe to call from any goroutine.
func (u *Unmounter) Pending() []Pending {
	now := time.Now()
	var out []Pending
	for _, p := range u.calls.Pending() {
		out = append(out, Pending{Kind: PendingCall, CallText: p.Op, For: now.Sub(p.Since)})
	}
	u.revoking.mu.Lock()
	pids := make([]int, 0, len(u.revoking.now))
	for pid := range u.revoking.now {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	for _, pid := range pids {
		r := u.revoking.now[pid]
		out = append(out, Pending{Kind: PendingRevoke, Who: r.who, For: now.Sub(r.since)})
	}
	u.revoking.mu.Unlock()
	if hr, ok := u.sys.(HeldReporter); ok {
		out = append(out, hr.Held()...)
	}
	return out
}

// revokeHolder is System.Revoke, listed in Pending while it works.
func (r *run) revokeHolder(h inspect.Holder, t RevokeTargets) (Revoked, error) {
	r.u.revoking.begin(h.PID, r.who(h))
	defer r.u.revoking.end(h.PID)
	return r.u.sys.Revoke(r.ctx, h.PID, t)
}

// callLimit is the bound of one call that can wait on the server.
func (r *run) callLimit() time.Duration {
	if r.plan.CallTimeout > 0 {
		return r.plan.CallTimeout
	}
	return DefaultCallTimeout
}

// minInjectLimit is the least time an injected syscall gets before its
// revoke is answered as stuck, however close the run's deadline: a close(2)
// on a filesystem that answers needs some, and a stuck answer costs a
// probe.
const minInjectLimit = 250 * time.Millisecond

// injectLimit is how long an injected syscall (close, munmap, fchdir, the
// placeholder's dup3) may take before the revoke answers that the holder
// is left inside it: callLimit, as every other call that can wait on the
// server, and no later than the run's deadline (but minInjectLimit at
// least). The run then probes the server and cuts a dead one off, so the
// call returns and the tracer process restores the holder; without this,
// the revoker's own 10s would hold a run with a shorter --timeout past it.
func (r *run) injectLimit() time.Duration {
	d := r.callLimit()
	if left := r.deadline.Sub(r.u.now()); left < d {
		d = left
	}
	return max(d, minInjectLimit)
}

// cleanupCtx is the context of a clean-up call (rollback, removing the
// fence): it runs even after the run was cancelled, bounded by callLimit.
func (r *run) cleanupCtx() context.Context { return context.WithoutCancel(r.ctx) }

// abandoned sends the event naming a call that did not return in time,
// and reports whether err was one.
func (r *run) abandoned(stage Stage, err error, consequence Consequence) bool {
	var ab *bounded.Abandoned
	if !errors.As(err, &ab) {
		return false
	}
	// Said with the deadline it was given (the wait itself overshoots
	// it by a scheduling delay).
	r.send(Event{Stage: stage, Err: err, Note: CallAbandoned{CallText: ab.Op, Limit: r.callLimit(), Cancelled: ab.Cancelled,
		After: ab.After.Round(time.Millisecond), Consequence: consequence}})
	return true
}

// probePath is the path the probe asks the server by: the mount point
// before the fence, the mount in the stash under a FenceBeneath, else (an
// over-mount fence covers it, or it is detached) a holder's /proc link.
func (r *run) probePath(f *Fence) string {
	switch {
	case r.target.Detached || (f != nil && f.Kind == FenceOver):
		hs := r.remaining
		if len(hs) == 0 {
			for _, a := range r.plan.Holders {
				hs = append(hs, a.Holder)
			}
		}
		skip := map[int]bool{}
		for pid, ns := range r.inCopy {
			skip[pid] = ns != 0
		}
		return holderLink(hs, skip)
	case f != nil:
		return f.RealPath
	}
	return r.target.Mountpoint
}

// reportServer sends the probe's finding when it matters: a server that
// does not answer, or a probe that could not tell. An answering server is
// said by the plan (Event.Server) and needs no event of its own.
func (r *run) reportServer(s Server, stage Stage) {
	if s.Answering && s.Probe.Outcome == ProbeAnswered {
		return
	}
	r.send(Event{Stage: stage, Note: ProbeFinding{Server: s, NotAnswering: !s.Answering && !s.Aborted}})
}

// cutOff aborts the filesystem's connection to a server that does not
// answer (Server.Abort), so that everything waiting on it returns: the
// abandoned calls of this run, the holders blocked in I/O, the injected
// close(2) of a revoke. It reports whether the mount is gone: MNT_FORCE
// unmounts a mount that nothing holds.
func (r *run) cutOff(f *Fence, why CutCause) (gone bool) {
	s := &r.server
	stage := StageRevoke
	if f == nil && !r.target.Detached {
		stage = StageFence // before the fence goes up
	}
	if s.Aborted && s.Abort.Once {
		return false
	}
	switch s.Abort.Kind {
	case AbortNone:
		if !r.noAbortSaid {
			r.noAbortSaid = true
			r.send(Event{Stage: stage, Note: CannotCutOff{Cause: why, Abort: s.Abort}})
		}
		return false
	case AbortFuseConn:
		conn := s.Abort.Conn
		op := fmt.Sprintf("abort of FUSE connection %d", conn)
		err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.AbortFuse(conn) })
		if r.abandoned(stage, err, ConsequenceNone) {
			return false
		}
		if err != nil {
			r.send(Event{Stage: stage, Note: FuseAbortFailed{Cause: why, Conn: conn}, Err: err})
			return false
		}
		s.Aborted = true
		r.send(Event{Stage: stage, Note: FuseConnAborted{Cause: why, Conn: conn, Dir: fuseConnections}})
		return false
	}
	// AbortForce: umount2(MNT_FORCE) on the mount as a path names it now.
	// It is anchored like every unmount: on the fence's stash under a
	// beneath-swap fence, else on the mount point's directory opened now.
	m := r.target
	var at *Anchor
	switch {
	case f != nil && f.Kind == FenceOver:
		r.send(Event{Stage: stage, Note: ForceUnreachable{Cause: why}})
		return false
	case f != nil:
		m.Mountpoint, at = f.RealPath, f.Real
	}
	op := callOn("umount2(MNT_FORCE) of", m.Mountpoint)
	var gotGone bool
	err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error {
		a := at
		if a == nil {
			var err error
			if a, err = r.u.anchor(&m, nil, m.Mountpoint); err != nil {
				return err
			}
			defer a.Close()
		}
		if err := r.u.recheck(context.Background(), &m, a, true); err != nil {
			return err
		}
		err := r.u.sys.Umount2(a, unix.MNT_FORCE|unix.UMOUNT_NOFOLLOW)
		if err == nil {
			gotGone = r.u.verifyGone(&m) == nil
		}
		return err
	})
	if r.abandoned(stage, err, ConsequenceNone) {
		return false
	}
	switch {
	case err == nil && gotGone:
		s.Aborted, r.forcedGone = true, true
		r.send(Event{Stage: StageUnmount, Note: ForceAborted{Cause: why, Mountpoint: m.Mountpoint, Gone: true}})
		return true
	case err == nil || isBusy(err):
		s.Aborted = true
		r.send(Event{Stage: stage, Note: ForceAborted{Cause: why, Mountpoint: m.Mountpoint}})
	default:
		r.send(Event{Stage: stage, Note: ForceFailed{Cause: why, Mountpoint: m.Mountpoint}, Err: err})
	}
	return false
}

// serverCheck runs when something suggests the server stopped answering
// after the run began: a revoke that could not finish (a holder that did
// not stop, an injected close that hung: ErrTransient) or holders in D
// state during the drain. It re-probes the server (bounded) and, if it
// does not answer, cuts the filesystem off it: once if that lasts
// (Abort.Once: FUSE), else again on each call while the server does not
// answer (MNT_FORCE kills only the NFS or CIFS requests in flight). It
// reports whether the mount is gone.
func (r *run) serverCheck(f *Fence, why CutCause) (gone bool) {
	s := &r.server
	if s.Abort.Kind == AbortNone && r.noAbortSaid {
		return false
	}
	if s.Aborted && s.Abort.Once {
		return false
	}
	if s.Answering || !s.Probed {
		next := r.u.probe(r.ctx, &r.target, r.probePath(f), probeLimit(r.plan))
		next.Abort = s.Abort
		if next.Answering {
			return false
		}
		*s = next
		r.reportServer(*s, StageRevoke)
	}
	return r.cutOff(f, why)
}

// stuckHolders says how many of hs are in D state (uninterruptible sleep,
// waiting on I/O: on a dead server, forever).
func stuckHolders(hs []inspect.Holder) int {
	n := 0
	for _, h := range hs {
		if h.State == 'D' {
			n++
		}
	}
	return n
}

// deadHint explains an EBUSY with no process holding the mount when the
// server does not answer: calls of mounttop's own (abandoned, still
// blocked) can pin the mount until they return.
func (r *run) deadHint() *DeadServer {
	d := &DeadServer{Server: r.server}
	for _, p := range r.u.calls.Pending() {
		d.OwnCalls = append(d.OwnCalls, p.Op)
	}
	return d
}

// awaitGone says whether m has left the namespace after its umount2 was
// abandoned. Against a server that did not answer the probe it looks once.
// When the server answered, an umount2 still running is the kernel, not
// the server: namespace_unlock waits for an RCU grace period
// (synchronize_rcu), which takes seconds on a loaded machine, so it keeps
// looking (statmount, which never reaches the filesystem) until the run's
// deadline rather than fail a healthy run and roll the fence back.
func (r *run) awaitGone(ctx context.Context, m *inspect.Mount) bool {
	if r.u.verifyGone(m) == nil {
		return true
	}
	if r.server.Probed && !r.server.Answering {
		return false
	}
	until := time.Now().Add(r.deadline.Sub(r.u.now())) // on the real clock: a fake one may stand still
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(until) {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if r.u.verifyGone(m) == nil {
			return true
		}
	}
	return false
}

// finalUmount is the real unmount of m (Unmounter.umount), bounded. The
// unmount of a filesystem's last mount shuts the superblock down on the
// way out of umount2(2) (deactivate_super: the final writeback of dirty
// pages), which waits on the server. By then the mount is out of the
// namespace: an abandoned unmount after which statmount no longer finds
// the mount is a success, said so.
func (r *run) finalUmount(ctx context.Context, m *inspect.Mount, at *Anchor) error {
	mm := *m
	op := callOn("umount2 of", mm.Mountpoint)
	limit := r.callLimit()
	err := r.u.calls.Do(ctx, limit, op, bounded.AnyThread, func() error { return r.u.umountAt(ctx, "umount", &mm, at, 0, true) })
	var ab *bounded.Abandoned
	if !errors.As(err, &ab) {
		return err
	}
	if r.awaitGone(ctx, m) {
		r.send(Event{Stage: StageUnmount, Err: err, Note: UmountAbandonedGone{Mountpoint: mm.Mountpoint, Limit: limit}})
		return nil
	}
	r.abandoned(StageUnmount, err, ConsequenceNone)
	return err
}
