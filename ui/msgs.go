package ui

import (
	"os"
	"time"

	"mounttop/inspect"
	"mounttop/unmount"
)

// scanDoneMsg is the result of the scan of generation gen. A result whose
// gen is not the model's current one is stale (a refresh replaced it) and
// is dropped.
type scanDoneMsg struct {
	gen   int
	snap  *inspect.Snapshot
	err   error
	took  time.Duration // wall time
	cpu   time.Duration // CPU time the process used meanwhile (0: unknown)
	marks map[inspect.MountID]unmount.ExpiryMark
	// focus are the mounts snap has in full detail; nil: all of them.
	focus map[inspect.MountID]bool
}

// focusDueMsg ends the pause after the selection moved to mount id, whose
// holders the snapshot has as counts only: if the selection is still
// there (gen is the model's focusGen), a scan reads it in full detail.
type focusDueMsg struct {
	gen int
	id  inspect.MountID
}

// marksMsg is a fresh read of the engine's expiry marks.
type marksMsg struct {
	marks map[inspect.MountID]unmount.ExpiryMark
}

// tickMsg asks for the next background scan. It carries the generation it
// was armed for, so a tick armed before a manual refresh does nothing.
type tickMsg struct{ gen int }

// clockMsg moves the clock that ages the data and times a run (once a
// second); View reads time only from the model, never from the system.
type clockMsg time.Time

// planMsg is the engine's plan for what was asked (asked, of the mount
// as snap showed it), built for the dialog (confirm) or a dry run
// (preview). releasePlan is the staged plan with Release set, when plan
// lists releases (releaseErr if the engine would not make it).
type planMsg struct {
	asked       unmount.Plan
	snap        *inspect.Snapshot
	plan        unmount.Plan
	err         error
	preview     bool
	releasePlan *unmount.Plan
	releaseErr  error
}

// runEventMsg is one event of run number run; closed reports that the
// engine closed the channel.
type runEventMsg struct {
	run    int
	ev     unmount.Event
	closed bool
}

// signalMsg is SIGTERM, SIGHUP or SIGINT delivered to the program: quit
// cleanly, cancelling (and waiting for) a running unmount first.
type signalMsg struct{ sig os.Signal }

// quitTimeoutMsg ends a quit that waits for a cancelled run after the grace
// period, so a run that never ends cannot keep the terminal hostage.
type quitTimeoutMsg struct{}

// runStartedMsg carries the channel of run number run.
type runStartedMsg struct {
	run int
	ch  <-chan unmount.Event
}

// releasePlanMsg is the engine's plan for the mount whose holders pane row
// the operator asked to release (R): its Releases say what can be done to
// that row's kernel holder or copy.
type releasePlanMsg struct {
	asked unmount.Plan
	snap  *inspect.Snapshot
	row   holderRow
	plan  unmount.Plan
	err   error
}

// releaseDoneMsg is the outcome of one release; what says what was done.
type releaseDoneMsg struct {
	rel  unmount.Release
	what string
	err  error
}
