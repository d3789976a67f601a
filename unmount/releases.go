package unmount

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
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
				r := Release{Kind: ReleaseLoop, Name: k.Name, File: release.FileID{Dev: k.Dev, Ino: k.Ino},
					What: fmt.Sprintf("detach loop device %s (its backing file %s)", termsafe.Quote(k.Name), termsafe.Quote(k.Path))}
				if at := loopMountedAt(snap, k.Name); at != "" {
					r.Refused = "the loop device is itself mounted (" + at + "): unmount it first"
				}
				out = append(out, r)
			case inspect.KernelSwap:
				out = append(out, Release{Kind: ReleaseSwap, Name: k.Name, File: release.FileID{Dev: k.Dev, Ino: k.Ino},
					What: fmt.Sprintf("swapoff %s (its pages move back to memory)", termsafe.Quote(k.Name))})
			}
		}
		for _, c := range snap.Copies(id) {
			r := Release{Kind: ReleaseCopy, Mountpoint: c.Mount.Mountpoint, OldID: c.Mount.OldID, ParentOld: c.Mount.OldParentID,
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
	if r.Kind == ReleaseCopy {
		return r.Mountpoint
	}
	return r.Name
}

// release carries out r; swapPath is where the swap file can be named now
// (under a fence, in the stash).
func (u *Unmounter) release(ctx context.Context, r Release, swapPath string) error {
	op := "release " + r.Kind.String()
	if r.Refused != "" {
		return &Error{Op: op, Target: releaseTarget(r), Err: fmt.Errorf("%w: %s", ErrRefused, r.Refused)}
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
