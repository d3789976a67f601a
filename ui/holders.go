package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
	"mounttop/internal/present"
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
	return r.copy != nil || (r.kernel != nil && (r.kernel.Kind == inspect.KernelLoop || r.kernel.Kind == inspect.KernelSwap))
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
	// counts: the snapshot has this mount's holders as counts only (a
	// focused scan reads their detail): the pane says so, and shows each
	// holder's line without its uses until the operator opens it.
	counts bool
	// open records the operator's choice per pid (shown or hidden); pids
	// without a choice are shown when everything fits.
	open map[int]bool

	rows          []holderRow
	cursor        int
	window        rowWindow // the rows in view
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

// show points the pane at a mount of a snapshot; detailed is false when
// the snapshot has the mount's holders as counts only. The expanded state
// is kept while the mount stays the same.
func (h *holdersPane) show(s *inspect.Snapshot, id inspect.MountID, e expiryMark, detailed bool) {
	if id != h.mount {
		h.open = map[int]bool{}
		h.cursor = 0
		h.window.home()
	}
	h.snap, h.mount, h.expiry, h.counts = s, id, e, !detailed
	h.rebuild()
}

// title names the pane after its mount.
func (h *holdersPane) title() string {
	if h.snap == nil {
		return present.HoldersTitle(nil, 0)
	}
	m, ok := h.snap.Mount(h.mount)
	if !ok {
		return present.HoldersTitle(nil, 0)
	}
	return present.HoldersTitle(m, len(h.snap.HoldersOf(h.mount)))
}

// rebuild lays the rows out again, keeping the cursor on the row it was
// on.
func (h *holdersPane) rebuild() {
	want := h.cursorKey()
	h.rows = h.rows[:0]
	h.addRows()
	h.cursorTo(want)
}

// addRows adds the pane's rows: notes, the processes and their uses, the
// kernel holders, the copies, the other mounts of the filesystem and the
// scan's warnings.
func (h *holdersPane) addRows() {
	if h.snap == nil {
		h.add(rowNote, 0, present.ReadingHolders)
		return
	}
	m, ok := h.snap.Mount(h.mount)
	if !ok {
		h.add(rowNote, 0, present.NoMountSelected)
		return
	}
	if s := h.expiry.sentence(h.keys); s != "" {
		h.add(rowNote, 0, s)
	}
	if m.Automount != nil {
		h.add(rowNote, 0, present.AutomountNote(m))
	}
	kernel := h.kernelHolders()
	if holders := h.snap.HoldersOf(h.mount); len(holders) > 0 {
		if h.counts {
			h.add(rowNote, 0, present.ReadingHowHeld)
		}
		h.addProcesses(holders)
	} else {
		h.addNobody(m, len(kernel))
	}
	h.addKernel(kernel)
	h.addCopies()
	h.addSameFilesystem(m)
	h.addWarnings()
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
	h.window.setRows(len(h.rows), h.bodyHeight(), h.cursor)
}

// kernelHolders are what the kernel holds the mount for, but its
// submounts (the tree and a note show those).
func (h *holdersPane) kernelHolders() []inspect.KernelHolder {
	var kernel []inspect.KernelHolder
	for _, k := range h.snap.Kernel[h.mount] {
		if k.Kind != inspect.KernelSubmount {
			kernel = append(kernel, k)
		}
	}
	return kernel
}

// addNobody says why no process holds the mount, and what to do.
func (h *holdersPane) addNobody(m *inspect.Mount, kernel int) {
	submounts := 0
	if kernel == 0 {
		submounts = len(h.snap.Descendants(h.mount))
	}
	h.add(rowNote, 0, present.NobodyHolds(m, kernel, submounts, h.keys.name(h.keys.Expire)))
}

