package unmount

import (
	"mounttop/internal/kindname"
	"time"

	"mounttop/inspect"
)

// The notes of a run's steps (Event.Note, Result.Outcome, HolderState.Why):
// each says what happened, with raw names and the figures;
// internal/present (runNoteText) words them and escapes each name once.
// Fields that end in Text carry words another part of the engine or the
// revoker already wrote (an error's text, a per-item failure of a revoke,
// the call a holder is stuck in): they are passed on as they are, like an
// error.

// Who names a holder process: its pid, its command and, for a holder of a
// copy in another mount namespace, that namespace's inode (mnt:[N]; 0:
// ours).
type Who struct {
	PID       int
	Comm      string
	Namespace uint64
}

// --- what happened to one holder (HolderState.Why and its events) ---

// HolderRevoked: the revoke took away the holder's uses (Did: what it did;
// a pointer, so that the note stays comparable, see HolderState.Why).
type HolderRevoked struct {
	Who Who
	Did *Revoked
}

// Revoked is what a revoke did to one process: revoke.Report's figures.
// It is not changed once made.
type Revoked struct {
	Closed      []int // fds taken away (closed, or covered by a placeholder)
	Placeholder bool  // the fds in Closed got a placeholder, not a plain close
	Unmapped    int   // mappings now PROT_NONE anonymous memory
	Chdir       int   // threads whose cwd moved into the empty read-only directory
	// FailedText and NotesText are the revoker's words, per item ("close
	// fd 7: EBADF"), passed on as they are.
	FailedText []string
	NotesText  []string
	Threads    int           // threads stopped for the revoke
	Stopped    time.Duration // for how long
}

// HolderRestored: a holder left inside an injected syscall came out of
// it; the tracer process restored and released it.
type HolderRestored struct {
	Who     Who
	Restore Restore
}

// Restore is the late end of a revoke whose injected Syscall(Arg) did not
// return in time (revoke.Restore): Did is everything done to the process,
// the stuck call included; ErrText the revoke's error once the call
// returned ("": it completed).
type Restore struct {
	PID     int
	Syscall string // "close"
	Arg     string // "fd 7"
	ErrText string
	Did     *Revoked
}

// PendingKind says what a Pending is.
type PendingKind int

const (
	PendingCall   PendingKind = iota // an abandoned call still blocked in the kernel (CallText)
	PendingRevoke                    // a revoke of Who in progress in this process
	PendingHeld                      // the tracer process (Tracer) holds Who
)

// Pending is what mounttop has not finished (Unmounter.Pending), For so
// long: an abandoned call, a revoke in progress, or a holder the tracer
// process still holds, a revoke under way or, InsideText set, left inside
// an injected syscall (in the revoker's words, terminal-safe); the tracer
// process finishes that revoke or restores the process and releases it on
// its own, also after mounttop exits.
type Pending struct {
	Kind       PendingKind
	CallText   string // PendingCall: the call as bounded names it
	Who        Who    // PendingRevoke, PendingHeld
	Tracer     int    // PendingHeld: the tracer process's pid
	InsideText string // PendingHeld
	For        time.Duration
}

// HolderExited: the holder exited before or while it was acted on.
type HolderExited struct{ Who Who }

// HolderLetGo: a later scan no longer finds the holder holding the mount.
type HolderLetGo struct{ Who Who }

// HolderNotRevoked: the holder cannot be revoked (a Refusal) or its revoke
// failed (ErrText, one line).
type HolderNotRevoked struct {
	Who     Who
	Refusal Refusal
	ErrText string
}

// HolderSignalled: PolicySignal sent Signal ("SIGTERM"); Refusal is why it
// could not be revoked instead, when it could not.
type HolderSignalled struct {
	Who     Who
	Signal  string
	Refusal Refusal
}

// HolderNotSignalled: the holder's pidfd could not be had (ErrText).
type HolderNotSignalled struct {
	Who     Who
	ErrText string
	Gone    bool // the process is gone (ErrHolderGone)
}

