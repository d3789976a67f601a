package unmount

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"mounttop/internal/bounded"
)

// staged is the fumount design in userspace: probe -> (a server that does
// not answer: cut it off) -> fence -> syncfs -> revoke -> drain -> unmount
// -> remove the fence -> verify. Every call that can wait on the
// filesystem's server runs bounded (Plan.CallTimeout); one that does not
// return in time is named in an event and the run goes on without it.
func (r *run) staged() {
	u := r.u
	if err := u.check(r.ctx, &r.target, true); err != nil {
		r.fail(StageFence, &Error{Op: "fence", Target: r.target.Mountpoint, Err: err}, NothingChanged{})
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
		r.done(Result{Outcome: CancelledEarly{}}, ErrCancelled)
		return
	}
	if !r.server.Answering && r.cutOff(nil, CutCause{Kind: CauseNotAnswering}) {
		r.done(Result{Gone: true, Outcome: ForcedGone{Mountpoint: r.target.Mountpoint}}, nil)
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
		r.send(Event{Stage: StageFence, Note: Synced{Step: SyncfsNoRoot}})
	}
	closeRoot()
	if r.ctx.Err() != nil {
		r.rollback(f, RollbackWhy{Cancelled: true}, ErrCancelled)
		return
	}
	if !r.revoke(f) {
		r.rollback(f, RollbackWhy{Cancelled: true}, ErrCancelled)
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
		r.send(Event{Stage: StageFence, Note: BeneathRefused{}, Err: err})
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
func (r *run) fenceFailure(err error) Note {
	var te tableError
	if errors.As(err, &te) {
		return NothingChanged{Aborted: r.cutByRun()}
	}
	return CouldNotFence{Aborted: r.cutByRun()}
}

// sayFenced reports the fence that is up and what it does to new opens.
func (r *run) sayFenced(f *Fence) {
	r.send(Event{Stage: StageFence, Note: Fenced{Over: f.Kind != FenceBeneath, File: f.File, Target: f.Target, RealPath: f.RealPath}})
}

// putFence puts the fence up, bounded: a fence call that returns after it was
// abandoned is rolled back at once, so no fence is left behind unknown.
func (r *run) putFence(over bool) (*Fence, error) {
	t := r.target
	op := callOn("fencing", t.Mountpoint)
	f, err := bounded.Value(r.ctx, r.u.calls, r.callLimit(), op, bounded.AnyThread,
		func() (*Fence, error) { return r.u.sys.Fence(&t, over) },
		func(f *Fence) { _ = r.u.sys.Rollback(f) })
	r.abandoned(StageFence, err, ConsequenceFenceLater)
	return f, err
}

// openRoot opens the mount's root for syncfs, bounded. A root that does
// not open in time means the server stopped answering since the probe:
// the filesystem is cut off it. ENOTCONN: the connection is aborted
// already, so there is nothing to sync. Either way the run goes on, and
// nil comes back.
func (r *run) openRoot() *os.File {
	t := r.target
	op := callOn("open of the root of", t.Mountpoint) + " (for syncfs)"
	root, err := bounded.Value(r.ctx, r.u.calls, r.callLimit(), op, bounded.AnyThread,
		func() (*os.File, error) { return r.u.sys.OpenRoot(t.Mountpoint, t.ID) },
		func(f *os.File) { f.Close() })
	switch {
	case err == nil:
		return root
	case r.abandoned(StageFence, err, ConsequenceNoSyncfs):
		r.serverStopped(nil, op, err)
	case errors.Is(err, unix.ENOTCONN):
		r.server.Answering, r.server.Aborted = false, true
		r.send(Event{Stage: StageFence, Note: Synced{Step: SyncfsAbortedAtOpen}})
	default:
		r.send(Event{Stage: StageFence, Note: Synced{Step: SyncfsOpenFailed}, Err: err})
	}
	return nil
}

// serverStopped records that op, a call to the server, was abandoned, and
// cuts the filesystem off its server (cutOff) so the run can go on. A call
// abandoned because the run was cancelled (err's Cancelled) says nothing
// of the server: the operator asked to stop, and the run rolls back; it
// must not abort the connection of a server that was merely slow (a
// cancel during a long syncfs did, and the event log showed a revoke
// stage before the rollback: TestEventSequence, once in a loaded suite).
func (r *run) serverStopped(f *Fence, op string, err error) {
	var ab *bounded.Abandoned
	if errors.As(err, &ab) && ab.Cancelled {
		return
	}
	r.server.Answering = false
	r.server.Probe = Probe{Outcome: ProbeTimedOut, Call: op, Limit: r.callLimit()}
	r.cutOff(f, CutCause{Kind: CauseStopped})
}

// syncfs flushes the fenced filesystem through root, bounded. One that
// does not return in time means the server stopped answering: the
// filesystem is cut off it.
func (r *run) syncfs(f *Fence, root *os.File) {
	op := callOn("syncfs of", r.target.Mountpoint)
	err := r.u.calls.Do(r.ctx, r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.Syncfs(root) })
	switch {
	case err == nil:
		r.send(Event{Stage: StageFence, Note: Synced{Step: SyncfsDone}})
	case r.abandoned(StageFence, err, ConsequenceUnsynced):
		r.serverStopped(f, op, err)
	case errors.Is(err, unix.ENOTCONN):
		r.server.Answering, r.server.Aborted = false, true
		r.send(Event{Stage: StageFence, Note: Synced{Step: SyncfsAborted}})
	default:
		r.send(Event{Stage: StageFence, Note: Synced{Step: SyncfsFailed}, Err: err})
	}
}

// cutByRun says whether this run cut the connection to the server: after
// a failure, that stays so whatever else is undone.
func (r *run) cutByRun() bool { return r.server.Aborted && !r.plan.Server.Aborted }

// rollback undoes the fence and ends the run.
func (r *run) rollback(f *Fence, why RollbackWhy, cause error) {
	op := callOn("rolling back the fence at", f.Target)
	err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.Rollback(f) })
	if err != nil {
		r.abandoned(StageRollback, err, ConsequenceNone)
		failed := RollbackFailed{Fence: r.fenceState(f), Aborted: r.cutByRun()}
		r.send(Event{Stage: StageRollback, Err: err, Note: failed})
		r.done(Result{Outcome: RolledBack{Why: why, Failed: &failed}}, errors.Join(cause, err))
		return
	}
	back := FenceRolledBack{MountID: r.target.ID, Target: f.Target, Unsettled: r.unsettled(), Aborted: r.cutByRun()}
	switch {
	case r.revoked+r.signalled+r.released > 0:
		back.Revoked, back.Signalled, back.Released = r.revoked, r.signalled, r.released
	case len(r.stuck)+len(r.underWay) == 0 && !r.cutByRun():
		back.AsItWas = true
	}
	r.send(Event{Stage: StageRollback, Note: back})
	r.done(Result{Outcome: RolledBack{Why: why, Done: &back}, Remaining: r.remainingHolders()}, cause)
}

