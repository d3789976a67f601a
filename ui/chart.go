package ui

import "strings"

// Small charts drawn with characters (issue 13 point 5): the progress
// pane's sparkline of the holders left per drain round, and the tree's bar
// of how busy each mount is next to the busiest. Without colour (NO_COLOR,
// the ASCII profile of the golden screens) they are drawn in ASCII, since
// nothing on screen may rely on a style or a glyph a plain terminal lacks.

var (
	sparkGlyphs      = []rune("▁▂▃▄▅▆▇█")
	sparkGlyphsPlain = []rune("_.-=#")
	// barEighths are the partial cells of a bar, an eighth at a time.
	barEighths = []rune(" ▏▎▍▌▋▊▉")
)

// sparkline draws each value as one cell, scaled to the largest: zero is
// the lowest glyph, the largest the highest, and any value above zero at
// least the second lowest, so "one holder left" never looks like none.
func sparkline(vals []int, plain bool) string {
	glyphs := sparkGlyphs
	if plain {
		glyphs = sparkGlyphsPlain
	}
	top := 0
	for _, v := range vals {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if v > 0 {
			i = (v*(len(glyphs)-1) + top - 1) / top
		}
		b.WriteRune(glyphs[i])
	}
	return b.String()
}

// bar is n next to most as a bar of width cells (eighths of a cell, or
// whole '#' cells when plain); any n above zero shows at least a sliver,
// and zero shows nothing.
func bar(n, most, width int, plain bool) string {
	if n <= 0 || most <= 0 || width <= 0 {
		return strings.Repeat(" ", max(width, 0))
	}
	n = min(n, most)
	if plain {
		cells := max(1, (n*width+most-1)/most)
		return strings.Repeat("#", cells) + strings.Repeat(" ", width-cells)
	}
	eighths := max(1, (n*width*8+most-1)/most)
	full, part := eighths/8, eighths%8
	s := strings.Repeat("█", full)
	if part > 0 {
		s += string(barEighths[part])
		full++
	}
	return s + strings.Repeat(" ", width-full)
}
