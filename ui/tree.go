package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
	"mounttop/internal/present"
)

// treeRow is one visible line of the tree.
type treeRow struct {
	id      inspect.MountID
	prefix  string // the tree drawing before the mount point
	context bool   // shown only as the ancestor of a filter match
}

// treePane is the findmnt-like mount tree. It owns the selection, which
// follows a mount by its unique ID across refreshes.
type treePane struct {
	styles *Styles
	keys   *keyMap

	snap      *inspect.Snapshot
	busiest   int // the most holders of one mount in snap (load)
	expiry    *expiryMarks
	collapsed map[inspect.MountID]bool
	filter    string          // the filter in force
	filtering bool            // the filter prompt has the keyboard
	input     textinput.Model // the prompt's text, as typed

	rows     []treeRow
	cursor   int
	window   rowWindow // the rows in view
	selected inspect.MountID

	width, height int // height includes the header line
	focused       bool
}

func newTreePane(s *Styles, k *keyMap, e *expiryMarks) treePane {
	in := textinput.New()
	in.Prompt = ""
	return treePane{styles: s, keys: k, collapsed: map[inspect.MountID]bool{}, expiry: e, input: in}
}

func (t *treePane) setFocused(f bool) { t.focused = f }

// Selected is the mount under the cursor (0 when none).
func (t *treePane) Selected() inspect.MountID { return t.selected }

// Filtering reports whether the filter prompt has the keyboard.
func (t *treePane) Filtering() bool { return t.filtering }

// clearFilter drops the filter; false if there was none.
func (t *treePane) clearFilter() bool {
	if t.filter == "" {
		return false
	}
	t.filter = ""
	t.input.SetValue("")
	t.rebuild(t.selected)
	return true
}

// ShortHelp implements help.KeyMap: the keys of the pane.
func (t treePane) ShortHelp() []key.Binding {
	k := t.keys
	return []key.Binding{k.Up, k.Down, k.Toggle, k.Expand, k.Collapse, k.Filter}
}

// FullHelp implements help.KeyMap.
func (t treePane) FullHelp() [][]key.Binding {
	k := t.keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}, {k.Toggle, k.Expand, k.Collapse, k.Filter}}
}

// SetSize sets the pane's size: height counts the column header.
func (t *treePane) SetSize(w, h int) {
	t.width, t.height = w, h
	t.window.setRows(len(t.rows), t.bodyHeight(), t.cursor)
}

// setSnapshot shows a new scan, keeping the selection on the same mount.
// When the selected mount is gone, the selection moves to its nearest
// ancestor that is still mounted, and gone names the vanished mount point.
func (t *treePane) setSnapshot(s *inspect.Snapshot) (goneID inspect.MountID, gone string) {
	old := t.snap
	t.snap = s
	t.busiest = 0
	for i := range s.Mounts {
		t.busiest = max(t.busiest, t.load(s.Mounts[i].ID))
	}
	want := t.selected
	if want != 0 {
		if _, ok := s.Mount(want); !ok && old != nil {
			if m, ok := old.Mount(want); ok {
				goneID, gone = m.ID, m.Mountpoint
				for p := m.ParentID; ; {
					if _, ok := s.Mount(p); ok {
						want = p
						break
					}
					pm, ok := old.Mount(p)
					if !ok || pm.ParentID == pm.ID {
						want = 0
						break
					}
					p = pm.ParentID
				}
			}
		}
	}
	t.rebuild(want)
	return goneID, gone
}

// selectID moves the selection to id (expanding its ancestors); false if
// the mount is not in the table.
func (t *treePane) selectID(id inspect.MountID) bool {
	if t.snap == nil {
		return false
	}
	m, ok := t.snap.Mount(id)
	if !ok {
		return false
	}
	for p := m.ParentID; p != m.ID; {
		delete(t.collapsed, p)
		pm, ok := t.snap.Mount(p)
		if !ok || pm.ParentID == pm.ID {
			break
		}
		p = pm.ParentID
	}
	t.rebuild(id)
	// Show the selection a third of the way down, with its submounts
	// below it in view.
	t.window.showAt(t.cursor, t.bodyHeight()/3)
	return t.selected == id
}

