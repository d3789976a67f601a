package unmount

import (
	"mounttop/inspect"
	"mounttop/internal/kindname"
)

// The notes of the plan, of releases and of leftover fences: data that
// internal/present renders (present.NoteText), names raw.

// PlanNote is the plan event's note (PlanEvent): the plan as prepared,
// and what the run found when it started (a journal moved off the mount,
// Later) that is not part of the plan.
type PlanNote struct {
	Plan  Plan
	Later []PlanWarning
}

// ReleaseIntent: a release outside a run (Unmounter.Release) is about to
// be done; the journal's line before the act.
type ReleaseIntent struct{ Release Release }

// ReleaseOutcome: a release outside a run was done (Done) or failed (the
// event's Err says why).
type ReleaseOutcome struct {
	Release Release
	Done    bool
}

// LeftoverIntent: a leftover fence is about to be rolled back
// (RollbackLeftover); the journal's line before the act.
type LeftoverIntent struct{ Leftover Leftover }

// LeftoverRolledBack is the outcome of RollbackLeftover: the fence
// (FenceID at Target) unmounted, the filesystem (RealID) shows there again
// unless it was gone already (RealGone); for a beneath-swap fence put
// back (Moved), the stash gone too. Failed: the rollback failed (the
// error says why); JournalErr: the journal could not record it.
type LeftoverRolledBack struct {
	Target     string
	Stash      string
	FenceID    inspect.MountID
	RealID     inspect.MountID
	RealGone   bool
	Moved      bool
	Failed     bool
	JournalErr string
}

func (PlanNote) note()           {}
func (ReleaseIntent) note()      {}
func (ReleaseOutcome) note()     {}
func (LeftoverIntent) note()     {}
func (LeftoverRolledBack) note() {}

// WarningKind is what a plan warning is about.
type WarningKind int

const (
	// WarnAutomount: the mount is an automount or its trigger; Detail is
	// scantext.AutomountWarning's sentence, names raw.
	WarnAutomount WarningKind = iota + 1
	// WarnForceIgnored: MNT_FORCE does nothing for FSType.
	WarnForceIgnored
	// WarnAllowedSystem: --allow-system-mount let through what Detail
	// says (a reason without names).
	WarnAllowedSystem
	// WarnSelfUnknown: mounttop's own executable, cwd and /proc could not
	// be checked; Message is the error.
	WarnSelfUnknown
	// WarnStacked: Mounts use the target as a layer; --recursive
	// unmounts them first.
	WarnStacked
	// WarnBusy: something that is not a process of ours keeps the mount
	// busy: Reason; Busy says whether a run releases it.
	WarnBusy
	// WarnAliveElsewhere: the filesystem is mounted in mount namespace
	// Namespace (PIDs live there) at Mountpoint, where umount2 does not
	// propagate: it stays alive there.
	WarnAliveElsewhere
	// WarnAlsoMounted: the filesystem is also mounted at Mountpoint here.
	WarnAlsoMounted
	// WarnPartialScan: the scan had Count warnings, the first Detail (raw).
	WarnPartialScan
	// WarnJournal: where the journal and the expiry state go, found when
	// the run started (State).
	WarnJournal
)

// BusyRelease says whether a run can release a busy reason (WarnBusy).
type BusyRelease int

const (
	BusyNever       BusyRelease = iota // no revoke can release it
	BusyReleased                       // released during the run (Release, staged)
	BusyWithRelease                    // a staged run with --release does
)

// PlanWarning is one warning of a plan, as data.
type PlanWarning struct {
	Kind       WarningKind
	Mountpoint string
	FSType     string
	Mounts     []inspect.Mount
	Namespace  uint64
	PIDs       []int
	Count      int
	Busy       BusyRelease
	Reason     BusyReason // WarnBusy
	State      StateMove  // WarnJournal
	// Detail is a sentence or reason from elsewhere with its names raw
	// (escaped by present as it renders it).
	Detail string
	// Message is a text whose names were escaped when it was built (an
	// error's message): present escapes only a control
	// left raw in it (termsafe.Message).
	Message string
}

// busyReleaseNames are the BusyRelease values' names, for logs and tests (String).
var busyReleaseNames = [...]string{BusyNever: "never", BusyReleased: "released", BusyWithRelease: "with-release"}

// String names the BusyRelease (kindname.Of).
func (b BusyRelease) String() string {
	return kindname.Of("BusyRelease", busyReleaseNames[:], int(b), 0)
}
