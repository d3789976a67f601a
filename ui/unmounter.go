package ui

import (
	"context"

	"mounttop/inspect"
	"mounttop/unmount"
)

// Scanner takes one look at the system; *inspect.Inspector is one. Scan runs
// inside a tea.Cmd, never in Update, and must honour ctx so that a refresh
// can abandon a scan stuck on a hung filesystem.
type Scanner interface {
	Scan(ctx context.Context) (*inspect.Snapshot, error)
}

// FocusScanner is a Scanner that can read some mounts in full detail and
// only count the holders of the rest (inspect.Inspector.ScanFocus): the
// view shows one mount's holders and every mount's count, so it asks for
// detail of the selected mount (and of a run's target) only, at a
// fraction of a full scan's memory. A Scanner that is not one is asked
// for everything in full detail.
type FocusScanner interface {
	Scanner
	ScanFocus(ctx context.Context, ids ...inspect.MountID) (*inspect.Snapshot, error)
}

// Unmounter is everything the interface needs from unmount/. The view's
// choices are an unmount.Plan (what to unmount, how), prepared by the
// engine and run as prepared. Model tests use a fake that plays scripted
// Events; the program uses the real engine.
type Unmounter interface {
	// Prepare fills in what Run would do, changing nothing: the dry run
	// and the text of the confirm dialog. A choice that changes the plan
	// (signal instead, also release) is prepared again. It may read
	// /proc, so it is called from a tea.Cmd.
	Prepare(ctx context.Context, p unmount.Plan) (unmount.Plan, error)
	// Run carries the prepared plan out and reports every step, starting
	// with the plan event (unmount.PlanEvent). The channel is closed after
	// the StageDone event; cancelling ctx stops the run (the engine rolls
	// the fence back if it has not revoked anything yet).
	Run(ctx context.Context, p unmount.Plan) <-chan unmount.Event
	// Release carries out one release of a plan's Releases now: detach a
	// loop device, swap a swap file off, or unmount a copy inside another
	// mount namespace. The engine re-checks it and journals it. It makes
	// syscalls, so it is called from a tea.Cmd.
	Release(ctx context.Context, r unmount.Release) error
}