// SignalFailed: sending Signal to the holder failed (Event.Err says how).
type SignalFailed struct {
	Who    Who
	Signal string
}

// SignalledExited: the signalled holder is gone (ESRCH).
type SignalledExited struct{ PID int }

// --- revoke and drain ---

// RevokeScanFailed: the scan after the fence failed; the drain retries.
type RevokeScanFailed struct{}

// NoHolder: the scan after the fence found no process holding the mount.
type NoHolder struct{}

// DrainRescanFailed: a drain pass's scan failed (Event.Err).
type DrainRescanFailed struct{}

// LeftHolder is one holder still holding the mount after a drain pass.
type LeftHolder struct {
	Who    Who
	Kinds  []string    // the kinds of its uses, in order met ("fd", "cwd")
	DState bool        // in uninterruptible sleep (its I/O has not completed)
	State  HolderState // its state and why (HolderState.Why, or its planned refusal)
}

// ReleaseLeft is a release that failed, named while the run goes on.
type ReleaseLeft struct {
	Release Release
	ErrText string
}

// DrainLeft: a drain pass found holders left (Left: all of them; the
// words name five) and the releases still failing.
type DrainLeft struct {
	Left        []LeftHolder
	NotReleased []ReleaseLeft
}

// NothingHolds: the drain found no holder: the real unmount follows.
type NothingHolds struct{}

// Stuck is a holder left inside an injected syscall (InsideText: which,
// in the revoker's words).
type Stuck struct {
	Who        Who
	InsideText string
}

// BusyWhy says why a mount no process holds is busy: holders left inside
// an injected call (Stuck), else a server that does not answer (Dead),
// else what else holds it (Others: kernel holders, held copies; none
// seen: something no scan shows, such as an fd in flight).
type BusyWhy struct {
	Stuck  []Stuck
	Dead   *DeadServer
	Others []BusyReason
}

// DeadServer: the filesystem's server does not answer (Server.Probe: the
// probe's finding) or its connection is aborted (Server.Aborted);
// OwnCalls are mounttop's own calls still blocked on it (bounded's words).
type DeadServer struct {
	Server   Server
	OwnCalls []string
}

// BusyNoHolder: the unmount said EBUSY though no process holds the mount.
type BusyNoHolder struct {
	Why         BusyWhy
	NotReleased []ReleaseLeft
}

// --- the server (abort.go) ---

// Consequence is what an abandoned call leaves behind.
type Consequence int

const (
	ConsequenceNone       Consequence = iota
	ConsequenceFenceLater             // a fence that completes after all is rolled back at once
	ConsequenceNoSyncfs               // no syncfs; written data may not be on disk
	ConsequenceUnsynced               // written data may not be on disk
	ConsequenceRelease                // a release goes on in the kernel; not tried again
)

// CallAbandoned: a call that can wait on the server did not return in
// time (or was cancelled after After) and was abandoned. CallText is the
// call as bounded names it (its names escaped already, as in its error).
type CallAbandoned struct {
	CallText    string
	Limit       time.Duration
	Cancelled   bool
	After       time.Duration
	Consequence Consequence
}

// UmountAbandonedGone: the final umount2 of Mountpoint did not return
// within Limit, but the mount is gone from the namespace (statmount); the
// filesystem's shutdown still waits on the server.
type UmountAbandonedGone struct {
	Mountpoint string
	Limit      time.Duration
}

// ProbeFinding: the probe of the server (Server.Probe) found it not
// answering, or could not tell.
type ProbeFinding struct {
	Server       Server
	NotAnswering bool
}

// CutCauseKind is why the run cuts the filesystem off its server.
type CutCauseKind int

const (
	CauseNotAnswering CutCauseKind = iota // the probe before the run found it dead
	CauseStopped                          // a call to it was abandoned during the run
	CauseDState                           // Count holders in D state
	CauseRevokeHung                       // Who's revoke did not finish in time
)

