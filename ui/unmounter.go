package ui

import (
	"context"
	"time"

	"mounttop/inspect"
	"mounttop/unmount"
)

// Scanner takes one look at the system; *inspect.Inspector is one. Scan runs
// inside a tea.Cmd, never in Update, and must honour ctx so that a refresh
// can abandon a scan stuck on a hung filesystem.
type Scanner interface {
	Scan(ctx context.Context) (*inspect.Snapshot, error)
}

// Request is one unmount the operator asked for, as the interface hands it
// to the Unmounter: the mount as it was inspected (so the engine can check
// its unique ID before acting) and how.
type Request struct {
	Snapshot *inspect.Snapshot
	Target   inspect.Mount
	Mode     unmount.Mode
	Policy   unmount.Policy // staged only
	// WhenIdle is the expire variant that keeps trying every Interval until
	// the mount has been idle for a whole interval (umount2(2) MNT_EXPIRE:
	// the first call marks, the next unmounts if nothing touched it).
	WhenIdle bool
	Interval time.Duration
	// Release (staged only) also frees the mount of its kernel holders
	// and of its copies in other mount namespaces during the run, as the
	// plan's Releases list them (unmount.Plan.Release).
	Release bool
}

// Unmounter is everything the interface needs from unmount/. Model tests
// use a fake that plays scripted Events; the program uses the real engine.
type Unmounter interface {
	// Plan says what Run would do, changing nothing: the dry run and the
	// text of the confirm dialog. It may read /proc, so it is called from
	// a tea.Cmd.
	Plan(ctx context.Context, req Request) (unmount.Plan, error)
	// Run carries the plan out and reports every step. The channel is
	// closed after the StageDone event; cancelling ctx stops the run (the
	// engine rolls the fence back if it has not revoked anything yet).
	Run(ctx context.Context, req Request, plan unmount.Plan) <-chan unmount.Event
	// Release carries out one release of a plan's Releases now: detach a
	// loop device, swap a swap file off, or unmount a copy inside another
	// mount namespace. The engine re-checks it and journals it. It makes
	// syscalls, so it is called from a tea.Cmd.
	Release(ctx context.Context, r unmount.Release) error
}
