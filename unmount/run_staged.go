package unmount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"mounttop/internal/bounded"
	"mounttop/internal/termsafe"
)

// staged is the fumount design in userspace: probe -> (a server that does
// not answer: cut it off) -> fence -> syncfs -> revoke -> drain -> unmount
// -> remove the fence -> verify. Every call that can wait on the
// filesystem's server runs bounded (Plan.CallTimeout); one that does not
// return in time is named in an event and the run goes on without it.
func (r *run) staged() {
	u := r.u
	if err := u.check(r.ctx, &r.target, true); err != nil {
		r.fail(StageFence, &Error{Op: "fence", Target: r.target.Mountpoint, Err: err}, "nothing changed")
		return
	}
	// The probe, before anything changes. A plan that found the server
	// dead is trusted (probing again would cost the probe's deadline);
	// one that found it answering is checked again: it may have died
	// since.
	r.server = r.plan.Server
	if !r.server.Probed || r.server.Answering {
		r.server = u.probe(r.ctx, &r.target, r.target.Mountpoint, probeLimit(r.plan))
	}
	r.reportServer(r.server, StageFence)
	if r.ctx.Err() != nil {
		r.done(Result{Summary: "cancelled before anything changed"}, ErrCancelled)
		return
	}
	if !r.server.Answering && r.cutOff(nil, "the server is not answering") {
		r.done(Result{Gone: true, Summary: fmt.Sprintf("%s is unmounted (verified): umount2(MNT_FORCE) cut it off its dead server, and nothing held it", termsafe.Quote(r.target.Mountpoint))}, nil)
		return
	}
	// The fd syncfs needs, opened before the fence (under an over-mount
	// fence no path reaches the real mount): a FUSE OPENDIR, so bounded.
	var root *os.File
	if r.server.Answering {
		root = r.openRoot()
	}
	closeRoot := func() {
		if root != nil {
			root.Close() // it pins the mount: never held past syncfs
			root = nil
		}
	}
	defer closeRoot()
	f, err := r.fenceUp()
	if err != nil {
		closeRoot()
		r.fail(StageFence, err, r.fenceFailure(err))
		return
	}
	r.fenced = f
	r.sayFenced(f)
	if root != nil {
		r.syncfs(f, root)
	} else if r.server.Answering {
		r.send(Event{Stage: StageFence, What: "no syncfs: the mount's root could not be opened; written data may not be on disk"})
	}
	closeRoot()
	if r.ctx.Err() != nil {
		r.rollback(f, "cancelled before revoke", ErrCancelled)
		return
	}
	if !r.revoke(f) {
		r.rollback(f, "cancelled before revoke", ErrCancelled)
		return
	}
	if len(r.releases) > 0 && r.ctx.Err() == nil && !r.forcedGone {
		r.applyReleases(f, false)
	}
	if r.drain(f) {
		r.finish(f)
	}
}

// fenceUp puts the fence up: beneath the mount (a beneath-swap), or over
// it when the parent is shared or move_mount refuses the beneath (EINVAL);
// an over-mount fence comes after the swap files are released (swapoff
// needs their path, which it covers). A failure to read the table is
// a tableError, so the run says nothing changed.
func (r *run) fenceUp() (*Fence, error) {
	snap, err := r.u.sys.Mounts(r.ctx)
	if err != nil {
		return nil, tableError{err}
	}
	over := false
	if parent, ok := snap.Mount(r.target.ParentID); ok && parent.Propagation.Shared != 0 {
		over = true
	}
	if over {
		r.releaseSwapsNow()
	}
	f, err := r.putFence(over)
	if err != nil && !over && errors.Is(err, unix.EINVAL) {
		// move_mount refuses MOVE_MOUNT_BENEATH under a shared parent
		// (and in a few other layouts): the over-mount fence still works.
		r.send(Event{Stage: StageFence, What: "mount beneath refused (EINVAL); over-mounting instead", Err: err})
		r.releaseSwapsNow()
		f, err = r.putFence(true)
	}
	return f, err
}

// tableError is a failure to read the mount table before the fence.
type tableError struct{ err error }

func (e tableError) Error() string { return e.err.Error() }
func (e tableError) Unwrap() error { return e.err }

// fenceFailure is the run's summary when fenceUp failed.
func (r *run) fenceFailure(err error) string {
	var te tableError
	if errors.As(err, &te) {
		return "nothing changed" + r.abortedNote()
	}
	return "could not fence" + r.abortedNote()
}

