package present

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/charmbracelet/x/ansi"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
)

// Flags say how a column's cells are laid out, as findmnt's infos[] flags
// (util-linux misc-utils/findmnt.c: SCOLS_FL_TRUNC, SCOLS_FL_RIGHT,
// SCOLS_FL_TREE) do.
type Flags uint8

const (
	// Truncate: a cell wider than its column is cut, the cut marked "…"
	// (every column of the view; `list` prints whole cells).
	Truncate Flags = 1 << iota
	// Right: the cell is right-aligned (numbers).
	Right
	// Tree: the column carries the tree drawing (Column.Prefix); when cut,
	// the drawing and the end of the path (its interesting end) are kept.
	Tree
	// Rest: the last column of a line, not padded: it takes what is left
	// of the line and the line is cut at the screen's edge.
	Rest
)

// Column is one column of a table, in the manner of findmnt's infos[]: one
// entry says what the column is called, how wide it wants to be, how it is
// laid out, what it means (help) and how each cell is drawn, so that the
// header, the cells and the help text cannot drift apart. R is a row.
type Column[R any] struct {
	Name  string
	Width int // width hint in cells: the view's minimum
	Flex  int // the view's share of spare width (0: fixed)
	Flags Flags
	Help  string // one line: what the column shows
	// Cell draws the cell of row r, names escaped (once, here).
	Cell func(r R) string
	// Prefix is the part of a Tree column's cell that is drawing, kept
	// whole when the cell is cut.
	Prefix func(r R) string
}

// Table is the columns of one view, in order.
type Table[R any] []Column[R]

// ColumnHelp is a column's name and its one-line help, for the view's
// help screen and the man page.
type ColumnHelp struct{ Name, Help string }

// Select returns the named columns, in the order given; it panics on a
// name the table lacks (a programming error: the names are constants).
func (t Table[R]) Select(names ...string) Table[R] {
	out := make(Table[R], 0, len(names))
	for _, n := range names {
		found := false
		for _, c := range t {
			if c.Name == n {
				out, found = append(out, c), true
				break
			}
		}
		if !found {
			panic("present: no column " + n)
		}
	}
	return out
}

// Help lists each column's name and help.
func (t Table[R]) Help() []ColumnHelp {
	out := make([]ColumnHelp, len(t))
	for i, c := range t {
		out[i] = ColumnHelp{c.Name, c.Help}
	}
	return out
}

// Widths lays the columns out in width cells, of which reserved go to
// what precedes the first column (the cursor gutter): each column gets
// its width hint, the spare cells go to the flexible columns by their
// share, and what rounding leaves to the first.
func (t Table[R]) Widths(width, reserved int) []int {
	ws := make([]int, len(t))
	used, flex := len(t)-1+reserved, 0 // the gaps and the gutter
	for i, c := range t {
		ws[i] = c.Width
		used += c.Width
		flex += c.Flex
	}
	spare := width - used
	if spare > 0 && flex > 0 {
		given := 0
		for i, c := range t {
			if c.Flex > 0 {
				add := spare * c.Flex / flex
				ws[i] += add
				given += add
			}
		}
		ws[0] += spare - given
	}
	return ws
}

// Header is the column names laid out in widths.
func (t Table[R]) Header(widths []int) string {
	cells := make([]string, len(t))
	for i, c := range t {
		switch {
		case c.Flags&Rest != 0:
			cells[i] = c.Name
		case c.Flags&Right != 0:
			cells[i] = FitRight(c.Name, widths[i])
		default:
			cells[i] = Fit(c.Name, widths[i])
		}
	}
	return strings.Join(cells, " ")
}

// Row is row r's cells laid out in widths, one space apart.
func (t Table[R]) Row(r R, widths []int) string {
	cells := make([]string, len(t))
	for i, c := range t {
		s := c.Cell(r)
		switch {
		case c.Flags&Rest != 0:
			cells[i] = s
		case c.Flags&Right != 0:
			cells[i] = FitRight(s, widths[i])
		case c.Flags&Tree != 0 && c.Prefix != nil && ansi.StringWidth(s) > widths[i]:
			p := c.Prefix(r)
			cells[i] = p + FitTail(s[len(p):], widths[i]-len([]rune(p)))
		default:
			cells[i] = Fit(s, widths[i])
		}
	}
	return strings.Join(cells, " ")
}

