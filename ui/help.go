package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"mounttop/internal/present"
)

// helpScreen is the "?" screen: every key from the one keyMap (drawn by
// bubbles/help), and what each tree column means from the one column
// table. Any key closes it.
type helpScreen struct {
	styles *Styles
	keys   *keyMap
	help   help.Model
	open   bool

	width, height int
}

func newHelpScreen(s *Styles, k *keyMap) helpScreen {
	h := help.New()
	h.Styles.ShortKey = s.Key
	h.Styles.ShortDesc = s.Status
	return helpScreen{styles: s, keys: k, help: h}
}

// SetSize gives the screen its area.
func (h *helpScreen) SetSize(w, ht int) { h.width, h.height = w, ht }

// Update closes the screen on any key.
func (h helpScreen) Update(msg tea.Msg) (helpScreen, tea.Cmd) {
	if _, ok := msg.(tea.KeyMsg); ok {
		h.open = false
	}
	return h, nil
}

// ShortHelp implements help.KeyMap: the screen's own key.
func (h helpScreen) ShortHelp() []key.Binding { return []key.Binding{h.keys.Help} }

// FullHelp implements help.KeyMap: every key, by topic.
func (h helpScreen) FullHelp() [][]key.Binding { return h.keys.FullHelp() }

// View draws the screen in exactly width×height cells.
func (h helpScreen) View() string {
	s, k, width := h.styles, h.keys, h.width
	var lines []string
	lines = append(lines, s.Section.Render("Keys")+present.HelpClosesNote)
	for _, g := range k.helpGroups() {
		var parts []string
		for _, b := range g.Bindings {
			parts = append(parts, h.help.ShortHelpView([]key.Binding{b}))
		}
		lines = append(lines, wrapJoin(s.Section.Render(fit(g.Name, 8)), parts, " · ", width)...)
	}
	lines = append(lines, "", s.Section.Render(present.HelpColumns))
	for _, c := range present.TreeColumns.Help() {
		lines = append(lines, clip("  "+fit(c.Name, 7)+" "+c.Help, width))
	}
	lines = append(lines, "")
	for _, l := range present.HelpUnmounting(k.name(k.Cancel)) {
		lines = append(lines, clip(l, width))
	}
	if len(lines) > h.height {
		lines = lines[:h.height]
	}
	for len(lines) < h.height {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// wrapJoin lays items out after a label, wrapping at width.
func wrapJoin(label string, items []string, sep string, width int) []string {
	var out []string
	line := label + " "
	indent := strings.Repeat(" ", 9)
	first := true
	for _, it := range items {
		add := it
		if !first {
			add = sep + it
		}
		if !first && lipglossWidth(line+add) > width {
			out = append(out, line)
			line = indent + it
		} else {
			line += add
		}
		first = false
	}
	return append(out, line)
}
