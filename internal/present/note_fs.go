package present

import (
	"strings"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// DoubtText says why the check of a filesystem after an unmount is
// incomplete (unmount.Filesystem.Doubt); "" when it is complete. Names
// are escaped here, once (termsafe.Quote); an error's text was escaped
// when the error was made, so only a control left raw in it is escaped
// (termsafe.Message).
func DoubtText(d unmount.Doubt) string {
	switch d.Kind {
	case unmount.DoubtScan:
		return "could not scan: " + termsafe.Message(d.ErrText)
	case unmount.DoubtReused:
		newer := make([]string, len(d.Newer))
		for i, p := range d.Newer {
			newer[i] = termsafe.Quote(p)
		}
		return "it is uncertain: the device number " + termsafe.Text(d.Device) + " now names only mounts made after the plan (" +
			strings.Join(newer, ", ") + "), which may be another filesystem given the freed number (" + WatchLossText(d.Watch) + ")"
	case unmount.DoubtClaim:
		return "could not open the block device " + termsafe.Text(d.Device) + " exclusively: " + termsafe.Message(d.ErrText)
	}
	return ""
}

// WatchLossText says why a run had no inotify watch on the target's root
// to tell whether its superblock died (unmount.WatchLoss).
func WatchLossText(w unmount.WatchLoss) string {
	switch w.Kind {
	case unmount.WatchExpire:
		return "no inotify watch on the expire path (the lookup would clear the expiry mark)"
	case unmount.WatchDetached:
		return "no inotify watch on a detached mount (no path leads to it)"
	case unmount.WatchFailed:
		return "no inotify watch on its root: " + termsafe.Message(w.ErrText)
	case unmount.WatchDropped:
		return "its root's inotify watch was dropped without IN_UNMOUNT"
	}
	return "no inotify watch on its root"
}

// SystemMountText says why m is a mount the system runs on, for the
// reason k (unmount.SystemMount); "" for SystemNone. Its names are escaped
// once (scantext.SystemMount, whose words the engine's refusal,
// unmount.SystemRefused, shares).
func SystemMountText(k unmount.SystemKind, m inspect.Mount) string {
	if k == unmount.SystemNone {
		return ""
	}
	return scantext.SystemMount(k == unmount.SystemAPI, m.Mountpoint, m.FSType)
}

// BusyReasonText is one thing besides a process of ours that keeps a
// mount busy (unmount.BusyReason): a kernel holder and what releases it,
// or a copy in another mount namespace held there. Its names are escaped
// once (scantext.BusyKernel, BusyCopy, whose words an unmount.Error with
// the reason shares).
func BusyReasonText(r unmount.BusyReason) string {
	if r.Kernel != nil {
		return scantext.BusyKernel(*r.Kernel)
	}
	return scantext.BusyCopy(r.Namespace, r.Mountpoint, r.Holders)
}

// BusyOthersText says what holds a mount no process of ours holds: "held
// by" the reasons, or, none seen, what else can (scantext.NoProcessHolder).
func BusyOthersText(rs []unmount.BusyReason) string {
	if len(rs) == 0 {
		return scantext.NoProcessHolder
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = BusyReasonText(r)
	}
	return "held by " + strings.Join(s, "; ")
}

// ForceIgnoredText is the plain statement shown before a force on a
// filesystem whose umount_begin does nothing (unmount.ForceIgnored).
func ForceIgnoredText(fstype string) string { return scantext.ForceIgnored(fstype) }
