package ui

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// TestFilterPromptEdits: the filter prompt is a text input: x and esc
// type or clear rather than cancel, the cursor moves, ctrl+w deletes a
// word, and enter keeps the filter.
func TestFilterPromptEdits(t *testing.T) {
	d := newDriver(t, Options{})
	d.started()
	d.key("/", "proj", "x")
	if d.m.tree.filter != "projx" {
		t.Fatalf("filter %q, want projx", d.m.tree.filter)
	}
	d.send(tea.KeyMsg{Type: tea.KeyLeft})
	d.mustSee("filter: proj█x")
	d.send(tea.KeyMsg{Type: tea.KeyCtrlW})
	if d.m.tree.filter != "x" {
		t.Fatalf("after ctrl+w the filter is %q, want x", d.m.tree.filter)
	}
	d.send(tea.KeyMsg{Type: tea.KeyCtrlE})
	d.key("backspace", "media", "enter")
	if d.m.tree.Filtering() || d.m.tree.filter != "media" || d.m.tree.Selected() != idMedia {
		t.Fatalf("enter: filtering %v, filter %q, selected %x; want media kept and selected", d.m.tree.Filtering(), d.m.tree.filter, d.m.tree.Selected())
	}
	d.mustSee("filter: media ")
	d.key("esc")
	if d.m.tree.filter != "" {
		t.Fatalf("esc kept the filter %q", d.m.tree.filter)
	}
}