// rebuild recomputes the visible rows and puts the cursor on want, or as
// near to where it was as the new rows allow.
func (t *treePane) rebuild(want inspect.MountID) {
	t.rows = t.rows[:0]
	if t.snap == nil {
		return
	}
	var match, shown map[inspect.MountID]bool // nil: no filter
	if t.filter != "" {
		match = t.matches()
		shown = t.withAncestors(match)
	}
	var walk func(id inspect.MountID, prefix, childPrefix string)
	walk = func(id inspect.MountID, prefix, childPrefix string) {
		m, ok := t.snap.Mount(id)
		if !ok {
			return
		}
		if shown != nil && !shown[id] {
			return
		}
		t.rows = append(t.rows, treeRow{id: id, prefix: prefix, context: match != nil && !match[id]})
		if t.collapsed[id] && match == nil {
			return
		}
		kids := t.visibleChildren(m, shown)
		for i, c := range kids {
			if i == len(kids)-1 {
				walk(c, childPrefix+"└─", childPrefix+"  ")
			} else {
				walk(c, childPrefix+"├─", childPrefix+"│ ")
			}
		}
	}
	for _, r := range t.snap.Roots() {
		walk(r, "", "")
	}
	t.cursor = t.indexOf(want, t.cursor)
	if len(t.rows) > 0 {
		t.selected = t.rows[t.cursor].id
	} else {
		t.selected = 0
	}
	t.window.setRows(len(t.rows), t.bodyHeight(), t.cursor)
}

func (t *treePane) visibleChildren(m *inspect.Mount, shown map[inspect.MountID]bool) []inspect.MountID {
	var out []inspect.MountID
	for _, c := range m.Children {
		if c == m.ID {
			continue
		}
		if shown != nil && !shown[c] {
			continue
		}
		out = append(out, c)
	}
	return out
}

// indexOf finds id among the rows; if it is not there, the row nearest to
// fallback.
func (t *treePane) indexOf(id inspect.MountID, fallback int) int {
	for i, r := range t.rows {
		if r.id == id {
			return i
		}
	}
	if fallback >= len(t.rows) {
		fallback = len(t.rows) - 1
	}
	if fallback < 0 {
		fallback = 0
	}
	return fallback
}

// matches is the set of mounts the filter matches (mount point, source or
// fstype, ignoring case).
func (t *treePane) matches() map[inspect.MountID]bool {
	f := strings.ToLower(t.filter)
	out := map[inspect.MountID]bool{}
	for i := range t.snap.Mounts {
		m := &t.snap.Mounts[i]
		if strings.Contains(strings.ToLower(m.Mountpoint), f) ||
			strings.Contains(strings.ToLower(m.Source), f) ||
			strings.Contains(strings.ToLower(m.FSType), f) {
			out[m.ID] = true
		}
	}
	return out
}

// withAncestors is the matches and every mount above one: the rows a
// filtered tree shows (ancestors as context).
func (t *treePane) withAncestors(match map[inspect.MountID]bool) map[inspect.MountID]bool {
	shown := make(map[inspect.MountID]bool, len(match)*2)
	for id := range match {
		for cur := id; !shown[cur]; {
			shown[cur] = true
			m, ok := t.snap.Mount(cur)
			if !ok || m.ParentID == m.ID {
				break
			}
			cur = m.ParentID
		}
	}
	return shown
}

// hidden is the number of submounts a collapsed mount hides.
func (t *treePane) hidden(id inspect.MountID) int {
	if !t.collapsed[id] || t.filter != "" {
		return 0
	}
	return len(t.snap.Descendants(id))
}

func (t *treePane) bodyHeight() int {
	if t.height < 2 {
		return 1
	}
	return t.height - 1
}

func (t *treePane) move(n int) {
	if len(t.rows) == 0 {
		return
	}
	t.cursor += n
	if t.cursor < 0 {
		t.cursor = 0
	}
	if t.cursor >= len(t.rows) {
		t.cursor = len(t.rows) - 1
	}
	t.selected = t.rows[t.cursor].id
	t.window.follow(t.cursor)
}

// Update handles the keys of a focused tree (and of its filter prompt).
func (t treePane) Update(msg tea.Msg) (treePane, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return t, nil
	}
	if t.filtering {
		t.typeFilter(km)
		return t, nil
	}
	k := t.keys
	if d, ok := k.step(km, t.bodyHeight(), len(t.rows)); ok {
		t.move(d)
		return t, nil
	}
	if key.Matches(km, k.Filter) {
		t.startFilter()
		return t, nil
	}
	t.fold(km)
	return t, nil
}

// fold opens and closes the selected mount's subtree (and collapse on a
// closed or leaf mount goes to the parent).
func (t *treePane) fold(km tea.KeyMsg) {
	k := t.keys
	switch {
	case key.Matches(km, k.Toggle):
		if t.selected != 0 {
			if m, ok := t.snap.Mount(t.selected); ok && len(m.Children) > 0 {
				t.collapsed[t.selected] = !t.collapsed[t.selected]
				t.rebuild(t.selected)
			}
		}
	case key.Matches(km, k.Expand):
		if t.collapsed[t.selected] {
			delete(t.collapsed, t.selected)
			t.rebuild(t.selected)
		}
	case key.Matches(km, k.Collapse):
		m, ok := t.snap.Mount(t.selected)
		switch {
		case !ok:
		case len(m.Children) > 0 && !t.collapsed[m.ID] && t.filter == "":
			t.collapsed[m.ID] = true
			t.rebuild(m.ID)
		default:
			t.rebuild(m.ParentID) // go to the parent
		}
	}
}

