package unmount

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
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
// known to be the host's: the plan's words say so (present.NamespaceName).
func findReleases(snap *inspect.Snapshot, ids []inspect.MountID, releaseHost bool) []Release {
	var out []Release
	for _, id := range ids {
		for _, k := range snap.Kernel[id] {
			switch k.Kind {
			case inspect.KernelLoop:
				r := Release{Kind: ReleaseLoop, Name: k.Name, File: release.FileID{Dev: k.Dev, Ino: k.Ino}, BackingFile: k.Path}
				if at, ns, ok := loopMountedAt(snap, k.Name); ok {
					r.Refusal, r.RefusedAt, r.RefusedIn = ReleaseLoopMounted, at, ns
				}
				out = append(out, r)
			case inspect.KernelSwap:
				out = append(out, Release{Kind: ReleaseSwap, Name: k.Name, File: release.FileID{Dev: k.Dev, Ino: k.Ino}})
			}
		}
		for _, c := range snap.Copies(id) {
			r := Release{Kind: ReleaseCopy, Mountpoint: c.Mount.Mountpoint, OldID: c.Mount.OldID, ParentOld: c.Mount.OldParentID,
				Dev:  unix.Mkdev(uint32(c.Mount.Major), uint32(c.Mount.Minor)),
				Lazy: len(c.Holders) > 0, Propagates: c.Propagates, Namespace: c.Namespace.Inode}
			r.Host = c.Namespace.Host
			_, r.HostKnown = snap.IsHost(c.Namespace.Inode)
			if r.Lazy {
				r.Holders = c.Holders
			}
			switch {
			case len(c.Namespace.PIDs) == 0:
				r.Refusal = ReleaseNoEntry
			case r.Host && !releaseHost:
				r.PID, r.Refusal = c.Namespace.PIDs[0], ReleaseHostNamespace
			default:
				r.PID = c.Namespace.PIDs[0]
			}
			out = append(out, r)
		}
	}
	return out
}

// HostRefused reports whether r is refused only because it would act in
// the host's mount namespace.
func (r Release) HostRefused() bool { return r.Refusal == ReleaseHostNamespace }

// ConfirmHost is r with the operator's explicit confirmation to act in
// the host's mount namespace: that refusal, and no other, is lifted.
func (r Release) ConfirmHost() Release {
	if r.HostRefused() {
		r.Refusal = ReleaseAllowed
	}
	return r
}

// loopMountedAt says where the loop device dev is itself mounted (a
// filesystem on it): the mount point, and the mount namespace's inode
// when it is another namespace's table (0: ours).
func loopMountedAt(snap *inspect.Snapshot, dev string) (at string, ns uint64, ok bool) {
	for _, m := range snap.Mounts {
		if m.Source == dev && !m.Detached {
			return m.Mountpoint, 0, true
		}
	}
	for _, n := range snap.Namespaces {
		for _, m := range n.Mounts {
			if m.Source == dev {
				return m.Mountpoint, n.Inode, true
			}
		}
	}
	return "", 0, false
}

// Release frees one non-process holder now, outside a staged run (the
// TUI's per-holder action), and journals it. A refused Release
// (Release.Refusal) is ErrRefused and changes nothing.
//
// The journal takes a line before the act (a journal that cannot take it
// refuses the release: nothing is done that it would not show) and one
// with the outcome; a failure of that one is returned with the outcome.
func (u *Unmounter) Release(ctx context.Context, r Release) error {
	if u.journal != nil {
		intent := Event{Stage: StagePlan, PID: r.PID, Note: ReleaseIntent{Release: r}, At: u.now()}
		if err := u.journal.record(releaseTarget(r), "release", "", intent); err != nil {
			return fmt.Errorf("%w: the journal cannot be written: %w", ErrRefused, err)
		}
	}
	err := u.release(ctx, r, r.Name)
	ev := Event{Stage: StageRelease, PID: r.PID, Note: ReleaseOutcome{Release: r, Done: err == nil}, Err: err, At: u.now()}
	if u.journal != nil {
		if jerr := u.journal.record(releaseTarget(r), "release", "", ev); jerr != nil && err == nil {
			return fmt.Errorf("done, but the journal could not record it: %w", jerr)
		}
	}
	return err
}

// releaseTarget names what a release acts on, for errors and the journal.
func releaseTarget(r Release) string {
	if r.Kind == ReleaseCopy {
		return r.Mountpoint
	}
	return r.Name
}

// release carries out r; swapPath is where the swap file can be named now
// (under a fence, in the stash).
func (u *Unmounter) release(ctx context.Context, r Release, swapPath string) error {
	op := "release " + r.Kind.String()
	if r.Refused() {
		return &Error{Op: op, Target: releaseTarget(r), Err: fmt.Errorf("%w: %v", ErrRefused, r.Refusal)}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Target: releaseTarget(r), Err: ErrCancelled}
	}
	var err error
	switch r.Kind {
	case ReleaseCopy:
		op = fmt.Sprintf("unmount the copy in mount namespace mnt:[%d] (pid %d)", r.Namespace, r.PID)
		flags := 0
		if r.Lazy {
			flags = unix.MNT_DETACH
		}
		err = u.sys.UnmountCopy(release.Copy{PID: r.PID, Namespace: r.Namespace, Mountpoint: r.Mountpoint, OldID: r.OldID, ParentOldID: r.ParentOld, Dev: r.Dev}, flags)
	case ReleaseLoop:
		op = "detach loop device"
		err = u.sys.DetachLoop(r.Name, r.File)
	case ReleaseSwap:
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
