package unmount

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/unmount/revoke"
)

// revoke is the first pass over the holders after the fence. It returns
// false if the run was cancelled before any holder was touched.
func (r *run) revoke(f *Fence) bool {
	hs, err := r.scanHolders()
	if r.ctx.Err() != nil {
		return false
	}
	if err != nil {
		r.send(Event{Stage: StageRevoke, Note: RevokeScanFailed{}, Err: err})
		return true
	}
	if len(hs) == 0 {
		r.send(Event{Stage: StageRevoke, Note: NoHolder{}, Holders: r.changedPicture()})
		return true
	}
	r.actAll(StageRevoke, hs) // stops early if cancelled or past the deadline: the drain rolls back, finishes or times out
	return true
}

// act revokes or signals one holder according to the policy, once per
// holder for signals (TERM, then KILL after Grace), every time it is found
// holding for close (a straggler that reopened through a cwd or dirfd).
func (r *run) act(stage Stage, h inspect.Holder) {
	if r.plan.Policy == PolicySignal {
		r.signal(stage, h, r.holder(h.PID))
		return
	}
	if t, ok := r.prepareRevoke(stage, h); ok {
		did, err := r.revokeHolder(h, t)
		r.applyRevoke(stage, h, did, err)
	}
}

// prepareRevoke returns what to revoke from holder h under a close
// policy, or false when there is nothing to do: it cannot be revoked (said
// once), a revoke failed for good earlier, or it holds nothing revocable.
func (r *run) prepareRevoke(stage Stage, h inspect.Holder) (RevokeTargets, bool) {
	st := r.holder(h.PID)
	if refusal, _ := refusalOf(h); refusal != RefusalNone {
		why := HolderNotRevoked{Who: r.who(h), Refusal: refusal}
		if st.State != StatusRefused || !st.refusedFor(refusal) {
			st.State, st.Why = StatusRefused, why
			r.send(Event{Stage: stage, PID: h.PID, Note: why, Holders: r.changedPicture()})
		}
		return RevokeTargets{}, false
	}
	if st.State == StatusRefused && !r.retry[h.PID] {
		return RevokeTargets{}, false // a revoke failed for good earlier (traced, no ptrace): reported then
	}
	t := revokeTargets(h, r.plan.Policy != PolicyClosePlain)
	t.StartTime = h.StartTicks
	t.InjectTimeout = r.injectLimit()
	t.Mounts, t.CopyIDs = r.targetedMounts()
	if t.Empty() {
		return RevokeTargets{}, false // holds only by a lock or a use with nothing to revoke
	}
	return t, true
}

// applyRevoke records how the revoke of holder h went and says so.
func (r *run) applyRevoke(stage Stage, h inspect.Holder, did Revoked, err error) {
	st := r.holder(h.PID)
	switch {
	case err == nil:
		delete(r.retry, h.PID)
		r.revoked++
		st.State, st.Why = StatusRevoked, HolderRevoked{Who: r.who(h), Did: &did}
		r.send(Event{Stage: stage, PID: h.PID, Note: st.Why, Holders: r.changedPicture()})
	case errors.Is(err, ErrHolderGone):
		st.State, st.Why = StatusGone, HolderExited{Who: r.who(h)}
		if err != ErrHolderGone { // its pid names another process now
			st.Why = HolderNotRevoked{Who: r.who(h), ErrText: oneLine(err.Error())}
		}
		r.send(Event{Stage: stage, PID: h.PID, Note: st.Why, Holders: r.changedPicture()})
	default:
		if r.ctx.Err() != nil && errors.Is(err, r.ctx.Err()) {
			if r.underWay == nil {
				r.underWay = map[int]Who{}
			}
			r.underWay[h.PID] = r.who(h)
		}
		var se *revoke.StuckError
		if errors.As(err, &se) {
			if r.stuck == nil {
				r.stuck = map[int]Stuck{}
			}
			r.stuck[h.PID] = Stuck{Who: r.who(h), InsideText: se.Inside()}
		}
		why := HolderNotRevoked{Who: r.who(h), ErrText: oneLine(err.Error())}
		again := st.State == StatusRefused && st.Why == Note(why)
		st.State, st.Why = StatusRefused, why
		// A holder that did not stop (D state) or whose injected call
		// hung may come out of it: try it again on the next drain pass.
		r.retry[h.PID] = errors.Is(err, ErrTransient)
		if !again {
			r.send(Event{Stage: stage, PID: h.PID, Err: err, Note: why, Holders: r.changedPicture()})
		}
		if r.retry[h.PID] {
			// It did not stop, or its injected call hung: on a dead
			// server both wait on the server. Cut it off, then the next
			// pass finds it free.
			r.serverCheck(r.fenced, CutCause{Kind: CauseRevokeHung, Who: r.who(h)})
		}
	}
}