// CutCause is why the run cuts the filesystem off its server.
type CutCause struct {
	Kind  CutCauseKind
	Count int
	Who   Who
}

// CannotCutOff: nothing cuts this filesystem off its server (Abort says
// why); holders blocked on it stay so.
type CannotCutOff struct {
	Cause CutCause
	Abort Abort
}

// FuseConnAborted: the run aborted FUSE connection Conn (Dir/Conn/abort).
type FuseConnAborted struct {
	Cause CutCause
	Conn  uint64
	Dir   string
}

// FuseAbortFailed: aborting FUSE connection Conn failed (Event.Err).
type FuseAbortFailed struct {
	Cause CutCause
	Conn  uint64
}

// ForceUnreachable: umount2(MNT_FORCE) cannot reach the mount under the
// over-mount fence.
type ForceUnreachable struct{ Cause CutCause }

// ForceAborted: umount2(MNT_FORCE) of Mountpoint aborted the requests to
// the server; Gone: nothing held the mount, so it unmounted it (verified);
// else the mount stays while held.
type ForceAborted struct {
	Cause      CutCause
	Mountpoint string
	Gone       bool
}

// ForceFailed: umount2(MNT_FORCE) of Mountpoint failed (Event.Err).
type ForceFailed struct {
	Cause      CutCause
	Mountpoint string
}

// --- fence, syncfs, rollback (run_staged.go) ---

// BeneathRefused: move_mount refused the beneath-swap (EINVAL); the fence
// is an over-mount instead.
type BeneathRefused struct{}

// Fenced: the fence is up: a beneath-swap (Over false: Target shows the
// fence, the mount itself is at RealPath) or an over-mount; File: the
// target is a file, the fence an empty read-only file.
type Fenced struct {
	Over     bool
	File     bool
	Target   string
	RealPath string
}

// SyncfsStep is how the syncfs step went.
type SyncfsStep int

const (
	SyncfsDone          SyncfsStep = iota // data written so far is on disk
	SyncfsFailed                          // syncfs failed (Event.Err)
	SyncfsNoRoot                          // the root could not be opened: no syncfs
	SyncfsOpenFailed                      // opening the root failed (Event.Err)
	SyncfsAbortedAtOpen                   // ENOTCONN from the open of the root
	SyncfsAborted                         // ENOTCONN from syncfs
)

// Synced: the syncfs step (Step says how it went).
type Synced struct{ Step SyncfsStep }

// FenceState says where things are while fenced, for a failure report.
type FenceState struct {
	Over     bool
	Target   string
	RealPath string
	FenceID  inspect.MountID
	MountID  inspect.MountID
}

// RollbackFailed: rolling the fence back failed; Aborted: the connection
// to the server was cut by the run and stays so.
type RollbackFailed struct {
	Fence   FenceState
	Aborted bool
}

// FenceRolledBack: the fence is removed and the mount is back at Target;
// what was done before stays so (Revoked, Signalled, Released), else
// AsItWas; Unsettled are holders the tracer process still has.
type FenceRolledBack struct {
	MountID   inspect.MountID
	Target    string
	Revoked   int
	Signalled int
	Released  int
	AsItWas   bool
	Unsettled Unsettled
	Aborted   bool
}

// Unsettled are the holders the tracer process still has, in the run's
// order.
type Unsettled []UnsettledHolder

// UnsettledHolder is a holder the tracer process still has: left inside
// an injected syscall (InsideText), or, UnderWay, whose revoke was under
// way when the run was cancelled.
type UnsettledHolder struct {
	Who        Who
	InsideText string
	UnderWay   bool
}

// DetachedNoFence: a detached mount is fenced by nothing and synced by the
// kernel when it lets go of it.
type DetachedNoFence struct{ MountID inspect.MountID }

// DetachedReleased: no process holds the detached mount any more.
type DetachedReleased struct{ MountID inspect.MountID }

