package present

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
)

// WriteHolders writes `mounttop holders PATH`'s text: the mount, then who
// holds it (a line per process, a line per use), the other mounts of the
// same filesystem, what the kernel holds it for, and its copies in other
// mount namespaces with their holders. Warnings are not written here
// (WriteWarnings: they go to stderr).
func WriteHolders(w io.Writer, snap *inspect.Snapshot, m *inspect.Mount) error {
	holders := snap.HoldersOf(m.ID)
	fmt.Fprintf(w, "%s  %s  %s  (mount %d, unique %d)\n", Name(m.Mountpoint), Name(m.FSType),
		Name(m.Source), m.OldID, uint64(m.ID))
	if m.Hidden {
		fmt.Fprintln(w, "hidden: the path leads to another mount (mounted over it or over a directory above it); this one is reached by --id only")
	}
	if a := m.Automount; a != nil {
		fmt.Fprintln(w, "automount: "+AutomountWarning(m))
	}
	if err := writeProcesses(w, holders); err != nil {
		return err
	}
	writeSameFilesystem(w, snap, m)
	writeKernel(w, snap, m)
	writeCopies(w, snap, m)
	return nil
}

// writeProcesses writes the holder processes and their uses, one row each.
func writeProcesses(w io.Writer, holders []inspect.Holder) error {
	if len(holders) == 0 {
		fmt.Fprintln(w, "no process holds it")
	} else {
		var rows []HolderRow
		for i := range holders {
			h := &holders[i]
			rows = append(rows, HolderRow{Holder: h})
			uses := append([]inspect.Use(nil), h.Uses...)
			sort.SliceStable(uses, func(i, j int) bool { return uses[i].Kind < uses[j].Kind })
			for j := range uses {
				rows = append(rows, HolderRow{Holder: h, Use: &uses[j]})
			}
		}
		if err := HoldersColumns.WriteText(w, true, rows); err != nil {
			return err
		}
	}
	return nil
}

// writeSameFilesystem writes the other mounts of m's filesystem.
func writeSameFilesystem(w io.Writer, snap *inspect.Snapshot, m *inspect.Mount) {
	if others := snap.SameFilesystem(m.ID); len(others) > 0 {
		fmt.Fprintln(w, "same filesystem also mounted at:")
		for _, o := range others {
			fmt.Fprintf(w, "  %s (mount %d, %d holders)\n", Name(o.Mountpoint), o.OldID, len(snap.HoldersOf(o.ID)))
		}
	}
}

// writeKernel writes what the kernel holds m for.
func writeKernel(w io.Writer, snap *inspect.Snapshot, m *inspect.Mount) {
	if ks := snap.Kernel[m.ID]; len(ks) > 0 {
		fmt.Fprintln(w, "held by the kernel:")
		for _, k := range ks {
			held := Name(k.Path)
			if len(k.Layers) > 0 {
				held = "layers " + layers(k.Layers)
			}
			if k.Namespace != 0 {
				held += fmt.Sprintf(" (in mount namespace mnt:[%d])", k.Namespace)
			}
			fmt.Fprintf(w, "  %s %s  %s  -> %s\n", Name(k.Kind.String()), Name(scantext.KernelName(k)), held, KernelHolderAction(k))
		}
	}
}

// writeCopies writes m's copies in other mount namespaces and their
// holders there.
func writeCopies(w io.Writer, snap *inspect.Snapshot, m *inspect.Mount) {
	for _, c := range snap.Copies(m.ID) {
		why := "a private copy: our umount succeeds, but the filesystem stays alive while it is mounted there"
		if c.Propagates {
			why = "a propagation peer: our umount propagates there, and fails with EBUSY while the copy is busy"
		}
		fmt.Fprintf(w, "also mounted in mount namespace %s at %s (%s); processes there: %s\n", NamespaceName(snap, c.Namespace.Inode),
			Name(c.Mount.Mountpoint), why, intsText(c.Namespace.PIDs, 10))
		for _, h := range c.Holders {
			for _, u := range h.Uses {
				fmt.Fprintf(w, "  pid %d %s: %s %s\n", h.PID, Name(h.Comm), UseLabel(u), Name(u.Path))
			}
		}
	}
}

// AutomountWarning is the warning for an unmount of automounted m: an
// access mounts it again, and what the real fix is (inspect.Automount),
// escaped. "" when m is not automounted.
func AutomountWarning(m *inspect.Mount) string {
	if m.Automount == nil {
		return ""
	}
	return Name(scantext.AutomountWarning(m.Automount, m.Mountpoint))
}

func layers(ls []inspect.Layer) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = Name(l.String())
	}
	return strings.Join(parts, " ")
}

func intsText(v []int, max int) string {
	var parts []string
	for i, n := range v {
		if i == max {
			parts = append(parts, fmt.Sprintf("… %d more", len(v)-max))
			break
		}
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, ", ")
}

