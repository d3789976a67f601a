package unmount

import (
	"errors"
	"fmt"
	"time"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
)

// plain runs Lazy or Force, submounts first (deepest first) when the plan
// is recursive. MNT_DETACH takes the submounts with it, so lazy needs no
// loop.
func (r *run) plain() {
	p := r.plan
	if p.Mode == ModeForce && ForceIgnored(p.Target.FSType) {
		r.send(Event{Stage: StageUnmount, What: ForceIgnoredNote(p.Target.FSType)})
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
			r.fail(StageUnmount, err, fmt.Sprintf("umount2(%s) of %s failed", flag, termsafe.Quote(m.Mountpoint)))
			return
		}
		r.send(Event{Stage: StageUnmount, Mount: m.ID, What: fmt.Sprintf("umount2(%s) of %s: gone (verified by statmount)", flag, termsafe.Quote(m.Mountpoint))})
	}
	summary := fmt.Sprintf("%s is unmounted", termsafe.Quote(p.Target.Mountpoint))
	if p.Mode == ModeLazy && len(p.Holders) > 0 {
		summary += fmt.Sprintf(" (detached: the filesystem lives on until its %d %s let go)", len(p.Holders), plural(len(p.Holders), "holder"))
	}
	r.done(Result{Gone: true, Summary: summary}, nil)
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
		var what string
		switch {
		case err != nil && p.ExpireWhenIdle && attempt > 1 && errors.Is(err, ErrGone):
			// Gone between two attempts (statmount: ENOENT): something else
			// unmounted it, or our mark expired it through another path.
			r.send(Event{Stage: StageExpire, What: fmt.Sprintf("attempt %d: the mount is gone (unmounted by something else)", attempt)})
			r.done(Result{Gone: true, Summary: fmt.Sprintf("%s is no longer mounted", termsafe.Quote(m.Mountpoint))}, nil)
			return
		case err != nil && !(p.ExpireWhenIdle && isBusy(err)):
			r.fail(StageExpire, err, fmt.Sprintf("attempt %d", attempt))
			return
		case err != nil:
			what = fmt.Sprintf("attempt %d: %s", attempt, oneLine(err.Error()))
		case res.Gone:
			since := ""
			if !res.PrevMarkedAt.IsZero() {
				since = " since " + res.PrevMarkedAt.Format(time.TimeOnly)
			}
			r.send(Event{Stage: StageExpire, What: fmt.Sprintf("attempt %d: untouched and still marked%s, so umount2(MNT_EXPIRE) unmounted it", attempt, since)})
			r.done(Result{Gone: true, Summary: fmt.Sprintf("%s expired and is unmounted", termsafe.Quote(m.Mountpoint))}, nil)
			return
		case res.Cleared:
			what = fmt.Sprintf("attempt %d: the mark set at %s was cleared by an access since (%d %s so far); marked again",
				attempt, res.PrevMarkedAt.Format(time.TimeOnly), res.Mark.Cleared, plural(res.Mark.Cleared, "time"))
		default:
			what = fmt.Sprintf("attempt %d: idle, now marked for expiry (EAGAIN)", attempt)
		}
		if !p.ExpireWhenIdle {
			r.send(Event{Stage: StageExpire, What: what})
			r.done(Result{Marked: true, Summary: fmt.Sprintf("%s is marked for expiry: the same command again unmounts it if nothing touches it meanwhile", termsafe.Quote(m.Mountpoint))}, nil)
			return
		}
		r.send(Event{Stage: StageExpire, What: what, Err: err})
		select {
		case <-tick.C:
		case <-deadline:
			r.done(Result{Marked: err == nil, Summary: fmt.Sprintf("%s did not become idle within %v", termsafe.Quote(m.Mountpoint), p.Timeout)}, ErrTimeout)
			return
		case <-r.ctx.Done():
			r.done(Result{Marked: err == nil, Summary: "cancelled; the mount is still there"}, ErrCancelled)
			return
		}
	}
}

// detachedRefusal says why a plain mode cannot take a detached mount.
func detachedRefusal(m Mode) string {
	return fmt.Sprintf("the mount is detached (lazily unmounted: in no mount table), so umount2 (%s) cannot name it; --staged revokes its holders so that the kernel lets it go", m)
}
