package unmount

import (
	"context"
	"errors"
	"path"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/bounded"
)

// stackedIDs are the unique IDs of the plan's stacked filesystems
// (Plan.Stacked): their holders are revoked with the target's.
func (r *run) stackedIDs() []inspect.MountID {
	var ids []inspect.MountID
	for _, s := range r.plan.Stacked {
		ids = append(ids, s.ID)
	}
	return ids
}

// unmountStacked unmounts the plan's stacked filesystems (overlays with a
// layer on the target; Plan.Stacked) before the target, in order, each
// like any unmount: anchored on its mount point's directory, re-checked
// by unique ID, not lazy, verified. One gone already is skipped.
func (r *run) unmountStacked(ctx context.Context) error {
	for _, s := range r.plan.Stacked {
		m := s
		a, err := r.u.anchor(&m, nil, m.Mountpoint)
		if err == nil {
			err = r.finalUmount(ctx, &m, a)
			a.Close()
		}
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			r.send(Event{Stage: StageUnmount, Mount: m.ID, Err: err, Note: StackedUnmounted{FSType: m.FSType, Mountpoint: m.Mountpoint, Failed: true}})
			return err
		}
		r.send(Event{Stage: StageUnmount, Mount: m.ID, Note: StackedUnmounted{FSType: m.FSType, Mountpoint: m.Mountpoint}})
	}
	return nil
}

// unmountReal is the final, non-lazy unmount of the real mount (and its
// submounts, deepest first), the fence's removal and the verification. A
// FenceBeneath keeps the fence up until the real mount is gone; a FenceOver
// covers the real mount, which cannot be unmounted while covered, so the
// fence goes first. Every umount2 works from the directory fds the fence
// keeps (Fence.Real: the stash, or the target's parent directory), never
// from a path walked again.
func (r *run) unmountReal(f *Fence) error {
	u := r.u
	// Once begun, the unmount is finished whatever happens to ctx: a
	// cancelled ctx would cut the identity re-check's table read short.
	ctx := context.WithoutCancel(r.ctx)
	if err := r.unmountStacked(ctx); err != nil {
		return err
	}
	if f.Kind == FenceOver {
		if err := u.sys.RemoveFence(f); err != nil {
			return err
		}
		r.send(Event{Stage: StageUnmount, Note: OverFenceRemoved{}})
	}
	for _, sub := range r.plan.Submounts {
		m := sub
		rel := strings.TrimPrefix(sub.Mountpoint, r.target.Mountpoint)
		m.Mountpoint = path.Join(f.RealPath, rel)
		a, err := u.anchor(&m, f.Real, path.Join(f.Real.Name, rel))
		if err == nil {
			err = r.finalUmount(ctx, &m, a)
			a.Close()
		}
		if err != nil {
			if errors.Is(err, ErrGone) {
				continue
			}
			r.send(Event{Stage: StageUnmount, Mount: sub.ID, Err: err, Note: SubmountUnmounted{Mountpoint: sub.Mountpoint, Failed: true}})
			return err
		}
		r.send(Event{Stage: StageUnmount, Mount: sub.ID, Note: SubmountUnmounted{Mountpoint: sub.Mountpoint}})
	}
	m := r.target
	m.Mountpoint = f.RealPath
	if err := r.finalUmount(ctx, &m, f.Real); err != nil {
		if f.Kind == FenceOver && isBusy(err) {
			// The fence is down already: put it back before draining on.
			if nf, ferr := u.sys.Fence(&r.target, true); ferr == nil {
				f.Close()
				*f = *nf
			}
		}
		return err
	}
	if f.Kind == FenceOver {
		f.Close() // the fence went first; nothing is left to do from its fds
	}
	r.send(Event{Stage: StageUnmount, Note: RealUnmounted{Path: f.RealPath}})
	return nil
}

// finish removes a FenceBeneath and ends the run.
func (r *run) finish(f *Fence) {
	if f.Kind == FenceBeneath {
		op := callOn("removing the fence at", f.Target)
		if err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.RemoveFence(f) }); err != nil {
			r.abandoned(StageUnmount, err, ConsequenceNone)
			r.send(Event{Stage: StageUnmount, Err: err, Note: FenceLeft{Target: f.Target}})
			r.done(Result{Gone: true, Outcome: FenceStays{Target: f.Target}}, err)
			return
		}
		r.send(Event{Stage: StageUnmount, Note: FenceRemoved{Target: f.Target, File: f.File}})
	}
	r.noteRestored()
	// Unsettled: not restored yet: the call may have returned (the
	// connection was cut) without the tracer process having let the
	// holder go.
	gone := StagedGone{Mountpoint: r.target.Mountpoint, Revoked: r.revoked, Signalled: r.signalled, Released: r.released,
		Unsettled: r.unsettled(), CutOff: r.cutByRun()}
	if err := r.releaseFailures(); err != nil {
		// The mount is gone, but not what the operator asked to free
		// with it: the result line says so first, and the run fails.
		gone.NotReleased = r.releasesLeft()
		r.done(Result{Gone: true, Outcome: gone}, err)
		return
	}
	r.done(Result{Gone: true, Outcome: gone}, nil)
}
