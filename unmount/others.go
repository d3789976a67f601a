package unmount

import (
	"mounttop/inspect"
	"mounttop/internal/present/scantext"
)

// BusyReason is one thing besides the processes of this namespace that
// keeps a mount busy, so that an EBUSY with no process holder still
// explains itself: a kernel holder (a loop device or swap file backed by a
// file on it, an nfsd export, io_uring registered files, ...; submounts
// are listed on their own), or a copy in another mount namespace that
// umount2 propagates to and that is held there (propagate_mount_busy,
// fs/pnode.c). No revoke can release these. As data: present words it
// (present.BusyReasonText), and so does an Error that carries it.
type BusyReason struct {
	// Kernel is the kernel holder, when it is one.
	Kernel *inspect.KernelHolder
	// Else the held copy: its mount namespace's inode, its mount point
	// there (raw) and its holders there.
	Namespace  uint64
	Mountpoint string
	Holders    []inspect.Holder
}

// text is the reason in scantext's words (its names escaped once), for
// an Error's message.
func (r BusyReason) text() string {
	if r.Kernel != nil {
		return scantext.BusyKernel(*r.Kernel)
	}
	return scantext.BusyCopy(r.Namespace, r.Mountpoint, r.Holders)
}

// busyReasons are the BusyReasons of the mounts ids.
func busyReasons(snap *inspect.Snapshot, ids ...inspect.MountID) []BusyReason {
	var out []BusyReason
	for _, r := range busyReasonList(snap, ids...) {
		out = append(out, r.BusyReason)
	}
	return out
}

// busyReason is one of busyReasons, and whether Plan.Release frees it (a
// loop device, a swap file, a held copy that umount2 propagates to).
type busyReason struct {
	BusyReason
	releasable bool
	name       string // a kernel holder's name (/dev/loop3, the swap file)
}

func busyReasonList(snap *inspect.Snapshot, ids ...inspect.MountID) []busyReason {
	var out []busyReason
	for _, id := range ids {
		for _, k := range snap.Kernel[id] {
			if k.Kind.Mounted() {
				continue
			}
			out = append(out, busyReason{BusyReason{Kernel: &k}, k.Kind == inspect.KernelLoop || k.Kind == inspect.KernelSwap, k.Name})
		}
		for _, c := range snap.Copies(id) {
			if c.Propagates && len(c.Holders) > 0 {
				out = append(out, busyReason{BusyReason{Namespace: c.Namespace.Inode, Mountpoint: c.Mount.Mountpoint, Holders: c.Holders}, true, ""})
			}
		}
	}
	return out
}

// aliveWarnings names the copies in other namespaces that umount2 does not
// reach: our unmount succeeds, but the filesystem (and its device) lives on
// while they are mounted.
func aliveWarnings(snap *inspect.Snapshot, id inspect.MountID) []PlanWarning {
	var out []PlanWarning
	for _, c := range snap.Copies(id) {
		if c.Propagates {
			continue
		}
		out = append(out, PlanWarning{Kind: WarnAliveElsewhere, Namespace: c.Namespace.Inode, PIDs: c.Namespace.PIDs, Mountpoint: c.Mount.Mountpoint})
	}
	return out
}