// WriteText writes the header and rows as a text table for a pipe or a
// terminal (`list`, `holders`): whole cells, columns two spaces apart.
func (t Table[R]) WriteText(w io.Writer, header bool, rows []R) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if header {
		names := make([]string, len(t))
		for i, c := range t {
			names[i] = c.Name
		}
		fmt.Fprintln(tw, strings.Join(names, "\t"))
	}
	cells := make([]string, len(t))
	for _, r := range rows {
		for i, c := range t {
			cells[i] = c.Cell(r)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// MountRow is one mount as a row of the mount tree (the view) or of
// `list`.
type MountRow struct {
	Snap  *inspect.Snapshot
	Mount *inspect.Mount
	// Prefix is what precedes the mount point: the tree drawing (view) or
	// the indentation (list).
	Prefix string
	// Collapsed is how many submounts a collapsed row hides ([+N]).
	Collapsed int
	// Expiry is the view's own MNT_EXPIRE mark cell, "-" or "" for none.
	Expiry string
	// Busy is the view's bar of the mount's holders next to the busiest
	// (drawn and styled by the view).
	Busy string
	// HiddenNote: say in TARGET how a hidden mount is reached (list).
	HiddenNote bool
}

// MountColumns is every column a mount row can show; ListColumns and
// TreeColumns pick from it.
var MountColumns = Table[MountRow]{
	{Name: "TARGET", Width: 20, Flex: 3, Flags: Truncate | Tree, Help: "mount point, as a tree; [+N] marks N hidden submounts",
		Prefix: func(r MountRow) string { return r.Prefix },
		Cell: func(r MountRow) string {
			s := r.Prefix + Name(r.Mount.Mountpoint)
			if r.Collapsed > 0 {
				s += fmt.Sprintf(" [+%d]", r.Collapsed)
			}
			if r.HiddenNote && r.Mount.Hidden {
				s += " (hidden: the path leads to another mount; reach it by --id)"
			}
			return s
		}},
	{Name: "SOURCE", Width: 10, Flex: 1, Flags: Truncate, Help: "what is mounted (device, server:path, or a name)",
		Cell: func(r MountRow) string { return Name(r.Mount.Source) }},
	{Name: "FSTYPE", Width: 7, Flags: Truncate, Help: "filesystem type",
		Cell: func(r MountRow) string { return Name(r.Mount.FSType) }},
	{Name: "MODE", Width: 2, Flags: Truncate, Help: "ro or rw (the mount's own flag)",
		Cell: func(r MountRow) string { return mode(r.Mount) }},
	{Name: "PROPAGATION", Width: 7, Flags: Truncate, Help: "private, shared, slave, unbindable (mountinfo(5) optional fields)",
		Cell: func(r MountRow) string { return r.Mount.Propagation.String() }},
	{Name: "ID", Width: 4, Flags: Right, Help: "the mount's reusable 32-bit ID (mountinfo field 1)",
		Cell: func(r MountRow) string { return fmt.Sprint(r.Mount.OldID) }},
	{Name: "HOLDERS", Width: 4, Flags: Right, Help: "processes holding this very mount",
		Cell: func(r MountRow) string { return fmt.Sprint(len(r.Snap.HoldersOf(r.Mount.ID))) }},
	{Name: "HOLD", Width: 4, Flags: Right, Help: "processes holding this very mount, +N kernel holders (- for none)",
		Cell: func(r MountRow) string {
			n, k := len(r.Snap.HoldersOf(r.Mount.ID)), KernelHolders(r.Snap, r.Mount.ID)
			switch {
			case k > 0:
				return fmt.Sprintf("%d+%d", n, k)
			case n > 0:
				return fmt.Sprint(n)
			}
			return "-"
		}},
	{Name: "BUSY", Width: 4, Help: "how busy it is next to the busiest mount: a bar of its holders (# without colour)",
		Cell: func(r MountRow) string { return r.Busy }},
	{Name: "AUTOMOUNT", Width: 9, Flags: Truncate, Help: "who mounts it again on access and its idle expiry (autofs/systemd/kernel T, trigger)",
		Cell: func(r MountRow) string { return automountCell(r.Mount) }},
	{Name: "EXPIRY", Width: 16, Flags: Truncate, Help: "MNT_EXPIRE mark set by mounttop (armed T, cleared T by an access, expired), else who mounts it again on access and its idle expiry (autofs/systemd/kernel T, trigger)",
		Cell: func(r MountRow) string {
			if e := r.Expiry; e != "" && e != "-" || r.Mount.Automount == nil {
				return cmp.Or(e, "-")
			}
			return automountCell(r.Mount)
		}},
	{Name: "FLAGS", Width: 10, Flags: Truncate, Help: "ro/rw and propagation (private, shared, slave, unbindable), or detached; hidden: shadowed, no path leads to it",
		Cell: func(r MountRow) string {
			m := r.Mount
			if m.Detached {
				return "detached"
			}
			s := mode(m)
			if m.Hidden {
				s = "hidden " + s
			}
			return s + " " + m.Propagation.String()
		}},
}

// The columns of `list` and of the view's mount tree.
var (
	ListColumns = MountColumns.Select("TARGET", "SOURCE", "FSTYPE", "MODE", "PROPAGATION", "ID", "HOLDERS", "AUTOMOUNT")
	TreeColumns = MountColumns.Select("TARGET", "FSTYPE", "SOURCE", "HOLD", "BUSY", "EXPIRY", "FLAGS")
)

func mode(m *inspect.Mount) string {
	if m.ReadOnly() {
		return "ro"
	}
	return "rw"
}

func automountCell(m *inspect.Mount) string {
	if m.Automount == nil {
		return "-"
	}
	return Name(scantext.AutomountCell(m.Automount))
}

// KernelHolders counts what the kernel holds a mount for, leaving out its
// submounts (the tree shows those already).
func KernelHolders(s *inspect.Snapshot, id inspect.MountID) int {
	n := 0
	for _, k := range s.Kernel[id] {
		if k.Kind != inspect.KernelSubmount {
			n++
		}
	}
	return n
}

// HolderRow is a process holding a mount (Use nil), or one of its uses.
type HolderRow struct {
	Holder *inspect.Holder
	Use    *inspect.Use
}

// UsesWidth is the USES column: "fd×12 cwd mmap×3 lock" fits.
const UsesWidth = 20

// HolderColumns is every column a holder row can show; HoldersColumns and
// HoldersPaneColumns pick from it.
var HolderColumns = Table[HolderRow]{
	{Name: "PID", Width: 7, Flags: Right, Help: "the process ID",
		Cell: func(r HolderRow) string {
			if r.Use != nil {
				return ""
			}
			return fmt.Sprint(r.Holder.PID)
		}},
	{Name: "USER", Width: 8, Flags: Truncate, Help: "the process's user (its real UID's name)",
		Cell: func(r HolderRow) string {
			if r.Use != nil {
				return ""
			}
			return Name(r.Holder.User)
		}},
	{Name: "COMM", Width: 15, Flags: Truncate, Help: "the process's name (/proc/PID/comm)",
		Cell: func(r HolderRow) string {
			if r.Use != nil {
				return ""
			}
			return Name(r.Holder.Comm)
		}},
	{Name: "USES", Width: UsesWidth, Flags: Truncate, Help: "how it holds the mount, counted by kind: fd, cwd, root, exe, mmap, lock",
		Cell: func(r HolderRow) string {
			if r.Use != nil {
				return ""
			}
			return UseSummary(r.Holder.Uses)
		}},
	{Name: "USE", Width: 12, Flags: Truncate, Help: "one use: fd N and its access mode, cwd, root, exe, mmap, lock TYPE mode",
		Cell: func(r HolderRow) string {
			if r.Use == nil {
				return ""
			}
			return UseLabel(*r.Use)
		}},
	{Name: "COMMAND", Flags: Rest, Help: "the command line ([comm] when it has none), its state if stopped or stuck, and its service or container",
		Cell: func(r HolderRow) string {
			h := r.Holder
			return Command(h.Comm, h.Cmdline) + stateNote(h.State) + Where(*h)
		}},
	{Name: "ARGS / PATH", Flags: Rest, Help: "the process's command line; for a use, the path it holds",
		Cell: func(r HolderRow) string {
			if r.Use != nil {
				return Name(r.Use.Path) + UseSuffix(*r.Use)
			}
			return Args(r.Holder.Cmdline)
		}},
}

// The columns of `holders` and of the view's holders pane.
var (
	HoldersColumns     = HolderColumns.Select("PID", "USER", "COMM", "USE", "ARGS / PATH")
	HoldersPaneColumns = HolderColumns.Select("PID", "USER", "USES", "COMMAND")
)

// Fit pads or cuts s to exactly w cells, marking a cut with "…".
func Fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}

// FitRight is Fit aligned to the right (numbers).
func FitRight(s string, w int) string {
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return strings.Repeat(" ", w-n) + s
}

// FitTail is Fit that keeps the end of s (the interesting end of a path).
func FitTail(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n <= w {
		return s + strings.Repeat(" ", w-n)
	}
	if w == 1 {
		return "…"
	}
	return "…" + ansi.TruncateLeft(s, n-w+1, "")
}

// Clip cuts s to at most w cells without padding.
func Clip(s string, w int) string {
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}