// sayFenced reports the fence that is up and what it does to new opens.
func (r *run) sayFenced(f *Fence) {
	fence, effect := "an empty read-only tmpfs", "new opens: ENOENT, creates: EROFS"
	if f.File {
		fence, effect = "an empty read-only file", "reads: nothing, writes: EROFS"
	}
	if f.Kind == FenceBeneath {
		r.send(Event{Stage: StageFence, What: fmt.Sprintf("fenced by beneath-swap: %s now shows %s (%s); the mount itself is at %s",
			termsafe.Quote(f.Target), fence, effect, termsafe.Quote(f.RealPath))})
		return
	}
	r.send(Event{Stage: StageFence, What: fmt.Sprintf("fenced by over-mount (the parent is shared): %s covers %s and its peers",
		fence, termsafe.Quote(f.Target))})
}

// putFence puts the fence up, bounded: a fence call that returns after it was
// abandoned is rolled back at once, so no fence is left behind unknown.
func (r *run) putFence(over bool) (*Fence, error) {
	t := r.target
	op := "fencing " + termsafe.Quote(t.Mountpoint)
	f, err := bounded.Value(r.ctx, r.u.calls, r.callLimit(), op, bounded.AnyThread,
		func() (*Fence, error) { return r.u.sys.Fence(&t, over) },
		func(f *Fence) { _ = r.u.sys.Rollback(f) })
	r.abandoned(StageFence, err, "if it completes after all, the fence is rolled back at once")
	return f, err
}

// openRoot opens the mount's root for syncfs, bounded. A root that does
// not open in time means the server stopped answering since the probe:
// the filesystem is cut off it. ENOTCONN: the connection is aborted
// already, so there is nothing to sync. Either way the run goes on, and
// nil comes back.
func (r *run) openRoot() *os.File {
	t := r.target
	op := "open of the root of " + termsafe.Quote(t.Mountpoint) + " (for syncfs)"
	root, err := bounded.Value(r.ctx, r.u.calls, r.callLimit(), op, bounded.AnyThread,
		func() (*os.File, error) { return r.u.sys.OpenRoot(t.Mountpoint, t.ID) },
		func(f *os.File) { f.Close() })
	switch {
	case err == nil:
		return root
	case r.abandoned(StageFence, err, "no syncfs; written data may not be on disk"):
		r.serverStopped(nil, op)
	case errors.Is(err, unix.ENOTCONN):
		r.server.Answering, r.server.Aborted = false, true
		r.send(Event{Stage: StageFence, What: "the connection to the server is aborted (ENOTCONN from the open of the root): nothing can be synced"})
	default:
		r.send(Event{Stage: StageFence, What: "opening the mount's root for syncfs failed: written data may not be on disk", Err: err})
	}
	return nil
}

// serverStopped records that op, a call to the server, was abandoned, and
// cuts the filesystem off its server (cutOff) so the run can go on.
func (r *run) serverStopped(f *Fence, op string) {
	r.server.Answering = false
	r.server.Probe = Probe{Outcome: ProbeTimedOut, Call: op, Limit: r.callLimit()}
	r.cutOff(f, "the server stopped answering")
}

// syncfs flushes the fenced filesystem through root, bounded. One that
// does not return in time means the server stopped answering: the
// filesystem is cut off it.
func (r *run) syncfs(f *Fence, root *os.File) {
	op := "syncfs of " + termsafe.Quote(r.target.Mountpoint)
	err := r.u.calls.Do(r.ctx, r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.Syncfs(root) })
	switch {
	case err == nil:
		r.send(Event{Stage: StageFence, What: "syncfs: data written so far is on disk"})
	case r.abandoned(StageFence, err, "written data may not be on disk"):
		r.serverStopped(f, op)
	case errors.Is(err, unix.ENOTCONN):
		r.server.Answering, r.server.Aborted = false, true
		r.send(Event{Stage: StageFence, What: "the connection to the server is aborted (syncfs: ENOTCONN): nothing can be synced"})
	default:
		r.send(Event{Stage: StageFence, What: "syncfs failed: written data may not be on disk", Err: err})
	}
}

// abortedNote says, after a failure, that the connection was cut: that
// stays so whatever else is undone.
func (r *run) abortedNote() string {
	if r.server.Aborted && !r.plan.Server.Aborted {
		return "; the connection to the server was aborted and stays so (I/O on the mount fails)"
	}
	return ""
}

// rollback undoes the fence and ends the run.
func (r *run) rollback(f *Fence, why string, cause error) {
	op := "rolling back the fence at " + termsafe.Quote(f.Target)
	err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.Rollback(f) })
	if err != nil {
		r.abandoned(StageRollback, err, "")
		r.send(Event{Stage: StageRollback, Err: err, What: "rolling back the fence failed: " + r.fenceState(f) + r.abortedNote()})
		r.done(Result{Summary: why + "; rolling back the fence failed: " + r.fenceState(f) + r.abortedNote()}, errors.Join(cause, err))
		return
	}
	what := fmt.Sprintf("fence removed: the mount (%d) is back at %s", r.target.ID, termsafe.Quote(f.Target))
	switch {
	case r.revoked+r.signalled+r.released > 0:
		what += fmt.Sprintf("; %d holders were revoked and %d signalled before that and stay so", r.revoked, r.signalled)
		if r.released > 0 {
			what += fmt.Sprintf("; %d %s done stay so", r.released, plural(r.released, "release"))
		}
	case len(r.stuck)+len(r.underWay) == 0 && (!r.server.Aborted || r.plan.Server.Aborted):
		what += "; everything is as it was"
	}
	what += r.unsettled()
	what += r.abortedNote()
	r.send(Event{Stage: StageRollback, What: what})
	r.done(Result{Summary: why + "; " + what, Remaining: r.remainingHolders()}, cause)
}

