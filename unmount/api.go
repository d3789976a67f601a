// Package unmount gets a mount off the system: the plain umount2(2) modes
// (lazy, expire, force) and the staged forced unmount (fence -> revoke ->
// drain) modelled on the fumount patch. It never imports UI code; progress
// is reported as Events on a channel.
package unmount

import (
	"slices"
	"time"

	"mounttop/inspect"
	"mounttop/unmount/release"
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
	// PolicyClose revokes by ptrace injection: a placeholder on each fd
	// (an O_PATH fd that fails every read and write and keeps the number
	// taken, so the process's next open cannot get it and receive what it
	// meant for the old file), PROT_NONE mappings, cwd moved into an empty
	// read-only directory on no mounted tree.
	PolicyClose  Policy = iota + 1
	PolicySignal        // SIGTERM, then SIGKILL after Grace
	// PolicyClosePlain is PolicyClose with the fds closed instead: the
	// numbers are free again, and the process's next open(2) gets the
	// lowest of them.
	PolicyClosePlain
)

func (p Policy) String() string {
	switch p {
	case PolicySignal:
		return "signal"
	case PolicyClosePlain:
		return "close-plain"
	}
	return "close"
}

// Stage names a step of an unmount run; Event.Stage.String() is the "stage"
// field of `mounttop umount --json`.
type Stage int

const (
	StagePlan     Stage = iota + 1 // what will happen to whom
	StageFence                     // stop new opens by path; syncfs
	StageRevoke                    // per holder: placeholder or close/mmap/fchdir by ptrace, or signal
	StageDrain                     // rescan every Interval, revoke stragglers
	StageUnmount                   // the real umount2, and verifying it is gone
	StageRollback                  // cancelled before revoke: fence removed
	StageExpire                    // MNT_EXPIRE attempts
	StageDone                      // the last event: Result set
	// StageRelease (Plan.Release): a holder that is not a process is
	// freed: a copy in another mount namespace unmounted there, a loop
	// device detached, a swap file swapped off.
	StageRelease
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
	case StageRelease:
		return "release"
	}
	return "unknown"
}

// ActionKind is what a run does to one holder process.
type ActionKind int

const (
	// ActionKeepDetached (lazy): nothing; the process keeps using the
	// detached filesystem until it lets go (umount2(2) MNT_DETACH).
	ActionKeepDetached ActionKind = iota + 1
	// ActionKeepBusy (expire, force): nothing; the process keeps the
	// mount busy.
	ActionKeepBusy
	// ActionSignal (PolicySignal): SIGTERM, then SIGKILL after
	// HolderAction.Grace.
	ActionSignal
	// ActionRevoke (PolicyClose, PolicyClosePlain): HolderAction.Targets
	// revoked by ptrace injection.
	ActionRevoke
)

// String is the kind's word.
func (k ActionKind) String() string {
	switch k {
	case ActionKeepDetached:
		return "keep-detached"
	case ActionKeepBusy:
		return "keep-busy"
	case ActionSignal:
		return "signal"
	case ActionRevoke:
		return "revoke"
	}
	return "unknown"
}

// Refusal is why a holder cannot be revoked by ptrace injection, only
// stopped (PolicySignal): what of it lies on the mount that no injected
// close(2), munmap(2) or fchdir(2) can take away.
type Refusal int

const (
	RefusalNone Refusal = iota
	// RefusalExe: its executable is on the mount: the kernel maps it and
	// keeps it open (mm->exe_file) for as long as the process runs.
	RefusalExe
	// RefusalRoot: its root directory (chroot(2)) is on the mount: the
	// root pins the mount, and a revoke moves cwds, not roots.
	RefusalRoot
)

// String is the refusal's word ("exe", "root"; "" for none), for %v;
// present.RefusalText says it in the operator's words.
func (r Refusal) String() string {
	switch r {
	case RefusalExe:
		return "exe"
	case RefusalRoot:
		return "root"
	}
	return ""
}

// HolderAction is what the plan will do to one holder process: data, which
// internal/present renders.
type HolderAction struct {
	Holder inspect.Holder
	Kind   ActionKind
	// Targets (ActionRevoke): the fds, mappings and cwds taken away; with
	// Holder.State 'D' the process may not stop for ptrace.
	Targets RevokeTargets
	Grace   time.Duration // ActionSignal: SIGTERM -> SIGKILL
	// Refusal (ActionRevoke): set when the holder cannot be revoked, and
	// why; RefusedPath is the path on the mount that makes it so (its
	// executable, its root), as the scan found it.
	Refusal     Refusal
	RefusedPath string
	// Namespace is the inode N of mnt:[N] for a holder of a copy in
	// another mount namespace that umount2 propagates to (0: ours):
	// listed, and revoked, only with Plan.Release; CopyAt is where that
	// copy is mounted there.
	Namespace uint64
	CopyAt    string
}

