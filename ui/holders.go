package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
)

// holderRowKind says what a line of the holders pane is, for styling and
// for what enter does on it.
type holderRowKind int

const (
	rowHolder  holderRowKind = iota // a process: enter shows or hides its uses
	rowUse                          // one use of the mount by that process
	rowSection                      // a heading
	rowOther                        // another mount of the same filesystem
	rowWarning
	rowNote // plain text
)

// maxWarnings bounds the warnings listed: an unprivileged scan can have
// one per process on the system.
const maxWarnings = 5

// usesWidth is the USES column: "fd×12 cwd mmap×3 lock" fits.
const usesWidth = 20

type holderRow struct {
	kind holderRowKind
	pid  int
	text string // already escaped and laid out
	// key names what the row is about, so that the cursor stays on it
	// across refreshes: "pid:N", "kernel:KIND:NAME", "copy:NS:ID".
	key string
	// kernel and copy are set on the rows of a kernel holder and of a
	// copy in another mount namespace: R releases what they name.
	kernel *inspect.KernelHolder
	copy   *inspect.Copy
}

// releasable reports whether R can act on the row: a loop device, a swap
// file, or a copy in another mount namespace (unmount.Release's kinds).
func (r holderRow) releasable() bool {
	return r.copy != nil || (r.kernel != nil && (r.kernel.Kind == "loop" || r.kernel.Kind == "swap"))
}

// holdersPane shows who holds the selected mount and how: processes with
// their uses (grouped by kind, expandable), the other mounts of the same
// filesystem, and the scan's warnings.
type holdersPane struct {
	styles *Styles
	keys   *keyMap

	snap   *inspect.Snapshot
	mount  inspect.MountID
	expiry expiryMark
	// open records the operator's choice per pid (shown or hidden); pids
	// without a choice are shown when everything fits.
	open map[int]bool

	rows          []holderRow
	cursor        int
	offset        int
	width, height int
	focused       bool
}

func newHoldersPane(s *Styles, k *keyMap) holdersPane {
	return holdersPane{styles: s, keys: k, open: map[int]bool{}}
}

func (h *holdersPane) setFocused(f bool) { h.focused = f }

// ShortHelp implements help.KeyMap: the keys of the pane.
func (h holdersPane) ShortHelp() []key.Binding {
	k := h.keys
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Toggle, k.Release}
}

// FullHelp implements help.KeyMap.
func (h holdersPane) FullHelp() [][]key.Binding { return [][]key.Binding{h.ShortHelp()} }

// SetSize sets the pane's size in cells: height counts the column header.
func (h *holdersPane) SetSize(w, ht int) {
	h.width, h.height = w, ht
	h.rebuild()
}

// show points the pane at a mount of a snapshot. The expanded state is
// kept while the mount stays the same.
func (h *holdersPane) show(s *inspect.Snapshot, id inspect.MountID, e expiryMark) {
	if id != h.mount {
		h.open = map[int]bool{}
		h.cursor, h.offset = 0, 0
	}
	h.snap, h.mount, h.expiry = s, id, e
	h.rebuild()
}

// title names the pane after its mount.
func (h *holdersPane) title() string {
	if h.snap == nil {
		return "Holders"
	}
	m, ok := h.snap.Mount(h.mount)
	if !ok {
		return "Holders"
	}
	n := len(h.snap.HoldersOf(h.mount))
	return fmt.Sprintf("Holders of %s (%s)", mountName(*m), plural(n, "process", "processes"))
}

func (h *holdersPane) rebuild() {
	want := h.cursorKey()
	h.rows = h.rows[:0]
	if h.snap == nil {
		h.add(rowNote, 0, "reading who holds what…")
		return
	}
	m, ok := h.snap.Mount(h.mount)
	if !ok {
		h.add(rowNote, 0, "no mount selected")
		return
	}
	if s := h.expiry.sentence(h.keys); s != "" {
		h.add(rowNote, 0, s)
	}
	if a := m.Automount; a != nil {
		h.add(rowNote, 0, "Automount: "+safe(a.Warning(m.Mountpoint)))
	}
	kernel := h.kernelHolders()
	if holders := h.snap.HoldersOf(h.mount); len(holders) > 0 {
		h.addProcesses(holders)
	} else {
		h.addNobody(m, len(kernel) > 0)
	}
	h.addKernel(kernel)
	h.addCopies()
	h.addSameFilesystem(m)
	h.addWarnings()
	h.cursorTo(want)
}