// startFilter opens the prompt for a new filter, as "/" does in less.
func (t *treePane) startFilter() {
	t.filtering = true
	t.input.SetValue("")
	t.input.Focus()
	if t.filter != "" {
		t.filter = ""
		t.rebuild(t.selected)
	}
}

// typeFilter edits the filter in a bubbles/textinput (its keys edit:
// backspace, ctrl+w, the arrows, a paste): it applies as it is typed;
// FilterKeep (enter) keeps it, FilterClear (esc) clears it.
func (t *treePane) typeFilter(km tea.KeyMsg) {
	switch {
	case key.Matches(km, t.keys.FilterKeep):
		t.filtering = false
		t.input.Blur()
		return
	case key.Matches(km, t.keys.FilterClear):
		t.filtering = false
		t.input.Blur()
		t.input.SetValue("")
	default:
		t.input, _ = t.input.Update(km) // its cursor blinks nowhere: filterLine draws it
	}
	if t.input.Value() == t.filter {
		return
	}
	t.filter = t.input.Value()
	before := t.selected
	t.rebuild(t.selected)
	// Keep the cursor on a match: if the mount it was on is filtered out
	// or only shown for context, go to the first match.
	if t.cursor < len(t.rows) && (t.selected != before || t.rows[t.cursor].context) {
		for i, r := range t.rows {
			if !r.context {
				t.cursor, t.selected = i, r.id
				t.window.follow(t.cursor)
				break
			}
		}
	}
}

// widths lays the columns out in w cells, two of them the cursor gutter.
func (t *treePane) widths() []int { return present.TreeColumns.Widths(t.width, 2) }

// row is the tree row r as present's TreeColumns draw it.
func (t *treePane) row(r treeRow, m *inspect.Mount) present.MountRow {
	return present.MountRow{Snap: t.snap, Mount: m, Prefix: r.prefix, Collapsed: t.hidden(m.ID), Expiry: t.expiry.of(m.ID).cell(),
		Busy: bar(t.load(m.ID), t.busiest, 4, t.styles.Plain)}
}

// View draws the header and the visible rows, exactly t.height lines.
func (t treePane) View() string {
	var b strings.Builder
	ws := t.widths()
	b.WriteString(t.styles.Header.Render(clip("  "+present.TreeColumns.Header(ws), t.width)))
	lines := 1
	if t.snap == nil {
		b.WriteString("\n" + t.styles.Dim.Render("  "+present.ReadingMounts))
		lines++
	} else if len(t.rows) == 0 {
		b.WriteString("\n" + t.styles.Dim.Render(clip("  "+present.NoMountMatches(t.filter), t.width)))
		lines++
	}
	from, to := t.window.shown(len(t.rows))
	for i := from; i < to && lines < t.height; i++ {
		b.WriteString("\n" + t.rowLine(i, ws))
		lines++
	}
	for ; lines < t.height; lines++ {
		b.WriteString("\n")
	}
	return b.String()
}

// rowLine draws row i in columns of widths ws, styled: the cursor, a
// filter's context, a busy mount.
func (t *treePane) rowLine(i int, ws []int) string {
	r := t.rows[i]
	m, _ := t.snap.Mount(r.id)
	gutter := "  "
	if i == t.cursor {
		gutter = "> "
	}
	line := clip(gutter+present.TreeColumns.Row(t.row(r, m), ws), t.width)
	switch {
	case i == t.cursor && t.focused:
		return t.styles.Cursor.Render(line)
	case i == t.cursor:
		return t.styles.CursorBlur.Render(line)
	case r.context:
		return t.styles.Context.Render(line)
	case t.load(r.id) > 0:
		return t.styles.Busy.Render(line)
	}
	return line
}

// filterLine is the prompt shown in the pane title while filtering.
func (t treePane) filterLine() string {
	if !t.filtering && t.filter == "" {
		return ""
	}
	if !t.filtering {
		return present.FilterPrompt(t.filter, "", "")
	}
	v := []rune(t.input.Value())
	pos := min(t.input.Position(), len(v))
	return present.FilterPrompt(string(v[:pos]), "█", string(v[pos:]))
}

// load is how many hold a mount: its processes and its kernel holders
// (the HOLD column's two numbers).
func (t *treePane) load(id inspect.MountID) int {
	return len(t.snap.HoldersOf(id)) + present.KernelHolders(t.snap, id)
}