// --- the real unmount (run_finish.go, run_plain.go) ---

// StackedUnmounted: the stacked filesystem (FSType at Mountpoint, with a
// layer on the mount) is unmounted first; Failed: its unmount failed
// (Event.Err).
type StackedUnmounted struct {
	FSType     string
	Mountpoint string
	Failed     bool
}

// OverFenceRemoved: the over-mount fence went first, so that the mount
// beneath can be unmounted.
type OverFenceRemoved struct{}

// SubmountUnmounted: the submount at Mountpoint is unmounted; Failed: its
// unmount failed (Event.Err).
type SubmountUnmounted struct {
	Mountpoint string
	Failed     bool
}

// RealUnmounted: umount2 (not lazy) of the mount at Path, verified.
type RealUnmounted struct{ Path string }

// FenceLeft: the filesystem is unmounted, but removing the fence at
// Target failed.
type FenceLeft struct{ Target string }

// FenceRemoved: the beneath-swap fence is removed; Target is a plain
// directory again (or the file underneath, File).
type FenceRemoved struct {
	Target string
	File   bool
}

// ForceIgnoredFS: FSType ignores MNT_FORCE (ForceIgnored).
type ForceIgnoredFS struct{ FSType string }

// PlainUnmounted: umount2(Flag) of Mountpoint; Failed: it failed
// (Event.Err), else the mount is gone (verified).
type PlainUnmounted struct {
	Flag       string
	Mountpoint string
	Failed     bool
}

// ExpireStep is how one MNT_EXPIRE attempt went.
type ExpireStep int

const (
	ExpireMarked    ExpireStep = iota // idle, now marked (EAGAIN)
	ExpireCleared                     // the earlier mark was cleared by an access; marked again
	ExpireGone                        // untouched and still marked: unmounted
	ExpireElsewhere                   // gone: unmounted by something else
	ExpireBusy                        // busy (ErrText)
	ExpireFailed                      // the attempt failed (Event.Err)
)

// ExpireAttempt: attempt Attempt of umount2(MNT_EXPIRE).
type ExpireAttempt struct {
	Attempt  int
	Step     ExpireStep
	MarkedAt time.Time // ExpireGone, ExpireCleared: when the earlier mark was set (zero: unknown)
	Cleared  int       // ExpireCleared: how often a mark was cleared so far
	ErrText  string    // ExpireBusy
}

// --- releases (run_release.go) ---

// ReleaseNotDone: the release is refused (Release.Refused), or a swap file
// cannot be named under the over-mount fence (SwapCovered).
type ReleaseNotDone struct {
	Release     Release
	SwapCovered bool
}

// CopyGoesAlong: the copy at Mountpoint in mnt:[Namespace] propagates:
// our unmount takes it along, its holders are revoked like ours.
type CopyGoesAlong struct {
	Mountpoint string
	Namespace  uint64
}

// CopyBusyLazy: the copy is busy now; it is unmounted lazily instead.
type CopyBusyLazy struct{}

// Released: the release is done (BeforeFence: a swap file, before an
// over-mount fence covered it).
type Released struct {
	Release     Release
	BeforeFence bool
}

// ReleaseFailed: the release failed (Event.Err).
type ReleaseFailed struct{ Release Release }

// --- the journal ---

// JournalFailed: the journal could not be written; it misses the lines
// from here on.
type JournalFailed struct{ ErrText string }

// --- how a run ends (Result.Outcome, the StageDone event) ---

// NothingChanged: the run stopped before anything changed.
type NothingChanged struct{ Aborted bool }

// NothingDone: the run refused to start (Event.Err says why).
type NothingDone struct{}

// CouldNotFence: the fence could not be put up (Event.Err).
type CouldNotFence struct{ Aborted bool }

// Failed: the step Step (a note) failed with ErrText; the result line.
type Failed struct {
	Step    Note
	ErrText string
}

// CancelledEarly: cancelled before anything changed.
type CancelledEarly struct{}

