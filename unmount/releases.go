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
	"mounttop/internal/termsafe"
	"mounttop/unmount/release"
)

// findReleases lists what can free the mounts ids besides revoking this
// namespace's processes (DESIGN.md, "Other mount namespaces" and "Holders
// /proc does not show per process"): loop devices backed by a file on them
// (detach, loop(4)), swap files on them (swapoff(2)), and copies of the
// filesystem in other mount namespaces (unmount there by setns(2): lazily
// when something there holds the copy, plainly when it is idle). nfsd
// exports, io_uring registered files and binfmt_misc entries are named in
// the warnings only: mounttop has no action for them.
//
// A copy in the host's mount namespace (pid 1's) is refused unless
// releaseHost: unmounting there changes what the whole machine sees, which
// a run from inside a container or an unshare'd shell must not do by a
// plain --release. When pid 1's namespace cannot be read, no namespace is
// known to be the host's: the plan's words say so (NamespaceName).
func findReleases(snap *inspect.Snapshot, ids []inspect.MountID, releaseHost bool) []Release {
	var out []Release
	for _, id := range ids {
		for _, k := range snap.Kernel[id] {
			switch k.Kind {
			case inspect.KernelLoop:
				r := Release{Kind: "loop", Name: k.Name, File: release.FileID{Dev: k.Dev, Ino: k.Ino},
					What: fmt.Sprintf("detach loop device %s (its backing file %s)", termsafe.Quote(k.Name), termsafe.Quote(k.Path))}
				if at := loopMountedAt(snap, k.Name); at != "" {
					r.Refused = "the loop device is itself mounted (" + at + "): unmount it first"
				}
				out = append(out, r)
			case inspect.KernelSwap:
				out = append(out, Release{Kind: "swap", Name: k.Name, File: release.FileID{Dev: k.Dev, Ino: k.Ino},
					What: fmt.Sprintf("swapoff %s (its pages move back to memory)", termsafe.Quote(k.Name))})
			}
		}
		for _, c := range snap.Copies(id) {
			r := Release{Kind: "copy", Mountpoint: c.Mount.Mountpoint, OldID: c.Mount.OldID, ParentOld: c.Mount.OldParentID,
				Dev:  unix.Mkdev(uint32(c.Mount.Major), uint32(c.Mount.Minor)),
				Lazy: len(c.Holders) > 0, Propagates: c.Propagates, Namespace: c.Namespace.Inode}
			r.Host = c.Namespace.Host
			switch {
			case len(c.Namespace.PIDs) == 0:
				r.Refused = "no process of that namespace is known to enter it through"
			case r.Host && !releaseHost:
				r.PID, r.Refused = c.Namespace.PIDs[0], HostRefusal
			default:
				r.PID = c.Namespace.PIDs[0]
			}
			r.What = copyWhat(snap, r, c.Holders)
			out = append(out, r)
		}
	}
	return out
}

// HostRefusal is the refusal of a copy in the host's mount namespace,
// lifted only by the operator's explicit confirmation (Plan.ReleaseHost,
// ConfirmHost).
const HostRefusal = "it is the host's mount namespace (pid 1's): releasing there needs an explicit confirmation (--release-host)"

// HostRefused reports whether r is refused only because it would act in
// the host's mount namespace.
func (r Release) HostRefused() bool { return r.Refused == HostRefusal }

// ConfirmHost is r with the operator's explicit confirmation to act in
// the host's mount namespace: that refusal, and no other, is lifted.
func (r Release) ConfirmHost() Release {
	if r.HostRefused() {
		r.Refused = ""
	}
	return r
}

// copyWhat says what releasing a copy does, in the operator's words.
func copyWhat(snap *inspect.Snapshot, r Release, holders []inspect.Holder) string {
	s := fmt.Sprintf("unmount its copy at %s in mount namespace %s (pid %d)", termsafe.Quote(r.Mountpoint), snap.NamespaceName(r.Namespace), r.PID)
	if r.Lazy {
		s += ", lazily (held there by " + holderList(holders, 3) + ", which keep it alive until they let go)"
	}
	if r.Propagates {
		s += "; our unmount propagates to it: a staged run revokes its holders there instead and takes it along"
	}
	return s
}