// targetedMounts are every mount the run acts on, as the last scan (the
// one the holders come from) knows them: the target and its submounts by
// unique ID, and with Plan.Release their copies in other mount namespaces
// that the unmount propagates to, by reusable ID (a scan of another
// namespace's mountinfo learns no unique IDs). The revoker checks every
// use against them once the holder is stopped.
func (r *run) targetedMounts() (ids []inspect.MountID, copyIDs []int) {
	ids = []inspect.MountID{r.target.ID}
	if r.lastSnap == nil {
		return ids, nil
	}
	ids = append(ids, r.lastSnap.Descendants(r.target.ID)...)
	ids = append(ids, r.stackedIDs()...)
	if !r.plan.Release {
		return ids, nil
	}
	for _, id := range ids {
		for _, c := range r.lastSnap.Copies(id) {
			if c.Propagates {
				copyIDs = append(copyIDs, c.Mount.OldID)
			}
		}
	}
	return ids, copyIDs
}

func (r *run) signal(stage Stage, h inspect.Holder, st *HolderState) {
	if r.termAt == nil {
		r.termAt, r.killed = map[int]time.Time{}, map[int]bool{}
	}
	proc, err := r.process(h)
	if err != nil {
		state, why := StatusGone, HolderNotSignalled{Who: Who{PID: h.PID, Comm: h.Comm}, ErrText: oneLine(err.Error()), Gone: true}
		if !errors.Is(err, ErrHolderGone) {
			state, why.Gone = StatusRefused, false
		}
		if st.State == state && st.Why == Note(why) {
			return // said on an earlier pass
		}
		st.State, st.Why = state, why
		r.send(Event{Stage: stage, PID: h.PID, Err: err, Note: why, Holders: r.changedPicture()})
		return
	}
	at, termed := r.termAt[h.PID]
	var sig unix.Signal
	switch {
	case !termed:
		sig = unix.SIGTERM
	case !r.killed[h.PID] && r.u.now().Sub(at) >= r.plan.Grace:
		sig = unix.SIGKILL
	default:
		return
	}
	err = proc.Signal(sig)
	if sig == unix.SIGTERM {
		r.termAt[h.PID] = r.u.now()
	} else {
		r.killed[h.PID] = true
	}
	name := unix.SignalName(sig)
	switch {
	case err == nil:
		r.signalled++
		refusal, _ := refusalOf(h)
		sent := HolderSignalled{Who: Who{PID: h.PID, Comm: h.Comm}, Signal: name, Refusal: refusal}
		st.State, st.Why = StatusSignalled, sent
		r.send(Event{Stage: stage, PID: h.PID, Note: sent, Holders: r.changedPicture()})
	case errors.Is(err, unix.ESRCH):
		st.State, st.Why = StatusGone, SignalledExited{PID: h.PID}
		r.send(Event{Stage: stage, PID: h.PID, Note: st.Why, Holders: r.changedPicture()})
	default:
		r.send(Event{Stage: stage, PID: h.PID, Err: err, Note: SignalFailed{Who: Who{PID: h.PID, Comm: h.Comm}, Signal: name}, Holders: r.changedPicture()})
	}
}

// process is the pidfd of holder h, opened the first time h is met
// (OpenProcess, which checks that the pid still names the process the
// scan saw start at h.StartTicks) and kept for the run, so that every
// signal reaches that process or none. A holder met again under the same
// pid but with another start time is a new process: its pidfd is opened
// afresh and its signal sequence starts over.
func (r *run) process(h inspect.Holder) (Process, error) {
	if p, ok := r.procs[h.PID]; ok {
		if p.start == h.StartTicks {
			return p.proc, nil
		}
		_ = p.proc.Close()
		delete(r.procs, h.PID)
		delete(r.termAt, h.PID)
		delete(r.killed, h.PID)
	}
	proc, err := r.u.sys.OpenProcess(h.PID, h.StartTicks)
	if err != nil {
		return nil, err
	}
	if r.procs == nil {
		r.procs = map[int]heldProcess{}
	}
	r.procs[h.PID] = heldProcess{proc: proc, start: h.StartTicks}
	return proc, nil
}

// heldProcess is a holder's pidfd and the start time it was checked with.
type heldProcess struct {
	proc  Process
	start uint64
}
