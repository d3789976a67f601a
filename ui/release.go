package ui

import (
	"errors"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// Releasing a kernel holder or a copy (R): the holders pane's row under
// the cursor is looked up in the engine's plan for the mount, so the
// engine alone decides what a release is and when it is refused; a dialog
// guards it, and the outcome shows in the status bar after a rescan.

// askRelease acts on the holders pane's row under the cursor: a loop
// device, a swap file or a copy in another mount namespace is looked up in
// the engine's plan for the mount (in a command), and comes back as a
// dialog or as the engine's reason for refusing it; any other kernel
// holder shows its advice. From the tree, R moves to the first such row.
func (m Model) askRelease() (tea.Model, tea.Cmd) {
	k := m.keys
	mt, ok := m.selectedMount()
	switch {
	case !ok:
		m.setError(errors.New(present.NoMountSelected))
		return m, nil
	case m.progress.Active():
		m.setError(m.stillRunning())
		return m, nil
	case m.releasing != "":
		m.setError(present.StillReleasing(m.releasing))
		return m, nil
	case m.progress.visible():
		m.bar.setStatus(present.ReleaseFromProgress(k.name(k.Release), k.name(k.Close)))
		return m, nil
	}
	if m.focus != focusLower {
		if !m.holders.toReleasable() {
			m.bar.setStatus(m.nothingToRelease(mt))
			return m, nil
		}
		m.setFocus(focusLower)
		if row, ok := m.holders.current(); ok && row.releasable() {
			m.bar.setStatus(present.ReleasePick(k.name(k.Release)))
			return m, nil
		}
		// Only kernel holders mounttop has no action for: say what would
		// release the first.
	}
	return m.releaseRow(mt)
}

// nothingToRelease says that no row of the holders pane is one R acts on.
func (m Model) nothingToRelease(mt *inspect.Mount) string {
	k := m.keys
	return present.NothingToRelease(*mt, len(m.snap.Descendants(mt.ID)),
		k.name(k.Staged)+", "+k.name(k.Lazy)+" or "+k.name(k.Force))
}

// releaseRow asks the engine how to release the row under the holders
// pane's cursor, or says why it is not one R acts on.
func (m Model) releaseRow(mt *inspect.Mount) (tea.Model, tea.Cmd) {
	k := m.keys
	row, ok := m.holders.current()
	switch {
	case !ok:
		return m, nil
	case row.releasable():
		asked := unmount.Plan{Target: *mt, Mode: unmount.ModeStaged, Policy: unmount.PolicyClose, Recursive: true}
		m.bar.setStatus(present.ReleaseAsking)
		return m, releasePlanCmd(m.opts.Unmounter, m.snap, asked, row)
	case row.kernel != nil && present.KernelHolderAction(*row.kernel) != "":
		m.bar.setStatus("mounttop cannot release " + safe(row.kernel.Kind.String()) + " " + safe(row.kernel.Name) + " itself; to do it: " + present.KernelHolderAction(*row.kernel))
	case row.kernel != nil:
		m.bar.setStatus("mounttop cannot release " + safe(row.kernel.Kind.String()) + " " + safe(row.kernel.Name))
	case row.kind == rowHolder || row.kind == rowUse:
		m.bar.setStatus(present.ReleaseNotAProcess(k.name(k.Release), k.name(k.Staged)))
	default:
		m.bar.setStatus(present.ReleaseNotThisLine(k.name(k.Release)))
	}
	return m, nil
}

// onReleasePlan opens the release dialog for the row, or says why not.
func (m Model) onReleasePlan(msg releasePlanMsg) (tea.Model, tea.Cmd) {
	if m.dialog != nil {
		return m, nil // another question came first; R again asks anew
	}
	if msg.err != nil {
		m.setError(present.ReleaseAskFailed(msg.asked.Target, msg.err))
		if errors.Is(msg.err, unmount.ErrRefused) {
			// The engine lists releases in the plan of a staged unmount
			// of the mount, and it will not plan that one (the root, say).
			hint := present.ReleaseRefusedHere(msg.asked.Target)
			if k := msg.row.kernel; k != nil && present.KernelHolderAction(*k) != "" {
				hint += "; by hand: " + present.KernelHolderAction(*k)
			}
			m.bar.setError(m.bar.err, hint)
		}
		return m, nil
	}
	r, ok := matchRelease(msg.plan.Releases, msg.row)
	if !ok {
		m.bar.setStatus(present.ReleaseGone(m.keys.name(m.keys.Refresh)))
		return m, nil
	}
	what := present.ReleaseWhat(r, msg.snap)
	if r.HostRefused() {
		// The host's mount namespace: a question of its own, whose yes
		// is not the usual y, so a reflex does not change what the whole
		// machine sees.
		r = r.ConfirmHost()
		m.bar.setStatus("")
		m.openDialog(&confirmDialog{styles: m.styles, keys: m.keys,
			title: present.HostReleaseTitle, explicit: true,
			lines: append(present.ReleaseLines(r, msg.snap, func(s string) []string { return wrapLines(s, dialogText, 3) }),
				present.HostNamespaceNote(r.Namespace)),
			choices: []choice{{label: "No"}, {label: present.HostReleaseYes, key: &m.keys.HostYes,
				act: &action{kind: actRelease, snap: msg.snap, release: r, what: what}}}})
		return m, nil
	}
	if r.Refused != "" {
		m.bar.setStatus("cannot " + what + ": " + shown(r.Refused))
		return m, nil
	}
	m.bar.setStatus("")
	m.openDialog(&confirmDialog{styles: m.styles, keys: m.keys,
		title: present.ReleaseTitle(r, msg.snap), lines: present.ReleaseLines(r, msg.snap, func(s string) []string { return wrapLines(s, dialogText, 3) }),
		choices: []choice{{label: "No"}, m.keys.yesChoice("Yes, release",
			&action{kind: actRelease, snap: msg.snap, release: r, what: what})}})
	return m, nil
}

// onReleaseDone shows a release's outcome and rescans to show its effect.
func (m Model) onReleaseDone(msg releaseDoneMsg) (tea.Model, tea.Cmd) {
	m.releasing = ""
	if msg.err != nil {
		m.bar.setError(fmt.Errorf("%s: %w", msg.what, msg.err), present.ReleaseHint(msg.err, msg.rel, m.snap, m.keys.texts()))
		m.bar.setStatus("")
	} else {
		m.bar.setStatus("released: " + msg.what)
	}
	return m.startScan()
}

// release carries out a confirmed release (in a command), one at a time.
func (m Model) release(a action) (tea.Model, tea.Cmd) {
	if m.progress.Active() {
		m.setError(m.stillRunning())
		return m, nil
	}
	m.releasing = a.what
	m.bar.setStatus("releasing: " + a.what + "…")
	return m, releaseCmd(m.opts.Unmounter, a.release, a.what)
}
