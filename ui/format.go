package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"mounttop/internal/termsafe"
)

// safe is the one way a name from the system reaches the screen: paths,
// process names, command lines, mount sources and inspect's warnings can
// carry terminal escapes, and termsafe.Text shows them as text.
func safe(s string) string { return termsafe.Text(s) }

// shown is the way a message reaches the screen whose names were escaped
// when it was built: unmount's event texts, plan actions, refusals,
// results and errors, and this package's own errors built with safe. It
// escapes what a terminal could still act on but not a backslash, so a
// mount point with a newline shows as /mnt/a\nb, not /mnt/a\\nb
// (termsafe.Message).
func shown(s string) string { return termsafe.Message(s) }

// fit pads or cuts s to exactly w cells, marking a cut with "…".
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}

// fitRight is fit aligned to the right (numbers).
func fitRight(s string, w int) string {
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return strings.Repeat(" ", w-n) + s
}

// fitTail is fit that keeps the end of s (the interesting end of a path).
func fitTail(s string, w int) string {
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

// clip cuts s to at most w cells without padding.
func clip(s string, w int) string {
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

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

// command is a holder's command line for display: argv joined, or [comm]
// for a kernel thread or a process whose cmdline is gone.
func command(comm string, argv []string) string {
	if len(argv) == 0 {
		return "[" + safe(comm) + "]"
	}
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = safe(a)
	}
	return strings.Join(parts, " ")
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
