package ui

import (
	"errors"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// An unmount is asked for in three steps: a key (l, e, f, F, d) asks the
// engine for a plan in a command; the plan comes back as a dialog that
// says what will happen (or as a dry-run preview); the dialog's choice
// runs exactly that plan. A choice that changes the plan (signal instead)
// asks the engine again, so what the dialog shows is what will run.

// ask starts an action on the selected mount: asked says how (mode,
// policy); the engine prepares the plan (in a command), and the plan comes
// back as a dialog or a preview.
func (m Model) ask(asked unmount.Plan, preview bool) (tea.Model, tea.Cmd) {
	mt, ok := m.selectedMount()
	if !ok {
		m.setError(errors.New(present.NoMountSelected))
		return m, nil
	}
	if m.progress.Active() && !preview {
		m.setError(m.stillRunning())
		return m, nil
	}
	if why := m.notOffered(asked); why != "" {
		m.bar.setStatus(why)
		return m, nil
	}
	asked.Target = *mt
	// Submounts go with the target for every mode but expire, which the
	// engine refuses for a mount with submounts; the dialog names them
	// before anything happens.
	asked.Recursive = asked.Mode != unmount.ModeExpire
	if asked.Mode == unmount.ModeExpire {
		asked.Interval = m.opts.Interval // when idle: the retry interval
	}
	m.bar.setStatus(present.Planning(asked))
	return m, planCmd(m.opts.Unmounter, m.snap, asked, preview)
}

// notOffered says why the view does not even ask the engine for req on
// the selected mount: a detached mount has no path for umount2, and a
// mount the system runs on is refused (the engine refuses it too).
func (m Model) notOffered(asked unmount.Plan) string {
	mt, _ := m.selectedMount()
	k := m.keys
	if mt.Detached && asked.Mode != unmount.ModeStaged {
		// A detached mount is already out of every mount table: umount2
		// has no path to act on, and what keeps it alive is its holders.
		return present.NotOnDetached(asked, *mt, k.name(k.Staged), k.name(k.DryRun))
	}
	if k := unmount.SystemMount(mt); k != unmount.SystemNone {
		return present.NotOnSystemMount(asked, k, *mt)
	}
	return ""
}

func (m Model) onPlan(msg planMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.setError(present.PlanningFailed(msg.asked, msg.err))
		return m, nil
	}
	if msg.preview {
		m.bar.setStatus(present.DryRunDone)
		m.progress.showPlan(msg.snap, msg.plan, m.now)
		m.setFocus(m.focus)
		return m, nil
	}
	d := m.unmountDialog(msg.snap, msg.asked, msg.plan)
	if msg.releasePlan != nil {
		d.offerRelease(msg.snap, *msg.releasePlan)
	} else if msg.releaseErr != nil {
		d.lines = append(d.lines, present.ReleaseNotPlanned(msg.releaseErr))
	}
	m.bar.setStatus("")
	m.openDialog(d)
	return m, nil
}

// offerRelease adds the staged dialog's "also release" choice: the same
// run with the engine's plan for Release (as "when idle" is to expire),
// and the processes in other namespaces that only that choice touches.
func (d *confirmDialog) offerRelease(snap *inspect.Snapshot, plan unmount.Plan) {
	n := present.Releasable(plan.Releases)
	if n == 0 {
		return
	}
	var extra []string
	for _, a := range plan.Holders {
		if a.Namespace == 0 {
			continue
		}
		what := present.HolderPlanBrief(a, "REFUSED, ")
		extra = append(extra, fmt.Sprintf("   pid %d %s in %s: %s", a.Holder.PID, safe(a.Holder.Comm), present.NamespaceID(a.Namespace), shown(what)))
	}
	if len(extra) > 0 {
		d.lines = append(d.lines, present.AlsoRevokesElsewhere(d.keys.name(d.keys.AlsoRelease)))
		d.lines = append(d.lines, extra...)
	}
	d.choices = append(d.choices, choice{label: present.AnswerAlsoRelease(n), key: &d.keys.AlsoRelease,
		act: &action{kind: actRun, plan: plan, snap: snap}})
}

// unmountDialog asks before an unmount, saying what plan (asked, as the
// engine prepared it) will do; each choice runs a plan the dialog showed,
// or has the engine prepare the one it names.
func (m *Model) unmountDialog(snap *inspect.Snapshot, asked, plan unmount.Plan) *confirmDialog {
	k := m.keys
	mp := present.MountName(plan.Target)
	d := &confirmDialog{styles: m.styles, keys: k,
		title: strings.ToUpper(present.ModeName(plan)[:1]) + present.ModeName(plan)[1:] + " of " + mp + "?",
		lines: present.PlanLines(snap, plan, 6, k.name(k.Cancel))}
	d.choices = []choice{{label: present.AnswerNo}}
	run := &action{kind: actRun, plan: plan, snap: snap}
	switch plan.Mode {
	case unmount.ModeExpire:
		// The dialog says what both do (planLines); the engine re-arms
		// the mark every Interval when idle is chosen.
		idle := plan
		idle.ExpireWhenIdle = true
		d.title = "Expire " + mp + "?"
		d.choices = append(d.choices, k.yesChoice(present.AnswerExpireNow, run),
			choice{label: present.AnswerWhenIdle, key: &k.WhenIdle, act: &action{kind: actRun, plan: idle, snap: snap}})
	case unmount.ModeStaged:
		if plan.Policy == unmount.PolicySignal {
			d.choices = append(d.choices, k.yesChoice(present.AnswerSignal, run))
			break
		}
		sig := asked
		sig.Policy = unmount.PolicySignal
		d.choices = append(d.choices, k.yesChoice(present.AnswerRevoke, run),
			// The engine prepares the signal policy anew: its holder
			// actions and refusals differ from closing's.
			choice{label: present.AnswerSignalToo, key: &k.SignalInstead, act: &action{kind: actReplan, plan: sig}})
	default:
		d.choices = append(d.choices, k.yesChoice(present.AnswerYes, run))
	}
	return d
}