// Refused reports whether the holder cannot be revoked (Refusal).
func (a HolderAction) Refused() bool { return a.Refusal != RefusalNone }

// Plan is the staged unmount's plan: the target as inspected and what will
// happen to each holder. It is shown (dry run) before anything changes.
type Plan struct {
	Target   inspect.Mount
	Mode     Mode
	Policy   Policy
	Grace    time.Duration // signal policy: SIGTERM -> SIGKILL
	Interval time.Duration // drain rescan interval (1s default)
	Timeout  time.Duration // staged: give up after this long from the start of the run (the drain's deadline)
	// CallTimeout bounds every call of a staged run that can wait on the
	// filesystem's server (the open of the root for syncfs, syncfs, the
	// probe, an abort, the fence's and rollback's steps): one that does
	// not return in time is abandoned and named in an event (it may stay
	// blocked in the kernel; internal/bounded). Default
	// DefaultCallTimeout, never more than Timeout.
	CallTimeout time.Duration
	Recursive   bool // unmount submounts too, deepest first
	// AllowSystem lifts the refusal of a mount the system runs on
	// (SystemMount) and of the /proc and journal mounttop uses: the
	// operator's explicit override (--allow-system-mount). mounttop's own
	// executable and cwd stay refused.
	AllowSystem bool
	Submounts   []inspect.Mount
	// Stacked (staged, Recursive): the stacking filesystems of this
	// namespace (overlays) with a layer on the target or its submounts,
	// each followed by nothing but preceded by its own submounts, deepest
	// first. They keep the target's filesystem alive after its unmount
	// (an overlay holds private clones of its layers' mounts), so like
	// submounts they are unmounted first, anchored, after their holders
	// are revoked with the target's. Without Recursive they are only
	// named (Filesystem, Warnings).
	Stacked  []inspect.Mount
	Holders  []HolderAction // with Release, also the holders of propagating copies (HolderAction.Namespace)
	Warnings []PlanWarning

	// ExpireWhenIdle (ModeExpire): re-arm MNT_EXPIRE every Interval until
	// the mount goes (or Timeout, if set), reporting each attempt.
	ExpireWhenIdle bool

	// Server is what the probe found before anything changed (staged
	// only): whether the filesystem's server answers, and if not, what
	// the run does instead (Probe).
	Server Server

	// Release: the operator opted in to freeing, during a staged run, what
	// holds the mount besides this namespace's processes: the holders of
	// copies in other namespaces that umount2 propagates to are revoked
	// like ours, then Releases are applied. Without it they are only named.
	// The plain modes (lazy, expire, force) ignore it.
	Release bool
	// ReleaseHost: the operator also confirmed releasing copies in the
	// host's mount namespace (pid 1's; --release-host). Without it such a
	// release is refused (Release.HostRefused).
	ReleaseHost bool
	// Releases is what Prepare found releasable, filled whether or not
	// Release is set, so that a dry run shows it.
	Releases []Release

	// Filesystem is the forecast: what keeps the filesystem itself in use
	// once the target and its submounts are unmounted (planFilesystem).
	Filesystem Filesystem

	// prepared are the choices Prepare computed Holders, Releases and
	// Warnings for (Stale).
	prepared planChoices
}

// planChoices are the fields of a Plan that decide what Prepare computes:
// the holder actions and refusals (Mode, Policy, Grace, Release), the
// releases (ReleaseHost), the refusals of the request (Recursive,
// AllowSystem).
type planChoices struct {
	mode        Mode
	policy      Policy
	grace       time.Duration
	release     bool
	releaseHost bool
	recursive   bool
	allowSystem bool
}

func (p *Plan) choices() planChoices {
	return planChoices{mode: p.Mode, policy: p.Policy, grace: p.Grace, release: p.Release,
		releaseHost: p.ReleaseHost, recursive: p.Recursive, allowSystem: p.AllowSystem}
}

// Stale reports whether a choice that decides what Prepare computes
// (mode, policy, grace, release, recursive, allow-system) was changed
// since p was prepared, or p never was: its holder actions, refusals and
// warnings would not be what a run of it does, so it must be prepared
// again ("signal instead", "also release") before it is shown or run.
func (p *Plan) Stale() bool { return p.prepared != p.choices() }

