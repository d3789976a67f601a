package ui

import (
	"context"

	"mounttop/inspect"
	"mounttop/unmount"
)

// Engine is the real Unmounter: unmount.Unmounter's Prepare and Run, with
// the request's choices turned into a plan. Submounts go with the target
// (Recursive) for every mode but expire, which the engine refuses for a
// mount with submounts; the dialog names them before anything happens.
type Engine struct {
	U    *unmount.Unmounter
	Book *unmount.ExpiryBook // the marks U sets; read by ExpiryMarks
}

// Plan implements Unmounter.
func (e Engine) Plan(ctx context.Context, req Request) (unmount.Plan, error) {
	p := unmount.Plan{
		Target:         req.Target,
		Mode:           req.Mode,
		Policy:         req.Policy,
		Recursive:      req.Mode != unmount.ModeExpire,
		ExpireWhenIdle: req.WhenIdle,
		Release:        req.Release,
	}
	if req.Mode == unmount.ModeExpire {
		p.Interval = req.Interval
	}
	return e.U.Prepare(ctx, p)
}

// Run implements Unmounter. A choice of the dialog that changes what the
// plan computes ("signal instead", "also release") prepares it again, so
// the run's holder actions and refusals are the chosen policy's; a plan
// that cannot be prepared again ends as a single StageDone event.
func (e Engine) Run(ctx context.Context, req Request, plan unmount.Plan) <-chan unmount.Event {
	plan.Mode = req.Mode
	if req.Policy != 0 {
		plan.Policy = req.Policy
	}
	plan.ExpireWhenIdle = req.WhenIdle
	plan.Release = req.Release && req.Mode == unmount.ModeStaged
	if req.Mode == unmount.ModeExpire && req.Interval > 0 {
		plan.Interval = req.Interval
	}
	if plan.Stale() {
		p, err := e.U.Prepare(ctx, plan)
		if err != nil {
			ch := make(chan unmount.Event, 1)
			ch <- unmount.Event{Stage: unmount.StageDone, Err: err, Result: &unmount.Result{Summary: "nothing changed: " + err.Error()}}
			close(ch)
			return ch
		}
		plan = p
	}
	return e.U.Run(ctx, plan)
}

// Release implements Unmounter.
func (e Engine) Release(ctx context.Context, r unmount.Release) error {
	return e.U.Release(ctx, r)
}

// ExpiryMarks implements ExpiryReader from the book, in one read of it.
func (e Engine) ExpiryMarks(ids []inspect.MountID) map[inspect.MountID]unmount.ExpiryMark {
	if e.Book == nil {
		return nil
	}
	all := e.Book.All()
	out := make(map[inspect.MountID]unmount.ExpiryMark, len(all))
	for _, id := range ids {
		if m, ok := all[id]; ok {
			out[id] = m
		}
	}
	return out
}

// Leftovers implements Leftovers: the fences killed runs left in snap's
// table (unmount.FindLeftovers).
func (e Engine) Leftovers(ctx context.Context, snap *inspect.Snapshot) []unmount.Leftover {
	return unmount.FindLeftovers(ctx, snap)
}

// RollbackLeftover implements Leftovers.
func (e Engine) RollbackLeftover(ctx context.Context, l unmount.Leftover) (string, error) {
	return e.U.RollbackLeftover(ctx, l)
}
