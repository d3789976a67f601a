// Package scantext writes the sentences about what a scan found that are
// not about one mount's holders: its warnings (inspect.Warning), a mount's
// automount state (inspect.Automount) and what releases a kernel holder
// (inspect.KernelHolder). The text is raw: names in it (paths, comm) are
// as the kernel gave them, and the caller escapes the sentence once, as
// it shows it (present.Name for a terminal, termsafe.Name for JSON).
//
// It is internal/present's, split out because unmount/ still quotes a few
// of these sentences in its plan warnings and present imports unmount;
// every other caller goes through present (WarningText, AutomountWarning,
// KernelHolderAction). It imports only inspect.
package scantext

import (
	"fmt"
	"strconv"
	"strings"

	"mounttop/inspect"
)

// Warning is the sentence for a scan warning. A per-process warning is
// prefixed with its process ("pid 12: ...") or, when the scan grouped
// many processes under one cause, followed by them ("... (3 processes:
// pids 1, 2, 3)").
func Warning(w inspect.Warning) string {
	s, ok := warningBody(w)
	if !ok {
		s = w.Kind.String()
		if w.What != "" {
			s += " " + w.What
		}
	}
	if w.Err != nil {
		s += ": " + w.Err.Error()
	}
	if !w.Kind.PerProcess() {
		return s
	}
	switch {
	case w.PID != 0:
		return fmt.Sprintf("pid %d: %s", w.PID, s)
	case len(w.PIDs) == 1:
		return fmt.Sprintf("pid %d: %s", w.PIDs[0], s)
	case len(w.PIDs) > 1:
		return fmt.Sprintf("%s (%s)", s, PIDList(w.PIDs))
	}
	return s
}

// warningBody is what happened, without the error and the processes.
func warningBody(w inspect.Warning) (string, bool) {
	switch w.Kind {
	case inspect.WarnRead:
		return w.What, true
	case inspect.WarnMapsByPath:
		return "mappings attributed by path among bind mounts (map_files needs CAP_SYS_ADMIN)", true
	case inspect.WarnLocks:
		return "reading /proc/locks; locks are not shown", true
	case inspect.WarnListPIDs:
		return "listing processes", true
	case inspect.WarnCutShort:
		return "scan cut short", true
	case inspect.WarnStuck:
		return stuck(w), true
	case inspect.WarnGaveUp:
		return fmt.Sprintf("gave up on %s after %v, twice (stuck in the kernel, e.g. on a hung filesystem; state D?); the reads that did not return are not asked again until they do",
			PIDList(w.PIDs), w.Limit), true
	case inspect.WarnNotScanned:
		return fmt.Sprintf("%d processes not scanned before the deadline", w.Count), true
	case inspect.WarnUniqueIDs:
		return "unique mount IDs unavailable; using the reusable 32-bit IDs with device and root", true
	case inspect.WarnTableChanged:
		return fmt.Sprintf("%d mounts changed while the table was read; their IDs are stand-ins until the next scan", w.Count), true
	case inspect.WarnUnreadableMount:
		return fmt.Sprintf("%s hold a mount of %s (%s, as at %s) that is in no mount table mounttop could read: a copy in another mount namespace, or a detached mount; %s",
			PIDList(w.PIDs), w.Device, w.FSType, w.Path, advice(w.Advice)), true
	case inspect.WarnRelativeLayer:
		return fmt.Sprintf("%s names its layer %s by a path relative to the mounter's cwd at mount time: which mount it lies on cannot be told",
			overlayAt(w.Path, w.Namespace), w.Layer), true
	}
	return "", false
}

// stuck says which reads of a process are stuck since when, and what the
// scan leaves out because of them.
func stuck(w inspect.Warning) string {
	reads := make([]string, len(w.Stuck))
	for i, r := range w.Stuck {
		reads[i] = fmt.Sprintf("%s since %s (%v ago)", r.File, r.Since.Format("15:04:05"), r.For)
	}
	return fmt.Sprintf("stuck in the kernel (a page fault or I/O on a filesystem whose server does not answer?): reading %s has not returned; not read again until it does: %s",
		strings.Join(reads, ", "), strings.Join(w.LeftOut, ", "))
}

func advice(a inspect.Advice) string {
	switch a {
	case inspect.AdviceRoot:
		return "run as root to tell"
	case inspect.AdviceSecurityModule:
		return "even root may not read them here (a security module?)"
	case inspect.AdviceInitialUserNS:
		return "mounttop is root only inside a user namespace, which may not look at its parent's: run it from the initial user namespace to tell"
	}
	return "what would let mounttop tell is unknown"
}

// overlayAt names a stacking filesystem's mount: "overlay at /srv/ov",
// with its mount namespace when it is not ours.
func overlayAt(mountpoint string, ns uint64) string {
	s := "overlay at " + mountpoint
	if ns != 0 {
		s += fmt.Sprintf(" in mount namespace mnt:[%d]", ns)
	}
	return s
}