// cursorKey names the row under the cursor (a use by its process line),
// so the cursor stays on it across a rebuild.
func (h *holdersPane) cursorKey() string {
	if h.cursor >= len(h.rows) {
		return ""
	}
	r := h.rows[h.cursor]
	if r.kind == rowUse {
		return fmt.Sprintf("pid:%d", r.pid) // its process line
	}
	return r.key
}

// cursorTo puts the cursor on the row named want, else on the first.
func (h *holdersPane) cursorTo(want string) {
	h.cursor = 0
	for i, r := range h.rows {
		if want != "" && r.key == want {
			h.cursor = i
			break
		}
	}
	h.scroll()
}

// kernelHolders are what the kernel holds the mount for, but its
// submounts (the tree and a note show those).
func (h *holdersPane) kernelHolders() []inspect.KernelHolder {
	var kernel []inspect.KernelHolder
	for _, k := range h.snap.Kernel[h.mount] {
		if k.Kind != "submount" {
			kernel = append(kernel, k)
		}
	}
	return kernel
}

// addNobody says why no process holds the mount, and what to do.
func (h *holdersPane) addNobody(m *inspect.Mount, kernel bool) {
	switch n := len(h.snap.Descendants(h.mount)); {
	case kernel:
		h.add(rowNote, 0, "No process holds "+safe(m.Mountpoint)+"; the kernel does (below).")
	case n > 0:
		h.add(rowNote, 0, "Nobody holds "+safe(m.Mountpoint)+" itself; "+plural(n, "submount", "submounts")+" below it must go first.")
	default:
		h.add(rowNote, 0, "Nobody holds "+safe(m.Mountpoint)+": a plain unmount should work; "+h.keys.name(h.keys.Expire)+" expires it when idle.")
	}
}

// addProcesses adds a line per holder process and, when open, a line per
// use; without the operator's choice they are open when everything fits.
func (h *holdersPane) addProcesses(holders []inspect.Holder) {
	total := 0
	for _, hd := range holders {
		total += 1 + len(hd.Uses)
	}
	fits := total <= h.bodyHeight()
	for _, hd := range holders {
		open, chosen := h.open[hd.PID]
		if !chosen {
			open = fits
		}
		h.rows = append(h.rows, holderRow{kind: rowHolder, pid: hd.PID, text: processLine(hd, open), key: fmt.Sprintf("pid:%d", hd.PID)})
		if open {
			for _, u := range sortedUses(hd.Uses) {
				h.add(rowUse, hd.PID, "    "+useLine(u))
			}
		}
	}
}

// processLine is a holder's line: ▸/▾ PID USER USES COMMAND [state] [where].
func processLine(hd inspect.Holder, open bool) string {
	mark := "▸ "
	if open {
		mark = "▾ "
	}
	state := ""
	switch hd.State {
	case 'D':
		state = " [D: stuck in the kernel]"
	case 'T', 't':
		state = " [stopped]"
	case 'Z':
		state = " [zombie]"
	}
	return mark + fitRight(fmt.Sprint(hd.PID), 7) + " " + fit(safe(hd.User), 8) + " " +
		fit(summary(hd.Uses), usesWidth) + " " + command(hd.Comm, hd.Cmdline) + state + where(hd)
}

// addKernel lists the kernel holders (R releases loop devices and swap
// files among them).
func (h *holdersPane) addKernel(kernel []inspect.KernelHolder) {
	if len(kernel) > 0 {
		h.add(rowSection, 0, "Held by the kernel (no process to revoke):")
		for i := range kernel {
			k := &kernel[i]
			line := "  " + safe(k.Kind) + " " + safe(k.Name)
			switch {
			case len(k.Layers) > 0:
				var ls []string
				for _, l := range k.Layers {
					ls = append(ls, safe(l.String()))
				}
				line += ": layers " + strings.Join(ls, " ")
			case k.Path != "" && k.Path != k.Name:
				line += ": " + safe(k.Path)
			}
			if k.Namespace != 0 {
				line += fmt.Sprintf(" (in mount namespace mnt:[%d])", k.Namespace)
			}
			if k.PID != 0 {
				line += fmt.Sprintf(" (pid %d)", k.PID)
			}
			if k.Action != "" {
				line += " · release: " + safe(k.Action)
			}
			h.rows = append(h.rows, holderRow{kind: rowWarning, pid: k.PID, text: line, kernel: k,
				key: "kernel:" + k.Kind + ":" + k.Name + ":" + k.Path})
		}
	}
}

