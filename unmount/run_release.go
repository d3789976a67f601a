package unmount

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
)

// transientRelease reports a release failure that may pass: a copy that
// became busy, swapoff short of memory, an interrupted call.
func transientRelease(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN)
}

// releaseState is one release's progress during a staged run.
type releaseState struct {
	r     Release
	done  bool
	retry bool  // failed for a reason that may pass: tried again each drain pass
	err   error // the last failure
}

// startReleases copies the plan's releases into the run.
func (r *run) startReleases() {
	if !r.plan.Release {
		return
	}
	for _, rel := range r.plan.Releases {
		r.releases = append(r.releases, &releaseState{r: rel, retry: !rel.Refused()})
	}
}

// releaseSwapsNow swaps off before the fence goes up: under an over-mount
// fence the swap file can no longer be named by any path (swapoff(2) takes
// a path), and a swap file is released the same before as after.
func (r *run) releaseSwapsNow() {
	for _, st := range r.releases {
		if st.r.Kind == ReleaseSwap && !st.done && !st.r.Refused() {
			r.applyRelease(st, nil, true)
		}
	}
}

// applyReleases carries out the releases not done yet (only those that may
// pass when retry is set: the drain's passes), one StageRelease event each.
func (r *run) applyReleases(f *Fence, retry bool) {
	for _, st := range r.releases {
		switch {
		case st.done:
			continue
		case st.r.Refused():
			if !retry {
				r.send(Event{Stage: StageRelease, Note: ReleaseNotDone{Release: st.r}, Err: ErrRefused})
				st.done = true
			}
			continue
		case retry && !st.retry:
			continue
		case st.r.Kind == ReleaseCopy && st.r.Propagates:
			// The over-mount fence covers this copy in its namespace (the
			// fence propagated there too), so it cannot be named by path;
			// its holders were revoked with ours, and the final umount2
			// propagates to it.
			st.done = true
			r.send(Event{Stage: StageRelease, Note: CopyGoesAlong{Mountpoint: st.r.Mountpoint, Namespace: st.r.Namespace}})
			continue
		}
		if st.r.Kind == ReleaseSwap && f != nil && f.Kind == FenceOver {
			// Tried before the fence and failed: under the over-mount
			// fence no path leads to the file any more.
			st.done = true
			r.send(Event{Stage: StageRelease, Err: st.err, Note: ReleaseNotDone{Release: st.r, SwapCovered: true}})
			continue
		}
		r.applyRelease(st, f, false)
	}
}

// applyRelease carries out one release and reports it. A copy found busy
// when a plain unmount was planned (something there holds it now) is
// unmounted lazily instead.
func (r *run) applyRelease(st *releaseState, f *Fence, beforeFence bool) {
	err := r.boundedRelease(st.r, r.swapPath(st.r.Name, f))
	if err != nil && st.r.Kind == ReleaseCopy && !st.r.Lazy && errors.Is(err, unix.EBUSY) {
		r.send(Event{Stage: StageRelease, PID: st.r.PID, Err: err, Note: CopyBusyLazy{}})
		st.r.Lazy = true
		err = r.boundedRelease(st.r, "")
	}
	if r.abandoned(StageRelease, err, ConsequenceRelease) {
		st.done, st.err = true, err
		return
	}
	if err == nil {
		st.done, st.err = true, nil
		r.released++
		r.send(Event{Stage: StageRelease, PID: st.r.PID, Note: Released{Release: st.r, BeforeFence: beforeFence}})
		return
	}
	again := st.err != nil && st.err.Error() == err.Error()
	st.err, st.retry = err, transientRelease(err)
	if !st.retry {
		st.done = true // failed for good: reported now, named in the drain
	}
	if !again {
		r.send(Event{Stage: StageRelease, PID: st.r.PID, Err: err, Note: ReleaseFailed{Release: st.r}})
	}
}

// boundedRelease is release within the run's call deadline: swapoff reads
// the swapped pages back from the file, a loop detach or the unmount of a
// copy can wait on the filesystem too, and none of them may hold the run
// up past its deadline (bounded).
func (r *run) boundedRelease(rel Release, swapPath string) error {
	op := callOn("release "+rel.Kind.String(), releaseTarget(rel))
	if rel.Kind == ReleaseSwap {
		op = callOn("swapoff of", swapPath)
	}
	ctx := context.WithoutCancel(r.ctx) // checked by Do; once begun, the call is the kernel's
	if err := r.ctx.Err(); err != nil {
		return r.u.release(r.ctx, rel, swapPath) // says cancelled, does nothing
	}
	return r.u.calls.Do(r.ctx, r.callLimit(), op, bounded.AnyThread, func() error { return r.u.release(ctx, rel, swapPath) })
}

// swapPath is where the swap file at p can be named now: under a
// beneath-swap fence the mount (with its submounts) lives in the stash.
func (r *run) swapPath(p string, f *Fence) string {
	if f == nil || f.Kind != FenceBeneath || !isUnder(p, r.target.Mountpoint) {
		return p
	}
	return path.Join(f.RealPath, strings.TrimPrefix(p, r.target.Mountpoint))
}

// releaseFailures joins the errors of the releases that were attempted and
// failed (refusals, named in the plan, are not among them), or nil.
func (r *run) releaseFailures() error {
	var errs []error
	for _, st := range r.releases {
		if st.err != nil && !errors.Is(st.err, ErrRefused) {
			errs = append(errs, st.err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrReleaseFailed, errors.Join(errs...))
}

// releasesLeft names the releases that failed, for the drain's report.
func (r *run) releasesLeft() []ReleaseLeft {
	var out []ReleaseLeft
	for _, st := range r.releases {
		if st.err != nil && (!st.done || !errors.Is(st.err, ErrRefused)) {
			out = append(out, ReleaseLeft{Release: st.r, ErrText: oneLine(st.err.Error())})
		}
	}
	return out
}

// copyHolders are the holders of the copies in other namespaces that
// umount2 of ids propagates to (propagate_mount_busy, fs/pnode.c): with
// Plan.Release they are revoked like ours. Their uses' paths read relative
// to their own namespace; the revoke works on fd numbers, mappings and
// threads, which need no path.
func (r *run) copyHolders(snap *inspect.Snapshot, ids []inspect.MountID) []inspect.Holder {
	var out []inspect.Holder
	for _, id := range ids {
		for _, c := range snap.Copies(id) {
			if !c.Propagates {
				continue
			}
			for _, h := range c.Holders {
				if r.inCopy == nil {
					r.inCopy = map[int]uint64{}
				}
				r.inCopy[h.PID] = c.Namespace.Inode
				out = append(out, h)
			}
		}
	}
	return out
}
