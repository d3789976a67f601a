package ui

import (
	"context"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// Engine is the real Unmounter: a thin adapter over unmount.Unmounter
// (Prepare, Run, Release) that adds what the view reads besides: the
// expiry marks and the fences killed runs left.
type Engine struct {
	U    *unmount.Unmounter
	Book *unmount.ExpiryBook // the marks U sets; read by ExpiryMarks
}

// Prepare implements Unmounter.
func (e Engine) Prepare(ctx context.Context, p unmount.Plan) (unmount.Plan, error) {
	return e.U.Prepare(ctx, p)
}

// Run implements Unmounter. The view prepares again every choice that
// changes the plan (signal instead, also release); a plan still stale
// (unmount.Plan.Stale) is prepared once more here, and one that cannot be
// ends as a single StageDone event.
func (e Engine) Run(ctx context.Context, p unmount.Plan) <-chan unmount.Event {
	if p.Stale() {
		fresh, err := e.U.Prepare(ctx, p)
		if err != nil {
			ch := make(chan unmount.Event, 1)
			ch <- unmount.Event{Stage: unmount.StageDone, Err: err, Result: &unmount.Result{Summary: "nothing changed: " + err.Error()}}
			close(ch)
			return ch
		}
		p = fresh
	}
	return e.U.Run(ctx, p)
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
	n, err := e.U.RollbackLeftover(ctx, l)
	return present.NoteText(n), err
}
