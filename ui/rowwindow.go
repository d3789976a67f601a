package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/viewport"
)

// rowWindow is which of a pane's rows are in view: a bubbles/viewport
// over one line per row, which owns the scroll position and keeps it
// within the rows (never past the end, never above the first). The pane
// keeps its rows and its cursor; the viewport scrolls to keep the cursor
// in view.
//
// The pane draws the rows in the window itself rather than through
// viewport.View: View pads every line to the widest with spaces (lipgloss
// Width and Height), which the screens never had, and it would need every
// row rendered on every frame where the pane renders only the rows shown
// (a mount table can have thousands of rows).
type rowWindow struct{ vp viewport.Model }

// setRows tells the viewport how many rows there are and how many fit,
// and scrolls to keep cursor in view.
func (w *rowWindow) setRows(n, height, cursor int) {
	w.vp.Height = max(height, 1)
	w.vp.SetContent(strings.Repeat("\n", max(n-1, 0))) // n lines: only their count matters
	w.follow(cursor)
}

// follow scrolls as little as possible to bring row cursor into view;
// SetYOffset keeps the window within the rows.
func (w *rowWindow) follow(cursor int) {
	w.vp.SetYOffset(min(max(w.vp.YOffset, cursor-w.vp.Height+1), cursor))
}

// showAt scrolls so that row is the top'th line of the window (as far as
// the rows allow).
func (w *rowWindow) showAt(row, top int) { w.vp.SetYOffset(row - top) }

// home scrolls back to the first row.
func (w *rowWindow) home() { w.vp.GotoTop() }

// shown is the range of rows in view, [from, to), of n rows.
func (w *rowWindow) shown(n int) (from, to int) {
	from = min(w.vp.YOffset, n)
	return from, min(from+w.vp.Height, n)
}
