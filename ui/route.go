package ui

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"mounttop/internal/present"
	"mounttop/unmount"
)

// Keys go, in this order, to: an open dialog (it takes every key), the
// help screen (any key closes it), a quit that waits for a run (only Quit
// again), the filter prompt, the global keys, and last the focused pane.

func (m Model) onKey(km tea.KeyMsg) (tea.Model, tea.Cmd) {
	if km.Type == tea.KeyRunes && len(km.Runes) > 1 && !km.Paste && !m.tree.Filtering() {
		return m.onRunes(km)
	}
	m.bar.clearError() // errors show until the next key
	switch {
	case m.dialog != nil:
		return m.dialogKey(km)
	case m.help.open:
		m.help, _ = m.help.Update(km)
		return m, nil
	case m.quitting:
		if key.Matches(km, m.keys.Quit) {
			return m, tea.Quit // asked twice: stop waiting
		}
		return m, nil
	case m.tree.Filtering():
		return m.treeKey(km)
	}
	for _, g := range m.globalKeys() {
		if key.Matches(km, g.b) {
			return g.do(m)
		}
	}
	return m.paneKey(km)
}

// onRunes takes keys typed quickly, which can arrive as one message
// ("/db"): outside the filter prompt each is a command of its own, so
// they are taken one by one, and what follows a "/" is the filter's text.
func (m Model) onRunes(km tea.KeyMsg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	var next tea.Model = m
	for i, r := range km.Runes {
		cur := next.(Model)
		if cur.tree.Filtering() {
			return cur.treeKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: km.Runes[i:]})
		}
		var cmd tea.Cmd
		next, cmd = cur.onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: km.Alt})
		cmds = append(cmds, cmd)
	}
	return next, tea.Batch(cmds...)
}

// dialogKey hands a key to the open dialog and, once it is answered,
// carries out what it guarded.
func (m Model) dialogKey(km tea.KeyMsg) (tea.Model, tea.Cmd) {
	d, _ := m.dialog.Update(km)
	if !d.answered {
		m.dialog = &d
		return m, nil
	}
	m.dialog = nil
	if d.chosen == nil {
		m.bar.setStatus(present.AnsweredNo)
		return m, nil
	}
	return m.do(*d.chosen)
}

// globalKey is a key that does the same whatever has focus.
type globalKey struct {
	b  key.Binding
	do func(Model) (tea.Model, tea.Cmd)
}

func (m Model) globalKeys() []globalKey {
	k := m.keys
	ask := func(mode unmount.Mode, preview bool) func(Model) (tea.Model, tea.Cmd) {
		return func(m Model) (tea.Model, tea.Cmd) {
			asked := unmount.Plan{Mode: mode}
			if mode == unmount.ModeStaged {
				asked.Policy = unmount.PolicyClose
			}
			return m.ask(asked, preview)
		}
	}
	gs := []globalKey{
		{k.Quit, Model.quitKey},
		{k.Help, func(m Model) (tea.Model, tea.Cmd) { m.help.open = true; return m, nil }},
		{k.SwitchPane, Model.switchPane},
		{k.Refresh, func(m Model) (tea.Model, tea.Cmd) { m.bar.setStatus(present.Refreshing); return m.startScan() }},
		{k.Cancel, Model.cancelKey},
		{k.Close, Model.closeKey},
		{k.Filter, Model.filterKey},
		{k.Lazy, ask(unmount.ModeLazy, false)},
		{k.Expire, ask(unmount.ModeExpire, false)},
		{k.Force, ask(unmount.ModeForce, false)},
		{k.Staged, ask(unmount.ModeStaged, false)},
		{k.DryRun, ask(unmount.ModeStaged, true)},
		{k.Release, Model.askRelease},
	}
	if m.opts.Leftovers != nil {
		gs = append(gs, globalKey{k.RollbackFence, Model.askRollbackFence})
	}
	return gs
}

// quitKey quits, asking first while an unmount runs.
func (m Model) quitKey() (tea.Model, tea.Cmd) {
	if m.progress.Active() {
		m.openDialog(m.quitDialog())
		return m, nil
	}
	return m, tea.Quit
}

func (m Model) switchPane() (tea.Model, tea.Cmd) {
	if m.focus == focusTree {
		m.setFocus(focusLower)
	} else {
		m.setFocus(focusTree)
	}
	return m, nil
}

// cancelKey stops a running unmount; with none running it closes, as
// closeKey does (the keys are the same).
func (m Model) cancelKey() (tea.Model, tea.Cmd) {
	if !m.progress.Active() {
		return m.closeKey()
	}
	if m.progress.stop(m.now) {
		m.bar.setStatus(present.Cancelling(m.progress.modeName()))
	}
	return m, nil
}

// closeKey closes the preview or a run's result, else clears the filter.
func (m Model) closeKey() (tea.Model, tea.Cmd) {
	switch {
	case m.progress.Active():
	case m.progress.visible():
		m.progress = m.progress.cleared()
		m.setFocus(focusTree)
	case m.tree.clearFilter():
		m.showSelected()
	}
	return m, nil
}

func (m Model) filterKey() (tea.Model, tea.Cmd) {
	m.setFocus(focusTree)
	m.tree.startFilter()
	m.showSelected()
	return m, nil
}

// treeKey hands a key to the tree (and its filter prompt); the holders
// pane follows the selection.
func (m Model) treeKey(km tea.KeyMsg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	m.tree, cmd = m.tree.Update(km)
	m.showSelected()
	return m, cmd
}

// paneKey hands a key to the focused pane.
func (m Model) paneKey(km tea.KeyMsg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch {
	case m.focus == focusTree:
		return m.treeKey(km)
	case m.progress.visible():
		m.progress, cmd = m.progress.Update(km)
	default:
		m.holders, cmd = m.holders.Update(km)
	}
	return m, cmd
}
