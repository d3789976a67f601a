package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"mounttop/unmount"
)

// actionKind is what a dialog's "yes" does.
type actionKind int

const (
	actRun     actionKind = iota + 1 // start the unmount in req with plan
	actQuit                          // quit, cancelling the running unmount
	actRelease                       // carry out release (one kernel holder or copy)

	// actRollbackFence rolls back action.leftover, a fence a killed run
	// left.
	actRollbackFence
)

// action is the deed a dialog guards; the dialog carries it so that "yes"
// does exactly what the dialog said.
type action struct {
	kind    actionKind
	req     Request
	plan    unmount.Plan
	release unmount.Release
	what    string // actRelease: the release in the operator's words
	// leftover (actRollbackFence) is the fence to roll back, as found;
	// what then says it in the operator's words.
	leftover unmount.Leftover
}

// choice is one answer of a dialog. The first choice is always No.
type choice struct {
	label  string
	hotkey string // a key that picks it directly ("y", "w", ...)
	act    *action
}

// confirmDialog asks before anything destructive. It states what will
// happen to which processes, starts on No, and takes every key while open.
type confirmDialog struct {
	styles  *Styles
	keys    *keyMap
	title   string
	lines   []string
	choices []choice
	sel     int
	// explicit: the generic Yes key (y) answers nothing; only a choice's
	// own hotkey, or Enter on it, does (the host's namespace question).
	explicit bool
}

// Update answers a key: done reports the dialog closed, with the chosen
// action (nil for No).
func (d confirmDialog) Update(msg tea.Msg) (confirmDialog, *action, bool) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return d, nil, false
	}
	for _, c := range d.choices {
		if c.hotkey != "" && km.String() == c.hotkey {
			return d, c.act, true
		}
	}
	switch {
	case key.Matches(km, d.keys.Yes):
		if len(d.choices) > 1 && !d.explicit {
			return d, d.choices[1].act, true
		}
	case key.Matches(km, d.keys.No):
		return d, nil, true
	case key.Matches(km, d.keys.Choose):
		return d, d.choices[d.sel].act, true
	case key.Matches(km, d.keys.Left):
		if d.sel > 0 {
			d.sel--
		}
	case key.Matches(km, d.keys.Right):
		if d.sel < len(d.choices)-1 {
			d.sel++
		}
	}
	return d, nil, false
}

// View draws the dialog box, at most width cells wide.
func (d confirmDialog) View(width, height int) string {
	w := width - 4
	if w > 76 {
		w = 76
	}
	inner := w - 4 // border and padding
	var b strings.Builder
	b.WriteString(d.styles.DialogTitle.Render(clip(d.title, inner)))
	b.WriteString("\n")
	room := height - 7 // border, title, blank, choices, hint
	for i, l := range d.lines {
		if i == room-1 && len(d.lines) > room {
			b.WriteString("\n" + clip("… (the holders pane has the full list)", inner))
			break
		}
		b.WriteString("\n" + clip(l, inner))
	}
	b.WriteString("\n\n")
	var cs []string
	for i, c := range d.choices {
		text := c.label
		if c.hotkey != "" {
			text = "(" + c.hotkey + ") " + text
		}
		label := "  " + text + "  "
		if i == d.sel {
			label = "[ " + text + " ]"
			cs = append(cs, d.styles.ChoiceOn.Render(label))
		} else {
			cs = append(cs, d.styles.Choice.Render(label))
		}
	}
	b.WriteString(strings.Join(cs, " "))
	hint := "n/esc: No · ←/→ and enter: the highlighted one"
	b.WriteString("\n" + d.styles.Dim.Render(clip(hint, inner)))
	return d.styles.Dialog.Width(w - 2).Render(b.String())
}

// place centres the dialog in a width×height area.
func (d confirmDialog) place(width, height int) string {
	return lipgloss.Place(width, height, lipgloss.Center, lipgloss.Center, d.View(width, height))
}
