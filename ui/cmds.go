package ui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
	"mounttop/unmount"
)

// Commands copy what they need into locals before returning the closure:
// the closure runs on another goroutine and must never read the model.

// marksCmd re-reads the expiry marks after an expire attempt.
func marksCmd(marks ExpiryReader, ids []inspect.MountID) tea.Cmd {
	return func() tea.Msg { return marksMsg{marks: marks.ExpiryMarks(ids)} }
}

// timerFunc is tea.Tick; model tests replace it to fire timers by hand.
type timerFunc func(time.Duration, func(time.Time) tea.Msg) tea.Cmd

// tickCmd arms the next background scan of the current generation, after
// the interval the last scan's cost set.
func (m Model) tickCmd() tea.Cmd {
	gen := m.scan.gen
	return m.after(m.scan.interval, func(time.Time) tea.Msg { return tickMsg{gen: gen} })
}

// clockCmd moves the model's clock once a second.
func (m Model) clockCmd() tea.Cmd {
	return m.after(time.Second, func(t time.Time) tea.Msg { return clockMsg(t) })
}

// planCmd asks the engine what an unmount would do. When a staged plan
// lists releases, the engine is asked a second time with Release set, so
// that the dialog's "also release" choice carries the plan the engine
// makes for it (it revokes the holders of propagating copies too) and
// says exactly what that choice does.
func planCmd(u Unmounter, snap *inspect.Snapshot, asked unmount.Plan, preview bool) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		plan, err := u.Prepare(ctx, asked)
		msg := planMsg{asked: asked, snap: snap, plan: plan, err: err, preview: preview}
		if err == nil && !preview && asked.Mode == unmount.ModeStaged && !asked.Release && len(plan.Releases) > 0 {
			rel := asked
			rel.Release = true
			rp, rerr := u.Prepare(ctx, rel)
			if rerr != nil {
				msg.releaseErr = rerr
			} else {
				msg.releasePlan = &rp
			}
		}
		return msg
	}
}

// waitForEvent waits for the next event of run number run. The progress
// pane re-arms it after each event, so exactly one waiter exists per run.
func waitForEvent(ch <-chan unmount.Event, run int) tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-ch
		return runEventMsg{run: run, ev: ev, closed: !ok}
	}
}

func (m Model) quitTimeoutCmd() tea.Cmd {
	return m.after(m.opts.QuitGrace, func(time.Time) tea.Msg { return quitTimeoutMsg{} })
}

// startRunCmd starts the engine; the run's events follow as runEventMsg.
func startRunCmd(ctx context.Context, u Unmounter, plan unmount.Plan, run int) tea.Cmd {
	return func() tea.Msg {
		return runStartedMsg{run: run, ch: u.Run(ctx, plan)}
	}
}

// releasePlanCmd asks the engine for the plan of a staged unmount of the
// request's mount, changing nothing: its Releases say what R can do to
// row, so the engine alone decides what a release is and when it is
// refused.
func releasePlanCmd(u Unmounter, snap *inspect.Snapshot, asked unmount.Plan, row holderRow) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		plan, err := u.Prepare(ctx, asked)
		return releasePlanMsg{asked: asked, snap: snap, row: row, plan: plan, err: err}
	}
}

// releaseCmd carries out one confirmed release. It is not bounded by a
// timeout: swapoff reads every swapped page back and can take minutes.
func releaseCmd(u Unmounter, r unmount.Release, what string) tea.Cmd {
	return func() tea.Msg {
		return releaseDoneMsg{rel: r, what: what, err: u.Release(context.Background(), r)}
	}
}