// UseLabel is a use in a few words, for `holders` and the engine's texts:
// "fd 3 rw", "fd 3 r (thread 812)", "lock FLOCK write", "mmap", "cwd".
func UseLabel(u inspect.Use) string {
	switch u.Kind {
	case inspect.UseFD:
		if u.TID != 0 {
			return fmt.Sprintf("fd %d %s (thread %d)", u.FD, u.Access, u.TID)
		}
		return fmt.Sprintf("fd %d %s", u.FD, u.Access)
	case inspect.UseLock:
		if u.Lock == nil {
			return "lock"
		}
		return fmt.Sprintf("lock %s %s", u.Lock.Type, strings.ToLower(u.Lock.Mode.String()))
	case inspect.UseMmap:
		return "mmap"
	case inspect.UseCwd, inspect.UseRoot:
		if u.TID != 0 {
			return fmt.Sprintf("%s (thread %d)", u.Kind, u.TID)
		}
	}
	return u.Kind.String()
}

// UseSuffix is what `holders` adds after a use's path: a mapping's range,
// "(deleted)", "(waiting)" for a lock not yet granted.
func UseSuffix(u inspect.Use) string {
	s := ""
	if u.Kind == inspect.UseMmap {
		s = fmt.Sprintf("  %x-%x", u.Start, u.End)
	}
	if u.Deleted {
		s += "  (deleted)"
	}
	if u.Lock != nil && u.Lock.Waiter {
		s += "  (waiting)"
	}
	return s
}

// UseLine is one use as the view's holders pane shows it under its
// process: "fd 3   rw  /mnt/x (deleted)".
func UseLine(u inspect.Use) string {
	var what string
	switch u.Kind {
	case inspect.UseFD:
		what = fmt.Sprintf("fd %-3d %-3s", u.FD, u.Access)
		if u.TID != 0 {
			what += fmt.Sprintf(" (thread %d)", u.TID)
		}
	case inspect.UseMmap:
		what = fmt.Sprintf("mmap %x-%x", u.Start, u.End)
	case inspect.UseLock:
		what = "lock"
		if u.Lock != nil {
			what = fmt.Sprintf("lock %s %s %s-%s", u.Lock.Type, u.Lock.Mode, Name(u.Lock.Start), Name(u.Lock.End))
			if u.Lock.Waiter {
				what += " (waiting)"
			}
		}
		if u.FD >= 0 {
			what += fmt.Sprintf(" fd %d", u.FD)
		}
	default:
		what = u.Kind.String()
		if u.TID != 0 {
			what += fmt.Sprintf(" (thread %d)", u.TID)
		}
	}
	path := Name(u.Path)
	if path == "" {
		path = fmt.Sprintf("inode %d", u.Inode)
	}
	if u.Deleted {
		path += " (deleted)"
	}
	return fmt.Sprintf("%-12s %s", what, path)
}

// SortedUses groups uses by kind (fd, cwd, root, exe, mmap, lock) and
// orders fds by number, mappings by address: the view's order.
func SortedUses(uses []inspect.Use) []inspect.Use {
	out := append([]inspect.Use(nil), uses...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		if out[i].FD != out[j].FD {
			return out[i].FD < out[j].FD
		}
		return out[i].Start < out[j].Start
	})
	return out
}

// UseSummary counts a holder's uses by kind: "fd×2 cwd mmap lock".
func UseSummary(uses []inspect.Use) string {
	counts := map[inspect.UseKind]int{}
	for _, u := range uses {
		counts[u.Kind] += max(u.Count, 1) // a count-only entry stands for Count uses
	}
	var parts []string
	for _, k := range []inspect.UseKind{inspect.UseFD, inspect.UseCwd, inspect.UseRoot, inspect.UseExe, inspect.UseMmap, inspect.UseLock} {
		switch n := counts[k]; {
		case n == 1:
			parts = append(parts, k.String())
		case n > 1:
			parts = append(parts, fmt.Sprintf("%s×%d", k, n))
		}
	}
	return strings.Join(parts, " ")
}

// Args is a command line, each argument escaped, joined by spaces.
func Args(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = Name(a)
	}
	return strings.Join(parts, " ")
}

// Command is a holder's command line for display: argv joined, or [comm]
// for a kernel thread or a process whose cmdline is gone.
func Command(comm string, argv []string) string {
	if len(argv) == 0 {
		return "[" + Name(comm) + "]"
	}
	return Args(argv)
}

// stateNote marks a process that will not answer soon: stuck in the
// kernel (D), stopped, or a zombie (/proc/PID/stat state, proc(5)).
func stateNote(state byte) string {
	switch state {
	case 'D':
		return " [D: stuck in the kernel]"
	case 'T', 't':
		return " [stopped]"
	case 'Z':
		return " [zombie]"
	}
	return ""
}

