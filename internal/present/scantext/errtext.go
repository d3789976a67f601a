package scantext

import (
	"fmt"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
)

// The sentences below are shown inside unmount's errors as well as by
// present: an error is text, so, unlike the rest of this package, they
// escape the names they carry as they are built (termsafe.Quote, Text),
// once; whoever shows them passes them through termsafe.Message, which
// leaves those escapes as they are.

// SystemMount says why a mount is one the system runs on: by where it is
// mounted (api false) or because its type is a kernel API filesystem.
func SystemMount(api bool, mountpoint, fstype string) string {
	if api {
		return termsafe.Quote(mountpoint) + " is a kernel API filesystem (" + termsafe.Text(fstype) + "), not storage"
	}
	return termsafe.Quote(mountpoint) + " is a mount the system runs on"
}

// AllowSystem is how to lift the refusal of a mount the system runs on.
const AllowSystem = "mounttop umount --allow-system-mount overrides this"

// ForceIgnored is the plain statement shown before, and in the EBUSY of,
// a force on a filesystem of type fstype whose umount_begin does nothing
// (unmount.ForceIgnored).
func ForceIgnored(fstype string) string {
	return "MNT_FORCE is ignored by " + termsafe.Text(fstype) + ": a busy mount stays busy; --staged revokes its holders instead"
}

// BusyKernel names a kernel holder that keeps a mount busy, the file it
// holds and what would release it: "loop /dev/loop3 (/mnt/disk.img):
// detach loop device (losetup -d /dev/loop3)".
func BusyKernel(k inspect.KernelHolder) string {
	name := KernelName(k)
	s := termsafe.Text(k.Kind.String()) + " " + termsafe.Quote(name)
	if k.Path != "" && k.Path != name {
		s += " (" + termsafe.Quote(k.Path) + ")"
	}
	if action := KernelHolderAction(k); action != "" {
		s += ": " + termsafe.Text(action)
	}
	return s
}

// BusyCopy names a copy of a mount in mount namespace ns, at mountpoint
// there, that umount2 propagates to and that holders hold: the unmount
// fails with EBUSY while it is busy (propagate_mount_busy, fs/pnode.c).
func BusyCopy(ns uint64, mountpoint string, holders []inspect.Holder) string {
	return fmt.Sprintf("its copy in mount namespace mnt:[%d] at %s, held there by %s", ns, termsafe.Quote(mountpoint), HolderList(holders, 3))
}

// NoProcessHolder is what EBUSY means when no process holds the mount and
// nothing else the scan sees does.
const NoProcessHolder = "no process holds it: a kernel holder (loop device or swap file on it, nfsd export, io_uring, fd in flight) or a copy in another mount namespace"

// DetachedRefused says why a plain mode ("lazy", "force", "expire")
// cannot take a detached mount: umount2(2) names a mount by a path, and a
// detached mount is in no mount table.
func DetachedRefused(mode string) string {
	return "the mount is detached (lazily unmounted: in no mount table), so umount2 (" + mode + ") cannot name it; --staged revokes its holders so that the kernel lets it go"
}

// The hints of unmount's errors (Error.Hint): what to try instead, or
// what is left behind.
const (
	// HintExpireSubmounts: a mount with submounts is never idle
	// (MNT_EXPIRE), its submounts are.
	HintExpireSubmounts = "expire the submounts first"
	// HintRecursive: a mount with submounts is refused without --recursive.
	HintRecursive = "--recursive unmounts them too, deepest first"
	// HintFenceLeftBeneath: the fence could not be moved to its stash and
	// sits beneath the real mount, where no path names it.
	HintFenceLeftBeneath = "an empty read-only tmpfs is left beneath the mount; it shows only once the mount is gone"
)

// HintScanFailed: the scan for the holders of a busy mount failed (err:
// its error, whose names it escaped).
func HintScanFailed(err error) string { return "could not scan for holders: " + err.Error() }