// addProcesses adds a line per holder process and, when open, a line per
// use; without the operator's choice they are open when everything fits.
func (h *holdersPane) addProcesses(holders []inspect.Holder) {
	total := 0
	for _, hd := range holders {
		total += 1 + len(hd.Uses)
	}
	fits := total <= h.bodyHeight() && !h.counts
	for i := range holders {
		hd := &holders[i]
		open, chosen := h.open[hd.PID]
		if !chosen {
			open = fits
		}
		h.rows = append(h.rows, holderRow{kind: rowHolder, pid: hd.PID, text: present.HolderLine(hd, open), key: fmt.Sprintf("pid:%d", hd.PID)})
		if open && !h.counts { // count-only uses have no fd, path nor range to list
			for _, u := range present.SortedUses(hd.Uses) {
				h.add(rowUse, hd.PID, "    "+present.UseLine(u))
			}
		}
	}
}

// addKernel lists the kernel holders (R releases loop devices and swap
// files among them).
func (h *holdersPane) addKernel(kernel []inspect.KernelHolder) {
	if len(kernel) > 0 {
		h.add(rowSection, 0, present.KernelSection)
		for i := range kernel {
			k := &kernel[i]
			h.rows = append(h.rows, holderRow{kind: rowWarning, pid: k.PID, text: "  " + present.KernelLine(k), kernel: k,
				key: "kernel:" + k.Kind.String() + ":" + present.KernelName(*k) + ":" + k.Path})
		}
	}
}

// addCopies lists the mount's copies in other mount namespaces (R
// releases them).
func (h *holdersPane) addCopies() {
	if copies := h.snap.Copies(h.mount); len(copies) > 0 {
		h.add(rowSection, 0, present.CopiesSection)
		for i := range copies {
			c := &copies[i]
			h.rows = append(h.rows, holderRow{kind: rowOther, copy: c, key: fmt.Sprintf("copy:%d:%d", c.Namespace.Inode, c.Mount.OldID),
				text: "  " + present.CopyLine(c)})
		}
	}
}

// addSameFilesystem lists the other mounts of the same filesystem.
func (h *holdersPane) addSameFilesystem(m *inspect.Mount) {
	if others := h.snap.SameFilesystem(h.mount); len(others) > 0 {
		h.add(rowSection, 0, present.SameFilesystemSection(m))
		for _, o := range others {
			h.add(rowOther, 0, "  "+present.SameFilesystemLine(h.snap, o))
		}
	}
}

// addWarnings lists the scan's first warnings.
func (h *holdersPane) addWarnings() {
	if len(h.snap.Warnings) > 0 {
		h.add(rowSection, 0, present.WarningsSection(len(h.snap.Warnings)))
		for i, w := range h.snap.Warnings {
			if i == maxWarnings {
				h.add(rowWarning, 0, "  "+present.MoreWarnings(len(h.snap.Warnings)-i))
				break
			}
			h.add(rowWarning, w.PID, "  "+present.WarningText(w))
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
	h.window.follow(h.cursor)
	return true
}

func (h *holdersPane) add(k holderRowKind, pid int, text string) {
	h.rows = append(h.rows, holderRow{kind: k, pid: pid, text: text})
}

// summary counts a holder's uses by kind: "fd×2 cwd mmap lock"
// (present.UseSummary).
func summary(uses []inspect.Use) string { return present.UseSummary(uses) }

func (h *holdersPane) bodyHeight() int {
	if h.height < 2 {
		return 1
	}
	return h.height - 1
}

// move moves the cursor n rows, within the rows, and scrolls to it.
func (h *holdersPane) move(n int) {
	h.cursor = max(min(h.cursor+n, len(h.rows)-1), 0)
	h.window.follow(h.cursor)
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
		h.window.follow(h.cursor)
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
	b.WriteString(h.styles.Header.Render(clip(present.HoldersPaneHeader(), h.width)))
	lines := 1
	from, to := h.window.shown(len(h.rows))
	for i := from; i < to && lines < h.height; i++ {
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