// PIDList names processes, the first 8 by pid: "pid 7", "3 processes:
// pids 1, 2, 3", "20 processes: pids 1, ..., 8, … 12 more".
func PIDList(pids []int) string {
	const show = 8
	var b strings.Builder
	if len(pids) == 1 {
		b.WriteString("pid ")
	} else {
		fmt.Fprintf(&b, "%d processes: pids ", len(pids))
	}
	for i, p := range pids {
		if i == show {
			fmt.Fprintf(&b, ", … %d more", len(pids)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

// KernelName names a kernel holder: its Name (/dev/loop3, the swap file,
// ...), or, for an io_uring registered file, which has none, the ring's fd
// and the file's index ("io_uring fd 5, file 0"). Raw, like Name.
func KernelName(k inspect.KernelHolder) string {
	if k.Kind == inspect.KernelIOURing {
		return "io_uring fd " + strconv.Itoa(k.FD) + ", file " + strconv.Itoa(k.Index)
	}
	return k.Name
}

// KernelHolderAction is what would release a kernel holder, for the
// operator to do by hand: "swapoff", "detach loop device (losetup -d
// /dev/loop3)", ...; "" for a kind with no known remedy.
func KernelHolderAction(k inspect.KernelHolder) string {
	switch k.Kind {
	case inspect.KernelLoop:
		if k.MountedAt != "" {
			return "unmount " + k.MountedAt + " (it mounts " + k.Name + "), then detach the loop device"
		}
		return "detach loop device (losetup -d " + k.Name + ")"
	case inspect.KernelSwap:
		return "swapoff"
	case inspect.KernelNFSExport:
		return "exportfs -u"
	case inspect.KernelIOURing:
		return "stop the process or unregister the file"
	case inspect.KernelBinfmt:
		return "echo -1 > " + k.Entry
	case inspect.KernelBlockHolder:
		return "remove the " + k.Name + " device (dmsetup remove / mdadm --stop)"
	case inspect.KernelSubmount, inspect.KernelOverMount:
		return "unmount it first (deepest first)"
	}
	if len(k.Layers) > 0 {
		return "unmount the " + overlayAt(k.Name, k.Namespace) + " first"
	}
	return ""
}

// AutomountCell is the automount state in a few words, for a table
// column: "autofs 5m0s", "systemd 2m0s", "kernel 8m20s", "autofs trigger".
func AutomountCell(a *inspect.Automount) string {
	s := a.By.String()
	if a.Trigger {
		return s + " trigger"
	}
	switch {
	case !a.TimeoutKnown:
		s += " ?"
	case a.Timeout == 0:
		s += " never"
	default:
		s += " " + a.Timeout.String()
	}
	return s
}

// AutomountWarning says, for an unmount of the mount at mountpoint, that
// an access will mount it again and what the real fix is.
func AutomountWarning(a *inspect.Automount, mountpoint string) string {
	expiry := ""
	switch {
	case !a.TimeoutKnown:
	case a.Timeout == 0:
		expiry = "; it never expires by itself"
	default:
		expiry = fmt.Sprintf("; it is also expired by itself after %v idle", a.Timeout)
	}
	switch {
	case a.By == inspect.ByKernel:
		return fmt.Sprintf("the kernel mounted %s on access (a %s): the next access to its path mounts it again%s; to keep it away, unmount the mount above it", mountpoint, a.Kind, expiry)
	case a.Trigger && a.By == inspect.BySystemd:
		return fmt.Sprintf("%s is the autofs trigger of systemd's %s: unmounting it under systemd leaves the unit failed; the real fix is systemctl stop %s", mountpoint, a.Unit, a.Unit)
	case a.Trigger:
		return fmt.Sprintf("%s is an autofs trigger (%s) of the automount daemon (process group %d%s): unmounting it under the daemon confuses it; the real fix is to remove the map entry and reload autofs, or stop the daemon", mountpoint, a.Kind, a.PGrp, daemon(a.Daemon))
	case a.By == inspect.BySystemd:
		return fmt.Sprintf("%s is automounted by systemd's %s: the next access mounts it again%s; the real fix is systemctl stop %s (then unmount)", mountpoint, a.Unit, expiry, a.Unit)
	}
	return fmt.Sprintf("%s is automounted by autofs (%s map, daemon process group %d%s): the next access mounts it again%s; the real fix is to remove its map entry and reload autofs, or stop the daemon", mountpoint, a.Kind, a.PGrp, daemon(a.Daemon), expiry)
}

func daemon(d string) string {
	if d == "" {
		return ""
	}
	return ", " + d
}

// AutomountNote says what the mount table cannot tell about an automount
// ("" when nothing): for a kernel submount, whether the kernel mounted it
// or someone did by hand; for systemd, which idle timeout is shown.
func AutomountNote(a *inspect.Automount) string {
	switch a.By {
	case inspect.ByKernel:
		return "a submount of a " + a.ParentFSType + " mount: mounted on access by the kernel, unless someone mounted it there by hand (the table cannot tell)"
	case inspect.BySystemd:
		return "autofs mount of pid 1 (systemd); its idle timeout is the one systemd gave the kernel (TimeoutIdleSec=, x-systemd.idle-timeout=)"
	}
	return ""
}
