package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// actionKind is what a dialog's "yes" does.
type actionKind int

const (
	actRun     actionKind = iota + 1 // run plan, as prepared
	actQuit                          // quit, cancelling the running unmount
	actRelease                       // carry out release (one kernel holder or copy)

	// actRollbackFence rolls back action.leftover, a fence a killed run
	// left.
	actRollbackFence
	// actReplan asks the engine to prepare plan, a choice that changes
	// it (signal instead): a new dialog shows what will run.
	actReplan
)

// action is the deed a dialog guards; the dialog carries it so that "yes"
// does exactly what the dialog said.
type action struct {
	kind    actionKind
	plan    unmount.Plan      // actRun: prepared; actReplan: to prepare
	snap    *inspect.Snapshot // the scan the plan was made from
	release unmount.Release
	what    string // actRelease: the release in the operator's words
	// leftover (actRollbackFence) is the fence to roll back, as found;
	// what then says it in the operator's words.
	leftover unmount.Leftover
}

// choice is one answer of a dialog. The first choice is always No.
type choice struct {
	label string
	// key picks it directly (Yes, WhenIdle, SignalInstead, ...); its name
	// is shown before the label, "(y) Yes". None on No.
	key *key.Binding
	act *action
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
	// explicit: the generic Yes key answers nothing; only a choice's own
	// key, or Enter on it, does (the host's namespace question).
	explicit bool

	width, height int
	// answered: the dialog is closed, with chosen (nil for No).
	answered bool
	chosen   *action
}

// yesChoice is the usual Yes, picked by the Yes key.
func (k *keyMap) yesChoice(label string, act *action) choice {
	return choice{label: label, key: &k.Yes, act: act}
}

// SetSize gives the dialog the area it is centred in.
func (d *confirmDialog) SetSize(w, h int) { d.width, d.height = w, h }

// ShortHelp implements help.KeyMap: the dialog's keys.
func (d confirmDialog) ShortHelp() []key.Binding {
	out := []key.Binding{d.keys.No, d.keys.Left, d.keys.Right, d.keys.Choose}
	for _, c := range d.choices {
		if c.key != nil {
			out = append(out, *c.key)
		}
	}
	return out
}

// FullHelp implements help.KeyMap.
func (d confirmDialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }

// Update answers a key; once answered, the root reads the answer and
// closes the dialog.
func (d confirmDialog) Update(msg tea.Msg) (confirmDialog, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return d, nil
	}
	for _, c := range d.choices {
		if c.key != nil && key.Matches(km, *c.key) && (c.key != &d.keys.Yes || !d.explicit) {
			return d.answer(c.act), nil
		}
	}
	switch {
	case key.Matches(km, d.keys.No):
		return d.answer(nil), nil
	case key.Matches(km, d.keys.Choose):
		return d.answer(d.choices[d.sel].act), nil
	case key.Matches(km, d.keys.Left):
		d.sel = max(d.sel-1, 0)
	case key.Matches(km, d.keys.Right):
		d.sel = min(d.sel+1, len(d.choices)-1)
	}
	return d, nil
}

func (d confirmDialog) answer(a *action) confirmDialog {
	d.answered, d.chosen = true, a
	return d
}

// View draws the dialog centred in its area.
func (d confirmDialog) View() string {
	return cropLines(lipgloss.Place(d.width, d.height, lipgloss.Center, lipgloss.Center, d.box()), d.height)
}

// box draws the dialog box, at most width cells wide.
func (d confirmDialog) box() string {
	w := min(d.width-4, 76)
	inner := w - 4 // border and padding
	var b strings.Builder
	b.WriteString(d.styles.DialogTitle.Render(clip(d.title, inner)))
	b.WriteString("\n")
	room := d.height - 7 // border, title, blank, choices, hint
	for i, l := range d.lines {
		if i == room-1 && len(d.lines) > room {
			b.WriteString("\n" + clip(present.MoreInHoldersPane, inner))
			break
		}
		b.WriteString("\n" + clip(l, inner))
	}
	b.WriteString("\n\n")
	var cs []string
	for i, c := range d.choices {
		text := c.label
		if c.key != nil {
			text = "(" + d.keys.name(*c.key) + ") " + text
		}
		if i == d.sel {
			cs = append(cs, d.styles.ChoiceOn.Render("[ "+text+" ]"))
		} else {
			cs = append(cs, d.styles.Choice.Render("  "+text+"  "))
		}
	}
	b.WriteString(strings.Join(cs, " "))
	k := d.keys
	hint := present.DialogHint(k.No.Help().Key, k.Left.Help().Key, k.Right.Help().Key, k.Choose.Help().Key)
	b.WriteString("\n" + d.styles.Dim.Render(clip(hint, inner)))
	return d.styles.Dialog.Width(w - 2).Render(b.String())
}