// addCopies lists the mount's copies in other mount namespaces (R
// releases them).
func (h *holdersPane) addCopies() {
	if copies := h.snap.Copies(h.mount); len(copies) > 0 {
		h.add(rowSection, 0, "Also mounted in other mount namespaces:")
		for i := range copies {
			c := &copies[i]
			effect := "independent: keeps the filesystem alive after ours goes"
			if c.Propagates {
				effect = "our unmount propagates there: EBUSY while it is held"
			}
			ns := fmt.Sprintf("mnt:[%d]", c.Namespace.Inode)
			if c.Namespace.Host {
				ns += " (the host's)"
			}
			h.rows = append(h.rows, holderRow{kind: rowOther, copy: c, key: fmt.Sprintf("copy:%d:%d", c.Namespace.Inode, c.Mount.OldID),
				text: fmt.Sprintf("  %s %s  %s · %s%s", ns, safe(c.Mount.Mountpoint),
					plural(len(c.Holders), "holder", "holders"), effect, pidList(c.Namespace.PIDs))})
		}
	}
}

// addSameFilesystem lists the other mounts of the same filesystem.
func (h *holdersPane) addSameFilesystem(m *inspect.Mount) {
	if others := h.snap.SameFilesystem(h.mount); len(others) > 0 {
		h.add(rowSection, 0, fmt.Sprintf("Same filesystem (dev %s) also mounted at:", m.Device()))
		for _, o := range others {
			n := len(h.snap.HoldersOf(o.ID))
			h.add(rowOther, 0, fmt.Sprintf("  %s  %s", safe(o.Mountpoint), plural(n, "holder", "holders")))
		}
	}
}

// addWarnings lists the scan's first warnings.
func (h *holdersPane) addWarnings() {
	if len(h.snap.Warnings) > 0 {
		h.add(rowSection, 0, "Warnings from the last scan ("+fmt.Sprint(len(h.snap.Warnings))+"):")
		for i, w := range h.snap.Warnings {
			if i == maxWarnings {
				h.add(rowWarning, 0, fmt.Sprintf("  … and %d more", len(h.snap.Warnings)-i))
				break
			}
			h.add(rowWarning, w.PID, "  "+safe(w.String()))
		}
	}
}

// current is the row under the cursor.
func (h *holdersPane) current() (holderRow, bool) {
	if h.cursor < 0 || h.cursor >= len(h.rows) {
		return holderRow{}, false
	}
	return h.rows[h.cursor], true
}

// toReleasable puts the cursor on the first row R can act on, or failing
// that on the first kernel holder (whose advice R shows); false if there
// is neither.
func (h *holdersPane) toReleasable() bool {
	first := -1
	for i, r := range h.rows {
		if r.releasable() {
			first = i
			break
		}
		if r.kernel != nil && first < 0 {
			first = i
		}
	}
	if first < 0 {
		return false
	}
	h.cursor = first
	h.scroll()
	return true
}

func (h *holdersPane) add(k holderRowKind, pid int, text string) {
	h.rows = append(h.rows, holderRow{kind: k, pid: pid, text: text})
}

// where says which service or container a holder belongs to, if known.
func where(h inspect.Holder) string {
	switch {
	case h.Container != "":
		c := h.Container
		if len(c) > 12 {
			c = c[:12]
		}
		return " [container " + safe(c) + "]"
	case h.Unit != "":
		return " [" + safe(h.Unit) + "]"
	}
	return ""
}

// pidList is " (pids 1, 2, 3 …)" for a namespace's processes.
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

