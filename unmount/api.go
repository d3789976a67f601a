// Package unmount gets a mount off the system: the plain umount2(2) modes
// (lazy, expire, force) and the staged forced unmount (fence -> revoke ->
// drain) modelled on the fumount patch. It never imports UI code; progress
// is reported as Events on a channel.
package unmount

import (
	"time"

	"mounttop/inspect"
)

// Mode is how the operator wants the mount gone.
type Mode int

const (
	ModeLazy   Mode = iota + 1 // umount2(MNT_DETACH)
	ModeExpire                 // umount2(MNT_EXPIRE), the two-step
	ModeForce                  // umount2(MNT_FORCE)
	ModeStaged                 // fence -> revoke -> drain -> unmount
)

func (m Mode) String() string {
	switch m {
	case ModeLazy:
		return "lazy"
	case ModeExpire:
		return "expire"
	case ModeForce:
		return "force"
	case ModeStaged:
		return "staged"
	}
	return "unknown"
}

// Policy is how the staged engine revokes holders.
type Policy int

const (
	PolicyClose  Policy = iota + 1 // ptrace injection: close fds, PROT_NONE mappings, chdir("/")
	PolicySignal                   // SIGTERM, then SIGKILL after Grace
)

func (p Policy) String() string {
	if p == PolicySignal {
		return "signal"
	}
	return "close"
}

// Stage names a step of an unmount run; Event.Stage.String() is the "stage"
// field of `mounttop umount --json`.
type Stage int

const (
	StagePlan     Stage = iota + 1 // what will happen to whom
	StageFence                     // stop new opens by path; syncfs
	StageRevoke                    // per holder: close/mmap/chdir by ptrace, or signal
	StageDrain                     // rescan every Interval, revoke stragglers
	StageUnmount                   // the real umount2, and verifying it is gone
	StageRollback                  // cancelled before revoke: fence removed
	StageExpire                    // MNT_EXPIRE attempts
	StageDone                      // the last event: Result set
)

func (s Stage) String() string {
	switch s {
	case StagePlan:
		return "plan"
	case StageFence:
		return "fence"
	case StageRevoke:
		return "revoke"
	case StageDrain:
		return "drain"
	case StageUnmount:
		return "unmount"
	case StageRollback:
		return "rollback"
	case StageExpire:
		return "expire"
	case StageDone:
		return "done"
	}
	return "unknown"
}

// HolderAction is what the plan will do to one holder process.
type HolderAction struct {
	Holder  inspect.Holder
	Action  string // e.g. "close 3 fds, unmap 1 mapping, chdir /"; "SIGTERM, SIGKILL after 5s"
	Refused string // non-empty: cannot be revoked, and why (exe on the mount, D state, traced, ...)
}

// Plan is the staged unmount's plan: the target as inspected and what will
// happen to each holder. It is shown (dry run) before anything changes.
type Plan struct {
	Target    inspect.Mount
	Mode      Mode
	Policy    Policy
	Grace     time.Duration // signal policy: SIGTERM -> SIGKILL
	Interval  time.Duration // drain rescan interval (1s default)
	Timeout   time.Duration // give up draining after this
	Recursive bool          // unmount submounts too, deepest first
	Submounts []inspect.Mount
	Holders   []HolderAction
	Warnings  []string

	// ExpireWhenIdle (ModeExpire): re-arm MNT_EXPIRE every Interval until
	// the mount goes (or Timeout, if set), reporting each attempt.
	ExpireWhenIdle bool
}

// HolderState is one holder's state during a run, for the progress pane.
type HolderState struct {
	PID    int
	Comm   string
	State  string // "pending", "revoked", "refused", "signalled", "gone"
	Reason string
}

// Result is the outcome of a run, carried by the final StageDone event.
type Result struct {
	Gone      bool   // verified: the target is no longer in the mount table
	Marked    bool   // expire: the mount is marked, call again to unmount
	Summary   string // one line for the operator
	Remaining []inspect.Holder
}

// Event is one step of a run. Err is set when that step failed.
type Event struct {
	Stage     Stage
	Mount     inspect.MountID
	PID       int    // the holder concerned, 0 for mount-level events
	What      string // operator-readable description
	Err       error
	At        time.Time
	Holders   []HolderState // set when the per-holder picture changed
	Remaining int           // drain: holder processes left
	Result    *Result       // StageDone only
}
