package ui

import (
	"strings"

	"mounttop/internal/present"
)

// helpView is the "?" screen: every key from the one keyMap, and what each
// tree column means from the one column table, in width×height cells.
func helpView(s *Styles, k *keyMap, width, height int) string {
	var lines []string
	lines = append(lines, s.Section.Render("Keys")+"   (any key closes this help)")
	for _, g := range k.helpGroups() {
		var parts []string
		for _, b := range g.Bindings {
			h := b.Help()
			parts = append(parts, s.Key.Render(h.Key)+" "+h.Desc)
		}
		lines = append(lines, wrapJoin(s.Section.Render(fit(g.Name, 8)), parts, " · ", width)...)
	}
	lines = append(lines, "", s.Section.Render("Mount tree columns"))
	for _, c := range present.TreeColumns.Help() {
		lines = append(lines, clip("  "+fit(c.Name, 7)+" "+c.Help, width))
	}
	lines = append(lines, "",
		clip("Every unmount asks first; the dialog starts on No. A staged unmount fences the", width),
		clip("mount, revokes each holder, then drains; x cancels it (rolled back before revoke).", width))
	if len(lines) > height {
		lines = lines[:height]
	}
	for len(lines) < height {
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
