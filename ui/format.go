package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"mounttop/internal/present"
	"mounttop/internal/termsafe"
)

// safe escapes a raw name from the system (a path, a process name) that
// this package puts into a sentence of its own. Text that package present
// rendered is escaped already and is never passed through safe again.
func safe(s string) string { return present.Name(s) }

// shown is the way a message reaches the screen whose names were escaped
// when it was built: unmount's event texts, plan actions, refusals,
// results and errors, and this package's own errors built with safe. It
// escapes what a terminal could still act on but not a backslash, so a
// mount point with a newline shows as /mnt/a\nb, not /mnt/a\\nb
// (termsafe.Message).
func shown(s string) string { return termsafe.Message(s) }

// fit and clip lay a cell out in w cells, as the column tables of
// package present do (present.Fit, present.Clip).
func fit(s string, w int) string  { return present.Fit(s, w) }
func clip(s string, w int) string { return present.Clip(s, w) }

// age renders a duration the way an operator reads it at a glance.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// elapsed renders a run's elapsed time as mm:ss.
func elapsed(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// plural is "1 holder", "3 holders".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// lipglossWidth is the width in cells of styled text.
func lipglossWidth(s string) int { return ansi.StringWidth(s) }

// wrapLines breaks s into at most max lines of width cells at word
// boundaries (x/ansi's Wordwrap; a word longer than a line is cut by
// Wrap); what does not fit goes on the last line, cut with "…". An empty s
// is one empty line.
func wrapLines(s string, width, max int) []string {
	if width < 1 {
		return []string{""}
	}
	lines := strings.Split(ansi.Wrap(s, width, ""), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	if len(lines) > max {
		rest := strings.Join(lines[max-1:], " ")
		lines = append(lines[:max-1], clip(rest, width))
	}
	return lines
}

// cropLines keeps at most n lines of s.
func cropLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
