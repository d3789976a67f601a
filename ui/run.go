package ui

import (
	"context"
	"errors"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/internal/present"
	"mounttop/unmount"
)

// A confirmed action is carried out here; an unmount's events come back
// to the progress pane, which owns the run (its channel and cancel func);
// the root only records what the run's end means for the rest of the
// view (the status bar, expiry marks, a rescan).

// do carries out a confirmed action.
func (m Model) do(a action) (tea.Model, tea.Cmd) {
	switch a.kind {
	case actQuit:
		return m.quit("quitting")
	case actRelease:
		return m.release(a)
	case actRollbackFence:
		m.bar.setStatus(a.what + "…")
		return m, rollbackFenceCmd(m.opts.Leftovers, a.leftover)
	case actReplan:
		m.bar.setStatus(present.Planning(a.plan))
		return m, planCmd(m.opts.Unmounter, a.snap, a.plan, false)
	case actRun:
		m.runs++
		run := m.runs
		ctx, cancel := context.WithCancel(context.Background())
		m.progress.start(run, a.snap, a.plan, cancel, m.now)
		m.setFocus(focusLower)
		m.bar.setStatus(m.progress.runName() + " started")
		return m, startRunCmd(ctx, m.opts.Unmounter, a.plan, run)
	}
	return m, nil
}

// LeftRunning says, after the program ended, whether an unmount was still
// running (quitting gave up waiting for it): empty when nothing was.
func (m Model) LeftRunning() string {
	if !m.progress.Active() {
		return ""
	}
	return present.LeftRunning(m.progress.runName(), m.progress.stage.String())
}

// quitDialog asks before quitting while an unmount runs.
func (m *Model) quitDialog() *confirmDialog {
	p := &m.progress
	title, lines := present.QuitWhileRunning(p.runName(), p.stage.String(), p.revoking)
	return &confirmDialog{styles: m.styles, keys: m.keys, title: title, lines: lines,
		choices: []choice{{label: present.AnswerNo}, m.keys.yesChoice(present.QuitYes, &action{kind: actQuit})}}
}

// quit ends the program, first cancelling a running unmount and waiting
// (up to QuitGrace) for the engine to wind down, so that a fence is
// rolled back rather than abandoned.
func (m Model) quit(why string) (tea.Model, tea.Cmd) {
	if !m.progress.Active() {
		return m, tea.Quit
	}
	m.progress.stop(m.now)
	m.quitting = true
	m.bar.setStatus(present.QuittingWhileRunning(why, m.progress.modeName()))
	return m, m.quitTimeoutCmd()
}

func (m Model) onQuitTimeout() (tea.Model, tea.Cmd) {
	if m.quitting {
		return m, tea.Quit
	}
	return m, nil
}

// onRun hands a run's channel and events to the progress pane, and
// takes what the run's end means for the rest of the view.
func (m Model) onRun(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	m.progress, cmd = m.progress.Update(msg)
	ev, ok := msg.(runEventMsg)
	if !ok || ev.run != m.progress.run {
		return m, cmd
	}
	if ev.closed {
		if m.quitting {
			return m, tea.Quit
		}
		m2, scan := m.startScan() // show the outcome in the tree now
		m2.showSelected()
		return m2, tea.Batch(cmd, scan)
	}
	if ev.ev.Stage == unmount.StageDone {
		m.onRunDone(ev.ev)
	}
	m.showSelected()
	if ev.ev.Stage == unmount.StageExpire && m.snap != nil {
		if r := m.marks(); r != nil {
			cmd = tea.Batch(cmd, marksCmd(r, mountIDs(m.snap)))
		}
	}
	return m, cmd
}

// onRunDone puts a run's result in the status bar (and its error, unless
// it was cancelled), and records a mount an expire run unmounted.
func (m *Model) onRunDone(ev unmount.Event) {
	p := m.progress.plan
	r := ev.Result
	if p.Mode == unmount.ModeExpire && r != nil && r.Gone {
		at := ev.At
		if at.IsZero() {
			at = m.now
		}
		m.expiry.expired[p.Target.ID] = at
	}
	s := m.progress.runName() + ": "
	switch {
	case r != nil && r.Gone:
		s += "gone"
	case r != nil && r.Marked:
		s += "marked for expiry"
	default:
		s += "not unmounted"
	}
	if r != nil && present.ResultSummary(*r) != "" {
		s += " (" + shown(present.ResultSummary(*r)) + ")"
	}
	m.bar.setStatus(s)
	if ev.Err != nil && !errors.Is(ev.Err, unmount.ErrCancelled) {
		m.setError(fmt.Errorf("%s: %w", m.progress.runName(), ev.Err))
	}
}
