package unmount

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/termsafe"
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
		what := fmt.Sprintf("the %s at %s (it uses the mount as a layer)", termsafe.Text(m.FSType), termsafe.Quote(m.Mountpoint))
		if err != nil {
			r.send(Event{Stage: StageUnmount, Mount: m.ID, Err: err, What: what})
			return err
		}
		r.send(Event{Stage: StageUnmount, Mount: m.ID, What: what + " unmounted first"})
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
		r.send(Event{Stage: StageUnmount, What: "fence removed (over-mount); unmounting the mount beneath it"})
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
			r.send(Event{Stage: StageUnmount, Mount: sub.ID, Err: err, What: "submount " + termsafe.Quote(sub.Mountpoint)})
			return err
		}
		r.send(Event{Stage: StageUnmount, Mount: sub.ID, What: fmt.Sprintf("submount %s unmounted", termsafe.Quote(sub.Mountpoint))})
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
	r.send(Event{Stage: StageUnmount, What: fmt.Sprintf("umount2 of %s (not lazy): unmounted, verified by statmount", termsafe.Quote(f.RealPath))})
	return nil
}

// finish removes a FenceBeneath and ends the run.
func (r *run) finish(f *Fence) {
	if f.Kind == FenceBeneath {
		op := "removing the fence at " + termsafe.Quote(f.Target)
		if err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.RemoveFence(f) }); err != nil {
			r.abandoned(StageUnmount, err, "")
			r.send(Event{Stage: StageUnmount, Err: err, What: "the filesystem is unmounted, but removing the fence failed: " + termsafe.Quote(f.Target) + " still shows an empty read-only tmpfs"})
			r.done(Result{Gone: true, Summary: "unmounted; the fence is left at " + termsafe.Quote(f.Target)}, err)
			return
		}
		again := " is a plain directory again"
		if f.File {
			again = " is the file underneath again"
		}
		r.send(Event{Stage: StageUnmount, What: "fence removed: " + termsafe.Quote(f.Target) + again})
	}
	r.noteRestored()
	summary := fmt.Sprintf("%s is unmounted (verified): %d %s revoked, %d signalled",
		termsafe.Quote(r.target.Mountpoint), r.revoked, plural(r.revoked, "holder"), r.signalled)
	// Not restored yet: the call may have returned (the connection was
	// cut) without the tracer process having let the holder go.
	summary += r.unsettled()
	if r.server.Aborted && !r.plan.Server.Aborted {
		summary += "; the server was not answering: the connection was cut, data not yet written is lost"
	}
	if r.released > 0 {
		summary += fmt.Sprintf(", %d %s", r.released, plural(r.released, "release"))
	}
	if err := r.releaseFailures(); err != nil {
		// The mount is gone, but not what the operator asked to free
		// with it: the result line says so first, and the run fails.
		r.done(Result{Gone: true, Summary: "NOT released" + strings.TrimPrefix(r.releasesLeft(), "; not released") + "; " + summary}, err)
		return
	}
	r.done(Result{Gone: true, Summary: summary}, nil)
}
