package unmount

import (
	"errors"
	"time"

	"mounttop/inspect"
)

// drain rescans every Interval, revokes stragglers and reports what is
// left and why, until nothing holds the mount and the real unmount
// succeeds (true), or the timeout passes or the run is cancelled (the fence
// is rolled back, false).
func (r *run) drain(f *Fence) bool {
	return r.drainLoop(drainEnds{
		fence:     f,
		timedOut:  func() { r.rollback(f, RollbackWhy{Timeout: r.drainTimeout()}, ErrTimeout) },
		cancelled: func() { r.rollback(f, RollbackWhy{Cancelled: true, Drain: true}, ErrCancelled) },
		empty:     func() drainStep { return r.unmountWhenEmpty(f) },
	})
}

// drainEnds is what differs between draining a fenced mount (drain) and a
// detached one (stagedDetached): how the run ends on the deadline, on
// cancellation, and when a scan finds no holder.
type drainEnds struct {
	fence     *Fence // nil: a detached mount, nothing fenced
	timedOut  func()
	cancelled func()
	// empty runs when a scan finds no holder, and says what follows.
	empty func() drainStep
}

// drainStep is what follows a drain pass that found no holder.
type drainStep int

const (
	drainReport drainStep = iota // the pass goes on: report who is left (none)
	drainNext                    // the pass is over: rescan at the next tick
	drainGone                    // the mount is gone: the drain succeeded
	drainEnded                   // the run ended (the fence rolled back)
)

// drainLoop is the drain, written once: every Interval (the first pass at
// once) rescan the holders, cut a dead server off when holders sit in D
// state, apply the releases still to do, finish when none is left
// (ends.empty), else act on each again and say who is left and why. It
// returns true when the mount is gone, false when the run ended on the
// deadline or a cancellation (ends.timedOut, ends.cancelled).
func (r *run) drainLoop(ends drainEnds) bool {
	f := ends.fence
	deadline := time.NewTimer(r.deadline.Sub(r.u.now()))
	defer deadline.Stop()
	tick := time.NewTicker(r.plan.Interval)
	defer tick.Stop()
	for first := true; ; first = false {
		if r.forcedGone && f != nil {
			return true // MNT_FORCE, cutting it off a dead server, unmounted it
		}
		if !first {
			select {
			case <-tick.C:
			case <-deadline.C:
				ends.timedOut()
				return false
			case <-r.ctx.Done():
				ends.cancelled()
				return false
			}
			// A round that outlasted the deadline (a revoke waits up to
			// its stop timeout) finds the tick and the deadline both
			// ready, and select picks at random: the deadline and a
			// cancellation win, or one more round (a scan, on a loaded
			// machine seconds) would run past --timeout.
			switch {
			case r.ctx.Err() != nil:
				ends.cancelled()
				return false
			case !r.u.now().Before(r.deadline):
				ends.timedOut()
				return false
			}
		}
		hs, err := r.scanHolders()
		if r.ctx.Err() != nil {
			// A scan cut short by the cancellation is partial: it proves
			// nothing about the holders.
			ends.cancelled()
			return false
		}
		if err != nil {
			r.send(Event{Stage: StageDrain, Note: DrainRescanFailed{}, Err: err})
			continue
		}
		r.remaining = hs
		if n := stuckHolders(hs); n > 0 && r.serverCheck(f, CutCause{Kind: CauseDState, Count: n}) && f != nil {
			return true
		}
		if len(r.releases) > 0 {
			r.applyReleases(f, true)
		}
		if len(hs) == 0 {
			switch ends.empty() {
			case drainGone:
				return true
			case drainEnded:
				return false
			case drainNext:
				continue
			}
		}
		r.actAll(StageDrain, hs)
		r.send(Event{Stage: StageDrain, Remaining: len(hs), Note: DrainLeft{Left: r.whyLeft(hs), NotReleased: r.releasesLeft()}, Holders: r.changedPicture()})
	}
}