// PlainGone: Mountpoint is unmounted; Lazy with Holders > 0: detached,
// the filesystem lives on until they let go.
type PlainGone struct {
	Mountpoint string
	Lazy       bool
	Holders    int
}

// ExpireOutcome is how an expire run ended.
type ExpireOutcome int

const (
	ExpiredGone      ExpireOutcome = iota // it expired and is unmounted
	ExpiredElsewhere                      // no longer mounted (unmounted by something else)
	ExpiredMarked                         // marked: the same command again unmounts it
	ExpiredNotIdle                        // it did not become idle within Timeout
	ExpiredCancelled                      // cancelled; the mount is still there
)

// Expired: how an expire run on Mountpoint ended.
type Expired struct {
	Mountpoint string
	How        ExpireOutcome
	Timeout    time.Duration
}

// ForcedGone: MNT_FORCE cut the mount off its dead server and, nothing
// holding it, unmounted it (verified).
type ForcedGone struct{ Mountpoint string }

// RollbackWhy is why a staged run rolled its fence back.
type RollbackWhy struct {
	Cancelled   bool // cancelled before revoke (Drain false) or during the drain
	Drain       bool // with Cancelled
	Timeout     *DrainTimeout
	UnmountText string // the unmount failed: its error, one line
}

// DrainTimeout: the drain gave up after Timeout: holders left (Left), or,
// none left, why the mount was still busy (Busy).
type DrainTimeout struct {
	Timeout     time.Duration
	Left        []LeftHolder
	Busy        *BusyWhy
	NotReleased []ReleaseLeft
}

// RolledBack: the run ended with the fence rolled back (Done) or its
// rollback failed (Failed), for Why.
type RolledBack struct {
	Why    RollbackWhy
	Done   *FenceRolledBack
	Failed *RollbackFailed
}

// FenceStays: the filesystem is unmounted, the fence is left at Target.
type FenceStays struct{ Target string }

// StagedGone: the staged run unmounted Mountpoint (verified), with its
// counts; NotReleased: releases that failed (they come first, the run
// fails).
type StagedGone struct {
	Mountpoint  string
	Revoked     int
	Signalled   int
	Released    int
	Unsettled   Unsettled
	CutOff      bool // the run cut the connection to a server that did not answer
	NotReleased []ReleaseLeft
}

// DetachedEnd is how the run on a detached mount ended.
type DetachedEnd struct {
	MountID   inspect.MountID
	Gone      bool // no holder left: the kernel released it
	TimedOut  bool // holders (Left) still held it after Timeout
	Timeout   time.Duration
	Left      []LeftHolder
	Revoked   int
	Signalled int
	Unsettled Unsettled
}

func (HolderRevoked) note()       {}
func (HolderRestored) note()      {}
func (HolderExited) note()        {}
func (HolderLetGo) note()         {}
func (HolderNotRevoked) note()    {}
func (HolderSignalled) note()     {}
func (HolderNotSignalled) note()  {}
func (SignalFailed) note()        {}
func (SignalledExited) note()     {}
func (RevokeScanFailed) note()    {}
func (NoHolder) note()            {}
func (DrainRescanFailed) note()   {}
func (DrainLeft) note()           {}
func (NothingHolds) note()        {}
func (BusyNoHolder) note()        {}
func (CallAbandoned) note()       {}
func (UmountAbandonedGone) note() {}
func (ProbeFinding) note()        {}
func (CannotCutOff) note()        {}
func (FuseConnAborted) note()     {}
func (FuseAbortFailed) note()     {}
func (ForceUnreachable) note()    {}
func (ForceAborted) note()        {}
func (ForceFailed) note()         {}
func (BeneathRefused) note()      {}
func (Fenced) note()              {}
func (Synced) note()              {}
func (RollbackFailed) note()      {}
func (FenceRolledBack) note()     {}
func (DetachedNoFence) note()     {}
func (DetachedReleased) note()    {}
func (StackedUnmounted) note()    {}
func (OverFenceRemoved) note()    {}
func (SubmountUnmounted) note()   {}
func (RealUnmounted) note()       {}
func (FenceLeft) note()           {}
func (FenceRemoved) note()        {}
func (ForceIgnoredFS) note()      {}
func (PlainUnmounted) note()      {}
func (ExpireAttempt) note()       {}
func (ReleaseNotDone) note()      {}
func (CopyGoesAlong) note()       {}
func (CopyBusyLazy) note()        {}
func (Released) note()            {}
func (ReleaseFailed) note()       {}
func (JournalFailed) note()       {}
func (NothingChanged) note()      {}
func (NothingDone) note()         {}
func (CouldNotFence) note()       {}
func (Failed) note()              {}
func (CancelledEarly) note()      {}
func (PlainGone) note()           {}
func (Expired) note()             {}
func (ForcedGone) note()          {}
func (RolledBack) note()          {}
func (FenceStays) note()          {}
func (StagedGone) note()          {}
func (DetachedEnd) note()         {}