// summary counts a holder's uses by kind: "fd×2 cwd mmap lock".
func summary(uses []inspect.Use) string {
	counts := map[inspect.UseKind]int{}
	for _, u := range uses {
		counts[u.Kind]++
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

// sortedUses groups uses by kind (fd, cwd, root, exe, mmap, lock) and
// orders fds by number.
func sortedUses(uses []inspect.Use) []inspect.Use {
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

// useLine is one use: "fd 3   rw  /mnt/x (deleted)".
func useLine(u inspect.Use) string {
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
			what = fmt.Sprintf("lock %s %s %s-%s", u.Lock.Type, u.Lock.Mode, u.Lock.Start, u.Lock.End)
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
	path := safe(u.Path)
	if path == "" {
		path = fmt.Sprintf("inode %d", u.Inode)
	}
	if u.Deleted {
		path += " (deleted)"
	}
	return fmt.Sprintf("%-12s %s", what, path)
}

func (h *holdersPane) bodyHeight() int {
	if h.height < 2 {
		return 1
	}
	return h.height - 1
}

func (h *holdersPane) scroll() {
	ht := h.bodyHeight()
	if h.cursor >= len(h.rows) {
		h.cursor = len(h.rows) - 1
	}
	if h.cursor < 0 {
		h.cursor = 0
	}
	h.offset = keepVisible(h.cursor, h.offset, len(h.rows), ht)
}

func (h *holdersPane) move(n int) {
	h.cursor += n
	h.scroll()
}

// holderAt is the pid of the process on the cursor's line, or 0.
func (h *holdersPane) holderAt() int {
	if h.cursor < len(h.rows) {
		return h.rows[h.cursor].pid
	}
	return 0
}

// Update handles the keys of the focused holders pane.
func (h holdersPane) Update(msg tea.Msg) (holdersPane, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return h, nil
	}
	k := h.keys
	if d, ok := k.step(km, h.bodyHeight(), len(h.rows)); ok {
		h.move(d)
		return h, nil
	}
	switch {
	case key.Matches(km, k.Toggle), key.Matches(km, k.Expand), key.Matches(km, k.Collapse):
		pid := h.holderAt()
		if pid == 0 || h.cursor >= len(h.rows) || (h.rows[h.cursor].kind != rowHolder && h.rows[h.cursor].kind != rowUse) {
			break
		}
		open := h.isOpen(pid)
		switch {
		case key.Matches(km, k.Expand):
			open = true
		case key.Matches(km, k.Collapse):
			open = false
		default:
			open = !open
		}
		h.open[pid] = open
		h.rebuild()
		// Keep the cursor on the process line.
		for i, r := range h.rows {
			if r.pid == pid && r.kind == rowHolder {
				h.cursor = i
			}
		}
		h.scroll()
	}
	return h, nil
}

// isOpen reports whether pid's uses are shown now.
func (h *holdersPane) isOpen(pid int) bool {
	for i, r := range h.rows {
		if r.pid == pid && r.kind == rowHolder {
			return i+1 < len(h.rows) && h.rows[i+1].kind == rowUse && h.rows[i+1].pid == pid
		}
	}
	return false
}

// View draws the column header and the rows, exactly h.height lines.
func (h holdersPane) View() string {
	var b strings.Builder
	head := "    " + fitRight("PID", 7) + " " + fit("USER", 8) + " " + fit("USES", usesWidth) + " COMMAND"
	b.WriteString(h.styles.Header.Render(clip(head, h.width)))
	lines := 1
	for i := h.offset; i < len(h.rows) && lines < h.height; i++ {
		r := h.rows[i]
		gutter := "  "
		if i == h.cursor {
			gutter = "> "
		}
		line := clip(gutter+r.text, h.width)
		switch {
		case i == h.cursor && h.focused:
			line = h.styles.Cursor.Render(line)
		case r.kind == rowHolder:
			line = h.styles.Busy.Render(line)
		case r.kind == rowSection:
			line = h.styles.Section.Render(line)
		case r.kind == rowWarning:
			line = h.styles.Warning.Render(line)
		case r.kind == rowNote:
			line = h.styles.Dim.Render(line)
		}
		b.WriteString("\n" + line)
		lines++
	}
	for ; lines < h.height; lines++ {
		b.WriteString("\n")
	}
	return b.String()
}