// Release is one non-process holder the staged run can free, by the
// operator's choice (Plan.Release), or the TUI on its own (Unmounter.Release).
// It is data: internal/present says what it does (present.ReleaseText) and
// why it is refused (present.ReleaseRefusalText).
type Release struct {
	Kind       ReleaseKind
	PID        int    // copy: a process living in that namespace (the setns(2) target)
	Mountpoint string // copy: where it is mounted there
	OldID      int    // copy: its mount ID in that namespace, re-checked before acting
	ParentOld  int    // copy: its parent's mount ID there, re-checked before acting
	Dev        uint64 // copy: its filesystem (st_dev), re-checked before acting (release.Copy)
	Name       string // loop: /dev/loopN; swap: the swap file path
	// BackingFile (loop): the loop device's backing file, as the scan
	// read it (/sys/block/loopN/loop/backing_file).
	BackingFile string
	// File (loop, swap): the backing file's or swap file's device and
	// inode as the scan found them, re-checked before acting.
	File release.FileID
	Lazy bool // copy: MNT_DETACH (its holders there keep it alive until they go) rather than a plain unmount
	// Holders (copy): the processes that held it there when the plan was
	// made (why it is unmounted lazily); empty when it was idle.
	Holders []inspect.Holder
	// Refusal: it cannot be done, and why (ReleaseAllowed: it can);
	// RefusedAt and RefusedIn say where the loop device is itself
	// mounted (ReleaseLoopMounted): the mount point, and the mount
	// namespace's inode when not ours.
	Refusal   ReleaseRefusal
	RefusedAt string
	RefusedIn uint64

	// Propagates (copy): umount2 of ours propagates to it
	// (propagate_mount_busy, fs/pnode.c), so a staged run revokes its
	// holders instead of unmounting it: the over-mount fence covers it in
	// its namespace, and our unmount takes it along.
	Propagates bool
	// Namespace (copy): the namespace's inode, mnt:[Namespace], re-checked
	// before acting.
	Namespace uint64
	// Host (copy): Namespace is the host's mount namespace (pid 1's);
	// HostKnown: whether that could be told (pid 1's namespace readable).
	Host      bool
	HostKnown bool
}

// Refused reports whether the release cannot be done (Refusal).
func (r Release) Refused() bool { return r.Refusal != ReleaseAllowed }

// ReleaseRefusal is why a Release cannot be done.
type ReleaseRefusal int

const (
	ReleaseAllowed ReleaseRefusal = iota
	// ReleaseLoopMounted: the loop device is itself mounted (a filesystem
	// on it, Release.RefusedAt): detaching it is refused (EBUSY) until
	// that is unmounted.
	ReleaseLoopMounted
	// ReleaseNoEntry: no process of the copy's mount namespace is known
	// to enter it through (setns(2) needs one).
	ReleaseNoEntry
	// ReleaseHostNamespace: the copy is in the host's mount namespace
	// (pid 1's): lifted only by the operator's explicit confirmation
	// (Plan.ReleaseHost, Release.ConfirmHost).
	ReleaseHostNamespace
)

// String is the refusal in a few words, for %v and errors;
// present.ReleaseRefusalText says it in full.
func (k ReleaseRefusal) String() string {
	switch k {
	case ReleaseAllowed:
		return ""
	case ReleaseLoopMounted:
		return "the loop device is itself mounted"
	case ReleaseNoEntry:
		return "no process of that namespace is known to enter it through"
	case ReleaseHostNamespace:
		return "it is the host's mount namespace (--release-host)"
	}
	return "refused"
}

// Status is one holder's state during a run.
type Status string

const (
	StatusPending   Status = "pending"   // not acted on yet
	StatusRevoked   Status = "revoked"   // its uses of the mount were revoked
	StatusRefused   Status = "refused"   // it cannot be revoked (or the revoke failed), Reason says why
	StatusSignalled Status = "signalled" // sent SIGTERM or SIGKILL (PolicySignal)
	StatusGone      Status = "gone"      // it exited or let go of the mount
	// StatusUntouched: a plain mode (lazy, expire, force) does not act
	// on processes; the view shows them so.
	StatusUntouched Status = "untouched"
)

// String is the state's word, as `umount --json` and the view show it.
func (s Status) String() string { return string(s) }

// ReleaseKind is what a Release frees.
type ReleaseKind string

