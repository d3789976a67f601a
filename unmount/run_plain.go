package unmount

import (
	"errors"
	"time"

	"mounttop/inspect"
)

// plain runs Lazy or Force, submounts first (deepest first) when the plan
// is recursive. MNT_DETACH takes the submounts with it, so lazy needs no
// loop.
func (r *run) plain() {
	p := r.plan
	if p.Mode == ModeForce && ForceIgnored(p.Target.FSType) {
		r.send(Event{Stage: StageUnmount, Note: ForceIgnoredFS{FSType: p.Target.FSType}})
	}
	list := []inspect.Mount{p.Target}
	if p.Mode == ModeForce {
		list = append(append([]inspect.Mount(nil), p.Submounts...), p.Target)
	}
	flag := "MNT_DETACH"
	if p.Mode == ModeForce {
		flag = "MNT_FORCE"
	}
	for i := range list {
		m := &list[i]
		var err error
		if p.Mode == ModeLazy {
			err = r.u.Lazy(r.ctx, m)
		} else {
			err = r.u.Force(r.ctx, m)
		}
		if err != nil {
			r.fail(StageUnmount, err, PlainUnmounted{Flag: flag, Mountpoint: m.Mountpoint, Failed: true})
			return
		}
		r.send(Event{Stage: StageUnmount, Mount: m.ID, Note: PlainUnmounted{Flag: flag, Mountpoint: m.Mountpoint}})
	}
	r.done(Result{Gone: true, Outcome: PlainGone{Mountpoint: p.Target.Mountpoint, Lazy: p.Mode == ModeLazy, Holders: len(p.Holders)}}, nil)
}

// expire makes the MNT_EXPIRE attempt, or with ExpireWhenIdle re-arms it
// every Interval until the mount goes: the userspace twin of the kernel's
// periodic mark_mounts_for_expiry() pass over an automount's expiry list.
func (r *run) expire() {
	p := r.plan
	m := &p.Target
	var deadline <-chan time.Time
	if p.ExpireWhenIdle && p.Timeout > 0 {
		t := time.NewTimer(p.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for attempt := 1; ; attempt++ {
		res, err := r.u.Expire(r.ctx, m)
		what := ExpireAttempt{Attempt: attempt}
		switch {
		case err != nil && p.ExpireWhenIdle && attempt > 1 && errors.Is(err, ErrGone):
			// Gone between two attempts (statmount: ENOENT): something else
			// unmounted it, or our mark expired it through another path.
			what.Step = ExpireElsewhere
			r.send(Event{Stage: StageExpire, Note: what})
			r.done(Result{Gone: true, Outcome: Expired{Mountpoint: m.Mountpoint, How: ExpiredElsewhere}}, nil)
			return
		case err != nil && !(p.ExpireWhenIdle && isBusy(err)):
			what.Step = ExpireFailed
			r.fail(StageExpire, err, what)
			return
		case err != nil:
			what.Step, what.ErrText = ExpireBusy, oneLine(err.Error())
		case res.Gone:
			what.Step, what.MarkedAt = ExpireGone, res.PrevMarkedAt
			r.send(Event{Stage: StageExpire, Note: what})
			r.done(Result{Gone: true, Outcome: Expired{Mountpoint: m.Mountpoint, How: ExpiredGone}}, nil)
			return
		case res.Cleared:
			what.Step, what.MarkedAt, what.Cleared = ExpireCleared, res.PrevMarkedAt, res.Mark.Cleared
		default:
			what.Step = ExpireMarked
		}
		if !p.ExpireWhenIdle {
			r.send(Event{Stage: StageExpire, Note: what})
			r.done(Result{Marked: true, Outcome: Expired{Mountpoint: m.Mountpoint, How: ExpiredMarked}}, nil)
			return
		}
		r.send(Event{Stage: StageExpire, Note: what, Err: err})
		select {
		case <-tick.C:
		case <-deadline:
			r.done(Result{Marked: err == nil, Outcome: Expired{Mountpoint: m.Mountpoint, How: ExpiredNotIdle, Timeout: p.Timeout}}, ErrTimeout)
			return
		case <-r.ctx.Done():
			r.done(Result{Marked: err == nil, Outcome: Expired{Mountpoint: m.Mountpoint, How: ExpiredCancelled}}, ErrCancelled)
			return
		}
	}
}