// unmountWhenEmpty is the drain's end once no process holds the fenced
// mount: the real unmount (gone), or, still busy, why (the drain goes
// on), or a failure, which rolls the fence back (the run ended).
func (r *run) unmountWhenEmpty(f *Fence) drainStep {
	r.send(Event{Stage: StageDrain, Note: NothingHolds{}, Holders: r.changedPicture()})
	err := r.unmountReal(f)
	if err == nil {
		return drainGone
	}
	if !isBusy(err) {
		r.rollback(f, RollbackWhy{UnmountText: oneLine(err.Error())}, err)
		return drainEnded
	}
	ids := []inspect.MountID{r.target.ID}
	for _, s := range r.plan.Submounts {
		ids = append(ids, s.ID)
	}
	var ue *Error
	if r.server.Probed && !r.server.Answering && errors.As(err, &ue) {
		ue.Hint, ue.Busy = "", nil // not a loop device or swap file: the server (busyHint)
	}
	r.send(Event{Stage: StageDrain, Note: BusyNoHolder{Why: r.busyReason(ids...), NotReleased: r.releasesLeft()}, Err: err, Holders: r.changedPicture()})
	return drainNext
}

// busyHint explains an EBUSY with no process holding the mount: a server
// that does not answer, or what else holds it (busyHint).
func (r *run) busyHint(ids []inspect.MountID) BusyWhy {
	if r.server.Probed && !r.server.Answering {
		return BusyWhy{Dead: r.deadHint()}
	}
	return BusyWhy{Others: busyReasons(r.lastSnap, ids...)}
}

// remainingHolders are the holders of the last scan.
func (r *run) remainingHolders() []inspect.Holder { return r.remaining }

// whyLeft explains each remaining holder: how it holds the mount (the
// kinds of its uses) and its state (refused and why, signalled, D state).
func (r *run) whyLeft(hs []inspect.Holder) []LeftHolder {
	out := make([]LeftHolder, 0, len(hs))
	for _, h := range hs {
		kinds := map[string]bool{}
		var ks []string
		for _, use := range h.Uses {
			if k := use.Kind.String(); !kinds[k] {
				kinds[k] = true
				ks = append(ks, k)
			}
		}
		out = append(out, LeftHolder{Who: r.who(h), Kinds: ks, DState: h.State == 'D', State: *r.holders[h.PID]})
	}
	return out
}

// drainTimeout says why the drain gave up: the holders left and why, or,
// with none left, what else keeps the mount busy.
func (r *run) drainTimeout() *DrainTimeout {
	t := &DrainTimeout{Timeout: r.plan.Timeout, NotReleased: r.releasesLeft()}
	left := r.remainingHolders()
	if len(left) == 0 && r.lastSnap != nil {
		ids := []inspect.MountID{r.target.ID}
		for _, s := range r.plan.Submounts {
			ids = append(ids, s.ID)
		}
		busy := r.busyReason(ids...)
		t.Busy = &busy
		return t
	}
	t.Left = r.whyLeft(left)
	return t
}

// noteRestored reports the holders left inside an injected syscall that
// the tracer process has restored and released since, and forgets them as
// stuck.
func (r *run) noteRestored() {
	rr, ok := r.u.sys.(RestoreReporter)
	if !ok {
		return
	}
	for _, pid := range r.order {
		if _, ok := r.stuck[pid]; !ok {
			continue
		}
		if got, ok := rr.Restored(pid); ok {
			delete(r.stuck, pid)
			delete(r.retry, pid)
			r.revoked++
			st := r.holder(pid)
			st.State, st.Why = StatusRevoked, HolderRestored{Who: Who{PID: pid, Comm: st.Comm}, Restore: got}
			r.send(Event{Stage: StageRevoke, PID: pid, Note: st.Why, Holders: r.changedPicture()})
		}
	}
}

// busyReason says why the mount is busy when no process shows as holding
// it: a holder left inside an injected close(2) no longer has the fd in
// its table, but the call holds the file until it returns; otherwise
// busyHint.
func (r *run) busyReason(ids ...inspect.MountID) BusyWhy {
	var ws []Stuck
	for _, pid := range r.order {
		if w, ok := r.stuck[pid]; ok {
			ws = append(ws, w)
		}
	}
	if len(ws) > 0 {
		return BusyWhy{Stuck: ws}
	}
	return r.busyHint(ids)
}