const (
	ReleaseCopy ReleaseKind = "copy" // the filesystem mounted in another mount namespace
	ReleaseLoop ReleaseKind = "loop" // a loop device backed by a file on it
	ReleaseSwap ReleaseKind = "swap" // a swap file on it
)

// String is the kind's word, as `umount --json` and the view show it.
func (k ReleaseKind) String() string { return string(k) }

// HolderState is one holder's state during a run, for the progress pane.
type HolderState struct {
	PID   int
	Comm  string
	State Status
	// Why says what happened to it, as data (HolderRevoked: what was
	// revoked; HolderNotRevoked: the refusal or the error;
	// HolderSignalled: the signal; ...); nil while it is as planned
	// (Planned). present.HolderReason words it. A comparable value (no
	// slice or map): pictures are compared to send only what changed.
	Why Note
	// Reason is a reason in words that a view sets on a picture of its
	// own (the engine sets Why); present.HolderReason shows it when Why
	// is nil.
	Reason string
	// Planned is the plan's action for it, on the plan's picture
	// (pending, or refused with HolderAction.Refusal): what internal/present
	// shows while Reason is empty.
	Planned *HolderAction
	// Namespace is the inode N of mnt:[N] for a holder of a copy in
	// another mount namespace (Plan.Release revokes those too), 0 for ours.
	Namespace uint64
}

// refusedFor says whether the holder's state already says refusal: said
// by the run (Why), or for a holder of ours refused as planned, by the
// plan (a holder of a copy is planned with its namespace, and so says it
// again when the run meets it).
func (s *HolderState) refusedFor(refusal Refusal) bool {
	if n, ok := s.Why.(HolderNotRevoked); ok {
		return n.ErrText == "" && n.Refusal == refusal
	}
	return s.Why == nil && s.Reason == "" && s.Planned != nil && s.Planned.Refusal == refusal && s.Planned.Namespace == 0
}

// Result is the outcome of a run, carried by the final StageDone event.
type Result struct {
	Gone   bool // verified: the target is no longer in the mount table
	Marked bool // expire: the mount is marked, call again to unmount
	// Outcome is how the run ended, as data: present.ResultSummary
	// words it as the one line for the operator.
	Outcome Note
	// Summary is a result line in words that a view sets on a result of
	// its own (the engine sets Outcome); present.ResultSummary shows it
	// when Outcome is nil.
	Summary   string
	Remaining []inspect.Holder
	// Holders is the per-holder picture at the end of the run, in full
	// (the events between the plan and the result carry only changes).
	Holders []HolderState
	// Filesystem: once the mount is gone, whether the filesystem itself
	// is (checkFilesystem); nil when the mount is not gone.
	Filesystem *Filesystem
}

// Event is one step of a run. Err is set when that step failed.
type Event struct {
	Stage Stage
	Mount inspect.MountID
	PID   int // the holder concerned, 0 for mount-level events
	// Note says what happened, as data (present.NoteText renders it).
	Note Note
	Err  error
	At   time.Time
	// Holders: on the StagePlan event, every holder; on the others, only
	// the holders whose state changed since the previous event that
	// carried any (ApplyHolders keeps the full picture).
	Holders   []HolderState
	Remaining int     // drain: holder processes left
	Result    *Result // StageDone only

	// StagePlan only: what the plan can release (Plan.Releases) and
	// whether the operator opted in (Plan.Release).
	Releases []Release
	Release  bool
	// StagePlan only, staged runs: the probe of the filesystem's server
	// (Plan.Server).
	Server *Server
	// StagePlan only: the forecast of what keeps the filesystem in use
	// after the unmount (Plan.Filesystem).
	Filesystem *Filesystem
}

// ApplyHolders applies an event's holder changes to a picture: a holder
// already in pic takes its new state, a new one is added; the result is in
// pid order. A consumer starts from the plan event's Holders and applies
// every later event's, and so keeps the full picture (Result.Holders has it
// too).
func ApplyHolders(pic, changed []HolderState) []HolderState {
	if len(changed) == 0 {
		return pic
	}
	out := append([]HolderState(nil), pic...)
	at := make(map[int]int, len(out))
	for i, h := range out {
		at[h.PID] = i
	}
	for _, h := range changed {
		if i, ok := at[h.PID]; ok {
			out[i] = h
			continue
		}
		at[h.PID] = len(out)
		out = append(out, h)
	}
	slices.SortStableFunc(out, func(a, b HolderState) int { return a.PID - b.PID })
	return out
}