// loopMountedAt says where the loop device dev is itself mounted (a
// filesystem on it), in this or another namespace's table, or "".
func loopMountedAt(snap *inspect.Snapshot, dev string) string {
	for _, m := range snap.Mounts {
		if m.Source == dev && !m.Detached {
			return "at " + termsafe.Quote(m.Mountpoint)
		}
	}
	for _, ns := range snap.Namespaces {
		for _, m := range ns.Mounts {
			if m.Source == dev {
				return fmt.Sprintf("at %s in mount namespace mnt:[%d]", termsafe.Quote(m.Mountpoint), ns.Inode)
			}
		}
	}
	return ""
}

// Release frees one non-process holder now, outside a staged run (the
// TUI's per-holder action), and journals it. A refused Release
// (Release.Refused) is ErrRefused and changes nothing.
//
// The journal takes a line before the act (a journal that cannot take it
// refuses the release: nothing is done that it would not show) and one
// with the outcome; a failure of that one is returned with the outcome.
func (u *Unmounter) Release(ctx context.Context, r Release) error {
	if u.journal != nil {
		intent := Event{Stage: StagePlan, PID: r.PID, What: r.What, At: u.now()}
		if err := u.journal.record(releaseTarget(r), "release", "", intent); err != nil {
			return fmt.Errorf("%w: the journal cannot be written: %w", ErrRefused, err)
		}
	}
	err := u.release(ctx, r, r.Name)
	ev := Event{Stage: StageRelease, PID: r.PID, What: r.What, Err: err, At: u.now()}
	if err == nil {
		ev.What = "done: " + r.What
	}
	if u.journal != nil {
		if jerr := u.journal.record(releaseTarget(r), "release", "", ev); jerr != nil && err == nil {
			return fmt.Errorf("done, but the journal could not record it: %w", jerr)
		}
	}
	return err
}

// releaseTarget names what a release acts on, for errors and the journal.
func releaseTarget(r Release) string {
	if r.Kind == "copy" {
		return r.Mountpoint
	}
	return r.Name
}

// release carries out r; swapPath is where the swap file can be named now
// (under a fence, in the stash).
func (u *Unmounter) release(ctx context.Context, r Release, swapPath string) error {
	op := "release " + r.Kind
	if r.Refused != "" {
		return &Error{Op: op, Target: releaseTarget(r), Err: fmt.Errorf("%w: %s", ErrRefused, r.Refused)}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Target: releaseTarget(r), Err: ErrCancelled}
	}
	var err error
	switch r.Kind {
	case "copy":
		op = fmt.Sprintf("unmount the copy in mount namespace mnt:[%d] (pid %d)", r.Namespace, r.PID)
		flags := 0
		if r.Lazy {
			flags = unix.MNT_DETACH
		}
		err = u.sys.UnmountCopy(release.Copy{PID: r.PID, Namespace: r.Namespace, Mountpoint: r.Mountpoint, OldID: r.OldID, ParentOldID: r.ParentOld, Dev: r.Dev}, flags)
	case "loop":
		op = "detach loop device"
		err = u.sys.DetachLoop(r.Name, r.File)
	case "swap":
		op = "swapoff"
		err = u.sys.Swapoff(swapPath, r.File)
	default:
		err = fmt.Errorf("%w: unknown kind %q", ErrRefused, r.Kind)
	}
	if err != nil {
		return &Error{Op: op, Target: releaseTarget(r), Err: err}
	}
	return nil
}

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
		r.releases = append(r.releases, &releaseState{r: rel, retry: rel.Refused == ""})
	}
}