// fenceState says where things are while fenced, for a failure report.
func (r *run) fenceState(f *Fence) FenceState {
	return FenceState{Over: f.Kind != FenceBeneath, Target: f.Target, RealPath: f.RealPath, FenceID: f.FenceID, MountID: r.target.ID}
}

// stagedDetached finishes what a lazy unmount started: the target is a
// detached mount, alive only because processes hold it (Snapshot.Detached).
// There is nothing to fence (no path leads to it) and no path to syncfs it
// by; the kernel syncs the filesystem when it lets go of its last mount. So:
// revoke every holder, then drain until no scan finds a holder of its
// unique ID, or the timeout.
func (r *run) stagedDetached() {
	p := r.plan
	r.send(Event{Stage: StageFence, Note: DetachedNoFence{MountID: r.target.ID}})
	// The probe goes through a holder's fd or cwd (no path names the
	// mount); a server that does not answer is cut off before revoking.
	r.server = p.Server
	if !r.server.Probed || r.server.Answering {
		r.server = r.u.probe(r.ctx, &r.target, r.probePath(nil), probeLimit(p))
	}
	r.reportServer(r.server, StageFence)
	if !r.server.Answering && r.ctx.Err() == nil {
		r.cutOff(nil, CutCause{Kind: CauseNotAnswering})
	}
	if !r.revoke(nil) || r.ctx.Err() != nil {
		r.done(Result{Outcome: r.detachedCancelled()}, ErrCancelled)
		return
	}
	r.drainLoop(drainEnds{
		timedOut: func() {
			left := r.remainingHolders()
			r.done(Result{Outcome: DetachedEnd{MountID: r.target.ID, TimedOut: true, Timeout: p.Timeout, Left: r.whyLeft(left)}, Remaining: left}, ErrTimeout)
		},
		cancelled: func() {
			r.done(Result{Outcome: r.detachedCancelled(), Remaining: r.remainingHolders()}, ErrCancelled)
		},
		empty: func() drainStep {
			if _, still := r.lastSnap.Mount(r.target.ID); still {
				return drainReport
			}
			r.send(Event{Stage: StageUnmount, Note: DetachedReleased{MountID: r.target.ID}, Holders: r.changedPicture()})
			r.done(Result{Gone: true, Outcome: DetachedEnd{MountID: r.target.ID, Gone: true, Revoked: r.revoked, Signalled: r.signalled}}, nil)
			return drainGone
		},
	})
}

// detachedCancelled is how a cancelled run on a detached mount ended.
func (r *run) detachedCancelled() DetachedEnd {
	return DetachedEnd{MountID: r.target.ID, Revoked: r.revoked, Signalled: r.signalled, Unsettled: r.unsettled()}
}

// unsettled lists, in the run's order, the holders the tracer process
// still has: left inside an injected syscall (stuck), or with a revoke the
// run stopped waiting for (underWay).
func (r *run) unsettled() Unsettled {
	var u Unsettled
	for _, pid := range r.order {
		if w, ok := r.stuck[pid]; ok {
			u = append(u, UnsettledHolder{Who: w.Who, InsideText: w.InsideText})
		}
		if w, ok := r.underWay[pid]; ok {
			u = append(u, UnsettledHolder{Who: w, UnderWay: true})
		}
	}
	return u
}
