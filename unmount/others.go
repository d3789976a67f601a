package unmount

import (
	"fmt"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
)

// busyReasons names what keeps the mounts busy besides processes of this
// namespace, so that an EBUSY with no process holder still explains
// itself: kernel holders (a loop device or swap file backed by a file on
// it, an nfsd export, io_uring registered files, ...; submounts are
// listed on their own) and copies in other mount namespaces that umount2
// propagates to and that are held there (propagate_mount_busy, fs/pnode.c).
// No revoke can release these; each says what would.
func busyReasons(snap *inspect.Snapshot, ids ...inspect.MountID) []string {
	var out []string
	for _, r := range busyReasonList(snap, ids...) {
		out = append(out, r.text)
	}
	return out
}

// busyReason is one of busyReasons, and whether Plan.Release frees it (a
// loop device, a swap file, a held copy that umount2 propagates to).
type busyReason struct {
	text       string
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
			s := fmt.Sprintf("%s %s", termsafe.Text(k.Kind.String()), termsafe.Quote(k.Name))
			if k.Path != "" && k.Path != k.Name {
				s += " (" + termsafe.Quote(k.Path) + ")"
			}
			if action := scantext.KernelHolderAction(k); action != "" {
				s += ": " + termsafe.Text(action)
			}
			out = append(out, busyReason{s, k.Kind == inspect.KernelLoop || k.Kind == inspect.KernelSwap, k.Name})
		}
		for _, c := range snap.Copies(id) {
			if c.Propagates && len(c.Holders) > 0 {
				out = append(out, busyReason{fmt.Sprintf("its copy in mount namespace mnt:[%d] at %s, held there by %s",
					c.Namespace.Inode, termsafe.Quote(c.Mount.Mountpoint), scantext.HolderList(c.Holders, 3)), true, ""})
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

// busyHint is the EBUSY hint when no process of ours holds the mount.
func busyHint(snap *inspect.Snapshot, ids ...inspect.MountID) string {
	if r := busyReasons(snap, ids...); len(r) > 0 {
		return "held by " + strings.Join(r, "; ")
	}
	return noProcessHolder
}