// releaseSwapsNow swaps off before the fence goes up: under an over-mount
// fence the swap file can no longer be named by any path (swapoff(2) takes
// a path), and a swap file is released the same before as after.
func (r *run) releaseSwapsNow() {
	for _, st := range r.releases {
		if st.r.Kind == "swap" && !st.done && st.r.Refused == "" {
			r.applyRelease(st, nil, " (before the fence: under an over-mount fence the file cannot be named)")
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
		case st.r.Refused != "":
			if !retry {
				r.send(Event{Stage: StageRelease, What: "not done: " + st.r.What + ": " + st.r.Refused, Err: ErrRefused})
				st.done = true
			}
			continue
		case retry && !st.retry:
			continue
		case st.r.Kind == "copy" && st.r.Propagates:
			// The over-mount fence covers this copy in its namespace (the
			// fence propagated there too), so it cannot be named by path;
			// its holders were revoked with ours, and the final umount2
			// propagates to it.
			st.done = true
			r.send(Event{Stage: StageRelease, What: fmt.Sprintf("its copy at %s in mount namespace mnt:[%d] goes with our unmount (it propagates there); its holders there are revoked like ours",
				termsafe.Quote(st.r.Mountpoint), st.r.Namespace)})
			continue
		}
		if st.r.Kind == "swap" && f != nil && f.Kind == FenceOver {
			// Tried before the fence and failed: under the over-mount
			// fence no path leads to the file any more.
			st.done = true
			r.send(Event{Stage: StageRelease, Err: st.err, What: "not done: " + st.r.What + ": under the over-mount fence the swap file cannot be named (swapoff(2) takes a path)"})
			continue
		}
		r.applyRelease(st, f, "")
	}
}

// applyRelease carries out one release and reports it. A copy found busy
// when a plain unmount was planned (something there holds it now) is
// unmounted lazily instead.
func (r *run) applyRelease(st *releaseState, f *Fence, note string) {
	err := r.boundedRelease(st.r, r.swapPath(st.r.Name, f))
	if err != nil && st.r.Kind == "copy" && !st.r.Lazy && errors.Is(err, unix.EBUSY) {
		r.send(Event{Stage: StageRelease, PID: st.r.PID, Err: err, What: "the copy is busy now; unmounting it lazily instead"})
		st.r.Lazy = true
		err = r.boundedRelease(st.r, "")
	}
	if r.abandoned(StageRelease, err, "it goes on in the kernel (swapoff reads every swapped page back: from a server that does not answer, never); not tried again") {
		st.done, st.err = true, err
		return
	}
	if err == nil {
		st.done, st.err = true, nil
		r.released++
		r.send(Event{Stage: StageRelease, PID: st.r.PID, What: "done: " + st.r.What + note})
		return
	}
	again := st.err != nil && st.err.Error() == err.Error()
	st.err, st.retry = err, transientRelease(err)
	if !st.retry {
		st.done = true // failed for good: reported now, named in the drain
	}
	if !again {
		r.send(Event{Stage: StageRelease, PID: st.r.PID, Err: err, What: "failed: " + st.r.What})
	}
}

// boundedRelease is release within the run's call deadline: swapoff reads
// the swapped pages back from the file, a loop detach or the unmount of a
// copy can wait on the filesystem too, and none of them may hold the run
// up past its deadline (bounded).
func (r *run) boundedRelease(rel Release, swapPath string) error {
	op := fmt.Sprintf("release %s %s", rel.Kind, termsafe.Quote(releaseTarget(rel)))
	if rel.Kind == "swap" {
		op = "swapoff of " + termsafe.Quote(swapPath)
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

// ErrReleaseFailed ends a run whose mount is gone (verified) while a
// release of the plan failed: what it was to free (a copy in another
// namespace, a loop device, a swap file) still holds the filesystem.
var ErrReleaseFailed = errors.New("a release failed")

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
func (r *run) releasesLeft() string {
	var parts []string
	for _, st := range r.releases {
		if st.err != nil && (!st.done || !errors.Is(st.err, ErrRefused)) {
			parts = append(parts, st.r.What+": "+oneLine(st.err.Error()))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; not released: " + strings.Join(parts, "; ")
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
					r.inCopy = map[int]string{}
				}
				r.inCopy[h.PID] = fmt.Sprintf("mnt:[%d]", c.Namespace.Inode)
				out = append(out, h)
			}
		}
	}
	return out
}