// Where says which service or container a holder belongs to, if known:
// " [container 0123456789ab]", " [nginx.service]".
func Where(h inspect.Holder) string {
	switch {
	case h.Container != "":
		c := h.Container
		if len(c) > 12 {
			c = c[:12]
		}
		return " [container " + Name(c) + "]"
	case h.Unit != "":
		return " [" + Name(h.Unit) + "]"
	}
	return ""
}

// HoldersPaneHeader is the view's holders pane column header: the gutter
// and the open/closed mark take the first four cells.
func HoldersPaneHeader() string {
	return "    " + HoldersPaneColumns.Header(HoldersPaneColumns.Widths(0, 4))
}

// HolderLine is a process's line in the view's holders pane: ▾ when its
// uses are shown below it, ▸ when not.
func HolderLine(h *inspect.Holder, open bool) string {
	mark := "▸ "
	if open {
		mark = "▾ "
	}
	return mark + HoldersPaneColumns.Row(HolderRow{Holder: h}, HoldersPaneColumns.Widths(0, 4))
}

// KernelLine is a kernel holder in the view's holders pane:
// "loop /dev/loop3: /mnt/disk.img · release: detach loop device ...".
func KernelLine(k *inspect.KernelHolder) string {
	name := scantext.KernelName(*k)
	line := Name(k.Kind.String()) + " " + Name(name)
	switch {
	case len(k.Layers) > 0:
		line += ": layers " + layers(k.Layers)
	case k.Path != "" && k.Path != name:
		line += ": " + Name(k.Path)
	}
	if k.Namespace != 0 {
		line += fmt.Sprintf(" (in mount namespace mnt:[%d])", k.Namespace)
	}
	if k.PID != 0 {
		line += fmt.Sprintf(" (pid %d)", k.PID)
	}
	if action := KernelHolderAction(*k); action != "" {
		line += " · release: " + action
	}
	return line
}

// CopyLine is a copy of the mount in another mount namespace, in the view's
// holders pane: where, how many hold it, and what it does to our unmount.
func CopyLine(c *inspect.Copy) string {
	effect := "independent: keeps the filesystem alive after ours goes"
	if c.Propagates {
		effect = "our unmount propagates there: EBUSY while it is held"
	}
	ns := fmt.Sprintf("mnt:[%d]", c.Namespace.Inode)
	if c.Namespace.Host {
		ns += " (the host's)"
	}
	return fmt.Sprintf("%s %s  %s · %s%s", ns, Name(c.Mount.Mountpoint),
		Plural(len(c.Holders), "holder"), effect, pidList(c.Namespace.PIDs))
}

// pidList is " (pids 1, 2, 3, …)" for a namespace's processes.
func pidList(pids []int) string {
	if len(pids) == 0 {
		return ""
	}
	var parts []string
	for i, p := range pids {
		if i == 3 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprint(p))
	}
	return " (pids " + strings.Join(parts, ", ") + ")"
}

// NobodyHolds is the view's note on a mount no process holds: the kernel
// does (kernel > 0), submounts must go first (submounts > 0), or a plain
// unmount should work and expireKey (the view's key) expires it.
func NobodyHolds(m *inspect.Mount, kernel, submounts int, expireKey string) string {
	switch {
	case kernel > 0:
		return "No process holds " + Name(m.Mountpoint) + "; the kernel does (below)."
	case submounts > 0:
		return "Nobody holds " + Name(m.Mountpoint) + " itself; " + Plural(submounts, "submount") + " below it must go first."
	}
	return "Nobody holds " + Name(m.Mountpoint) + ": a plain unmount should work; " + expireKey + " expires it when idle."
}

// SameFilesystemLine is another mount of the same filesystem in the view's
// holders pane.
func SameFilesystemLine(snap *inspect.Snapshot, o *inspect.Mount) string {
	return fmt.Sprintf("%s  %s", Name(o.Mountpoint), Plural(len(snap.HoldersOf(o.ID)), "holder"))
}

// WarningText is one warning of a scan, escaped: a warning quotes paths
// and other text from the system.
func WarningText(w inspect.Warning) string { return Name(scantext.Warning(w)) }

// KernelHolderAction is what would release a kernel holder, escaped:
// "swapoff", "detach loop device (losetup -d /dev/loop3)", ...; "" for a
// kind with no known remedy. mounttop releases loop devices and swap files
// itself (unmount's Release); the rest are for the operator to do.
func KernelHolderAction(k inspect.KernelHolder) string {
	return Name(scantext.KernelHolderAction(k))
}

// KernelName names a kernel holder, raw (scantext.KernelName): its device
// or file, or an io_uring's ring fd and file index. For keys and
// comparisons; show it with Name.
func KernelName(k inspect.KernelHolder) string { return scantext.KernelName(k) }