// pendingKindNames are the PendingKind values' names, for logs and tests (String).
var pendingKindNames = [...]string{PendingCall: "call", PendingRevoke: "revoke", PendingHeld: "held"}

// String names the PendingKind (kindname.Of).
func (p PendingKind) String() string {
	return kindname.Of("PendingKind", pendingKindNames[:], int(p), 0)
}

// consequenceNames are the Consequence values' names, for logs and tests (String).
var consequenceNames = [...]string{ConsequenceNone: "none", ConsequenceFenceLater: "fence-later", ConsequenceNoSyncfs: "no-syncfs", ConsequenceUnsynced: "unsynced", ConsequenceRelease: "release"}

// String names the Consequence (kindname.Of).
func (c Consequence) String() string {
	return kindname.Of("Consequence", consequenceNames[:], int(c), 0)
}

// cutCauseKindNames are the CutCauseKind values' names, for logs and tests (String).
var cutCauseKindNames = [...]string{CauseNotAnswering: "not-answering", CauseStopped: "stopped", CauseDState: "state", CauseRevokeHung: "revoke-hung"}

// String names the CutCauseKind (kindname.Of).
func (c CutCauseKind) String() string {
	return kindname.Of("CutCauseKind", cutCauseKindNames[:], int(c), 0)
}

// syncfsStepNames are the SyncfsStep values' names, for logs and tests (String).
var syncfsStepNames = [...]string{SyncfsDone: "done", SyncfsFailed: "failed", SyncfsNoRoot: "no-root", SyncfsOpenFailed: "open-failed", SyncfsAbortedAtOpen: "aborted-at-open", SyncfsAborted: "aborted"}

// String names the SyncfsStep (kindname.Of).
func (s SyncfsStep) String() string { return kindname.Of("SyncfsStep", syncfsStepNames[:], int(s), 0) }

// expireStepNames are the ExpireStep values' names, for logs and tests (String).
var expireStepNames = [...]string{ExpireMarked: "marked", ExpireCleared: "cleared", ExpireGone: "gone", ExpireElsewhere: "elsewhere", ExpireBusy: "busy", ExpireFailed: "failed"}

// String names the ExpireStep (kindname.Of).
func (e ExpireStep) String() string { return kindname.Of("ExpireStep", expireStepNames[:], int(e), 0) }

// expireOutcomeNames are the ExpireOutcome values' names, for logs and tests (String).
var expireOutcomeNames = [...]string{ExpiredGone: "gone", ExpiredElsewhere: "elsewhere", ExpiredMarked: "marked", ExpiredNotIdle: "not-idle", ExpiredCancelled: "cancelled"}

// String names the ExpireOutcome (kindname.Of).
func (e ExpireOutcome) String() string {
	return kindname.Of("ExpireOutcome", expireOutcomeNames[:], int(e), 0)
}