// fenceState says where things are while fenced, for a failure report.
func (r *run) fenceState(f *Fence) string {
	if f.Kind == FenceBeneath {
		return fmt.Sprintf("%s shows an empty read-only tmpfs (the fence, mount %d); the filesystem is still mounted at %s (mount %d)",
			termsafe.Quote(f.Target), f.FenceID, termsafe.Quote(f.RealPath), r.target.ID)
	}
	return fmt.Sprintf("an empty read-only tmpfs (mount %d) covers %s, the filesystem is still mounted beneath it (mount %d)",
		f.FenceID, termsafe.Quote(f.Target), r.target.ID)
}

// stagedDetached finishes what a lazy unmount started: the target is a
// detached mount, alive only because processes hold it (Snapshot.Detached).
// There is nothing to fence (no path leads to it) and no path to syncfs it
// by; the kernel syncs the filesystem when it lets go of its last mount. So:
// revoke every holder, then drain until no scan finds a holder of its
// unique ID, or the timeout.
func (r *run) stagedDetached() {
	p := r.plan
	r.send(Event{Stage: StageFence, What: fmt.Sprintf("no fence: detached mount %d is in no mount table, so no path can open anything on it; no syncfs either (no path to it): the kernel syncs the filesystem when it lets go of it", r.target.ID)})
	// The probe goes through a holder's fd or cwd (no path names the
	// mount); a server that does not answer is cut off before revoking.
	r.server = p.Server
	if !r.server.Probed || r.server.Answering {
		r.server = r.u.probe(r.ctx, &r.target, r.probePath(nil), probeLimit(p))
	}
	r.reportServer(r.server, StageFence)
	if !r.server.Answering && r.ctx.Err() == nil {
		r.cutOff(nil, "the server is not answering")
	}
	if !r.revoke(nil) || r.ctx.Err() != nil {
		r.done(Result{Summary: r.detachedCancelled()}, ErrCancelled)
		return
	}
	r.drainLoop(drainEnds{
		timedOut: func() {
			left := r.remainingHolders()
			r.done(Result{Summary: fmt.Sprintf("%d %s still held detached mount %d after %v: %s", len(left), plural(len(left), "holder"), r.target.ID, p.Timeout, r.whyLeft(left)),
				Remaining: left}, ErrTimeout)
		},
		cancelled: func() {
			r.done(Result{Summary: r.detachedCancelled(), Remaining: r.remainingHolders()}, ErrCancelled)
		},
		empty: func() drainStep {
			if _, still := r.lastSnap.Mount(r.target.ID); still {
				return drainReport
			}
			r.send(Event{Stage: StageUnmount, What: fmt.Sprintf("no process holds detached mount %d any more (verified by a scan): the kernel releases it", r.target.ID), Holders: r.changedPicture()})
			r.done(Result{Gone: true, Summary: fmt.Sprintf("detached mount %d is gone (no holder left, verified): %d %s revoked, %d signalled",
				r.target.ID, r.revoked, plural(r.revoked, "holder"), r.signalled)}, nil)
			return drainGone
		},
	})
}

func (r *run) detachedCancelled() string {
	if r.revoked+r.signalled > 0 {
		return fmt.Sprintf("cancelled; %d holders were revoked and %d signalled and stay so; the detached mount lives on while the rest hold it", r.revoked, r.signalled) + r.unsettled()
	}
	if u := r.unsettled(); u != "" {
		return "cancelled" + u
	}
	return "cancelled; nothing changed"
}

// unsettled lists, "; " first, the holders the tracer process still has:
// left inside an injected syscall (stuck), or with a revoke the run
// stopped waiting for (underWay). Empty when there are none.
func (r *run) unsettled() string {
	var out string
	for _, pid := range r.order {
		if w := r.stuck[pid]; w != "" {
			out += "; " + w + ": the tracer process restores it when the call returns"
		}
		if w := r.underWay[pid]; w != "" {
			out += "; the revoke of " + w + " was under way when the run was cancelled: the tracer process finishes it (what it took stays taken) or, had it not begun, leaves the process untouched"
		}
	}
	return out
}
