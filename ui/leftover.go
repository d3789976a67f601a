package ui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// Leftovers finds the fences that killed runs left up and rolls one back
// (unmount.FindLeftovers, Unmounter.RollbackLeftover); Engine is one.
// Both make system calls, so they are called from a tea.Cmd.
type Leftovers interface {
	Leftovers(ctx context.Context, snap *inspect.Snapshot) []unmount.Leftover
	RollbackLeftover(ctx context.Context, l unmount.Leftover) (string, error)
}

// leftoversMsg is what the leftover search found in the scan of
// generation gen.
type leftoversMsg struct {
	gen  int
	list []unmount.Leftover
}

// leftoverDoneMsg is the outcome of a fence's rollback (K).
type leftoverDoneMsg struct {
	l    unmount.Leftover
	what string
	err  error
}

// leftoversCmd looks for leftover fences in snap (the mount table it
// holds, and the stashes' origin records).
func leftoversCmd(lf Leftovers, snap *inspect.Snapshot, gen int) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return leftoversMsg{gen: gen, list: lf.Leftovers(ctx, snap)}
	}
}

// rollbackFenceCmd rolls back one confirmed leftover fence.
func rollbackFenceCmd(lf Leftovers, l unmount.Leftover) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		what, err := lf.RollbackLeftover(ctx, l)
		return leftoverDoneMsg{l: l, what: what, err: err}
	}
}

// onLeftovers takes what the leftover search found, if it is about the
// newest scan.
func (m Model) onLeftovers(msg leftoversMsg) Model {
	if msg.gen == m.scan.gen {
		m.leftovers = msg.list
	}
	return m
}

// leftoverBanner is the line that says a killed run left a fence up: the
// one K acts on first, and how many more.
func (m Model) leftoverBanner() string {
	l, ok := m.leftoverAt()
	if !ok {
		return ""
	}
	s := "! " + shown(l.Describe(m.keys.RollbackFence.Help().Key))
	if n := len(m.leftovers) - 1; n > 0 {
		s += present.MoreLeftovers(n)
	}
	return s
}

// leftoverAt is the leftover K acts on: the one at the selected mount (the
// fence or the filesystem it hides), else the first.
func (m Model) leftoverAt() (unmount.Leftover, bool) {
	if len(m.leftovers) == 0 {
		return unmount.Leftover{}, false
	}
	for _, l := range m.leftovers {
		if id := m.tree.Selected(); id == l.Fence.FenceID || id == l.Fence.RealID {
			return l, true
		}
	}
	return m.leftovers[0], true
}

// askRollbackFence opens the dialog that guards a leftover's rollback.
func (m Model) askRollbackFence() (tea.Model, tea.Cmd) {
	l, ok := m.leftoverAt()
	switch {
	case !ok:
		m.bar.setStatus(present.NoLeftoverFence)
		return m, nil
	case m.progress.Active():
		m.setError(m.stillRunning())
		return m, nil
	}
	m.openDialog(&confirmDialog{styles: m.styles, keys: m.keys, title: present.RollbackFenceTitle(l.Fence.Target),
		lines: append(append(wrapLines(shown(l.What()), dialogText, 4), ""), wrapLines("Yes: "+shown(l.Plan())+".", dialogText, 5)...),
		choices: []choice{{label: "No"}, m.keys.yesChoice("Yes, roll it back",
			&action{kind: actRollbackFence, leftover: l, what: present.RollbackFenceWhat(l.Fence.Target)})}})
	return m, nil
}

// onLeftoverDone shows a rollback's outcome and rescans.
func (m Model) onLeftoverDone(msg leftoverDoneMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.setError(present.RollbackFailed(msg.l.Fence.Target, msg.err))
		m.bar.setStatus("")
	} else {
		m.bar.setStatus(present.RolledBack(msg.what))
		// The fence goes from the tree: a selection on it moves to the
		// filesystem it hid (which the rescan shows in its place), or,
		// if that is gone too, to the mount beneath, so the rescan does
		// not report the selected mount as vanished.
		if fm, ok := m.snapMount(msg.l.Fence.FenceID); ok && m.tree.Selected() == fm.ID {
			next := msg.l.Fence.RealID
			if msg.l.RealGone {
				next = fm.ParentID
			}
			m.tree.selectID(next)
			m.showSelected()
		}
		// Gone now; the rescan confirms it (and finds any other).
		var left []unmount.Leftover
		for _, l := range m.leftovers {
			if l.Fence.FenceID != msg.l.Fence.FenceID {
				left = append(left, l)
			}
		}
		m.leftovers = left
	}
	return m.startScan()
}

// snapMount is the mount with id in the last snapshot, if any.
func (m Model) snapMount(id inspect.MountID) (*inspect.Mount, bool) {
	if m.snap == nil {
		return nil, false
	}
	return m.snap.Mount(id)
}
