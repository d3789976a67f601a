package present

import (
	"fmt"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// The view's own sentences: pane titles, the holders pane's section
// headings and notes, the tree's notes, and the status lines and
// questions of the view's workflows. Keys are named by the caller, from
// the view's keymap, so a text and the key it names cannot drift.

// Keys are the keys a text names, as the view's keymap binds them (the
// key typed: "r", "F"), so that a hint and the key it names cannot drift.
type Keys struct {
	Refresh, Staged, Lazy, Expire, SignalInstead string
}

// Headings of the holders pane's sections.
const (
	KernelSection = "Held by the kernel (no process to revoke):"
	CopiesSection = "Also mounted in other mount namespaces:"
)

// SameFilesystemSection heads the other mounts of m's filesystem.
func SameFilesystemSection(m *inspect.Mount) string {
	return fmt.Sprintf("Same filesystem (dev %s) also mounted at:", m.Device())
}

// WarningsSection heads the n warnings of the last scan.
func WarningsSection(n int) string { return fmt.Sprintf("Warnings from the last scan (%d):", n) }

// MoreWarnings counts the n warnings the pane does not list.
func MoreWarnings(n int) string { return fmt.Sprintf("… and %d more", n) }

// Notes of the holders pane and the tree.
const (
	ReadingHolders  = "reading who holds what…"
	ReadingHowHeld  = "reading how each holds it…" // a count-only scan: the focused scan follows
	NoMountSelected = "no mount selected"
	ReadingMounts   = "reading the mount table…"
)

// AutomountNote is the holders pane's note on an automount point.
func AutomountNote(m *inspect.Mount) string { return "Automount: " + AutomountWarning(m) }

// NoMountMatches is the tree's note when no mount matches filter.
func NoMountMatches(filter string) string { return "no mount matches " + Name(filter) }

// FilterPrompt is the filter in the tree's title: before and after the
// cursor while it is typed (cursor is the mark drawn between them, "" when
// the filter is in force and no longer typed).
func FilterPrompt(before, cursor, after string) string {
	return "filter: " + Name(before) + cursor + Name(after)
}

// HoldersTitle is the holders pane's title: the mount and how many
// processes hold it (m nil: no mount).
func HoldersTitle(m *inspect.Mount, processes int) string {
	if m == nil {
		return "Holders"
	}
	return fmt.Sprintf("Holders of %s (%s)", MountName(*m), pluralWords(processes, "process", "processes"))
}

// NothingToRelease says that no holder of m is one the release key acts
// on; submounts > 0 names the keys that take them first (unmountKeys,
// "F, l or f").
func NothingToRelease(m inspect.Mount, submounts int, unmountKeys string) string {
	s := "nothing to release on " + MountName(m) + ": no loop device, swap file or copy in another namespace holds it"
	if submounts > 0 {
		// Submounts are kernel holders too, with no row of their own:
		// the tree shows them.
		s += "; its " + pluralWords(submounts, "submount goes", "submounts go") + " first with " + unmountKeys
	}
	return s
}

// Status lines of the release workflow; releaseKey, stagedKey, closeKey
// and refreshKey are the keymap's.
func ReleaseFromProgress(releaseKey, closeKey string) string {
	return releaseKey + " acts on the holders pane: " + closeKey + " closes this one first"
}

// ReleasePick asks the operator to put the cursor on what to release.
func ReleasePick(releaseKey string) string {
	return "pick a loop device, swap file or copy, then " + releaseKey + " releases it"
}

// ReleaseAsking: the engine is asked how to release the row.
const ReleaseAsking = "asking the engine how to release it…"

// ReleaseNotAProcess: the release key on a process's line.
func ReleaseNotAProcess(releaseKey, stagedKey string) string {
	return releaseKey + " releases loop devices, swap files and copies; " + stagedKey + " revokes processes"
}

// ReleaseNotThisLine: the release key on a line that names nothing to
// release.
func ReleaseNotThisLine(releaseKey string) string {
	return releaseKey + " releases the loop device, swap file or copy under the cursor; this line is none"
}

// ReleaseRefusedHere: the engine plans no unmount of target, so no
// release there either.
func ReleaseRefusedHere(target inspect.Mount) string {
	return "the engine will not plan an unmount of " + MountName(target) + ", so it offers no release there"
}

// ReleaseGone: the release is no longer in the engine's plan.
func ReleaseGone(refreshKey string) string {
	return "the engine offers no release for this any more (gone since the scan?); " + refreshKey + " refreshes"
}

// The question before a release in the host's mount namespace.
const (
	HostReleaseTitle = "Release in the HOST's mount namespace?"
	HostReleaseYes   = "Yes, in the host's namespace"
)

// HostNamespaceNote says what unmounting in the host's namespace ns does.
func HostNamespaceNote(ns uint64) string {
	return fmt.Sprintf("mnt:[%d] is the host's mount namespace (pid 1's): unmounting there changes what the whole machine sees.", ns)
}

// NoLeftoverFence: the rollback key with no fence a killed run left.
const NoLeftoverFence = "no fence left by a killed run"

// RollbackFenceTitle asks before rolling back the fence at target;
// RollbackFenceWhat is what the rollback does, for the status line.
func RollbackFenceTitle(target string) string { return "Roll back the fence at " + Name(target) + "?" }

// RollbackFenceWhat names the rollback of the fence at target.
func RollbackFenceWhat(target string) string { return "roll back the fence at " + Name(target) }

// QuitWhileRunning is the question before quitting during runName (at
// stage), and what quitting does to it (revoking: revoke has started).
func QuitWhileRunning(runName, stage string, revoking bool) (title string, lines []string) {
	lines = []string{
		"A " + runName + " is running (stage " + stage + ").",
		"Quitting cancels it and waits for it to stop:",
	}
	if revoking {
		lines = append(lines, "revoke has started, so holders already revoked stay revoked.")
	} else {
		lines = append(lines, "revoke has not started: the fence is rolled back, no process is touched.")
	}
	return "Quit while an unmount runs?", lines
}

// QuitYes is the answer that quits during a run.
const QuitYes = "Yes, cancel and quit"

// Planning says the engine is preparing plan.
func Planning(plan unmount.Plan) string {
	return "planning the " + ModeName(plan) + " of " + MountName(plan.Target) + "…"
}

// PlanningFailed is the error of a plan the engine could not prepare.
func PlanningFailed(plan unmount.Plan, err error) error {
	return fmt.Errorf("planning the %s of %s: %w", ModeName(plan), MountName(plan.Target), err)
}

// NotOnDetached: asked (not staged) on detached m, which no umount2
// reaches; stagedKey and dryRunKey are the keys that do act on it.
func NotOnDetached(asked unmount.Plan, m inspect.Mount, stagedKey, dryRunKey string) string {
	return "no " + ModeName(asked) + ": " + MountName(m) + " is in no mount table; " +
		stagedKey + " revokes its holders until it goes, " + dryRunKey + " previews that"
}

// NotOnSystemMount: asked on m, a mount the system runs on for the
// reason k (unmount.SystemMount).
func NotOnSystemMount(asked unmount.Plan, k unmount.SystemKind, m inspect.Mount) string {
	return "no " + ModeName(asked) + ": " + SystemMountText(k, m) + "; the view never unmounts it (" + scantext.AllowSystem + ")"
}

// Status lines of a question answered, a dry run, a cancel.
const (
	DryRunDone     = "dry run: nothing was changed"
	AnsweredNo     = "cancelled: nothing was changed"
	Refreshing     = "refreshing…"
	SystemMount    = "a system mount: no unmount here"
	WaitingForRun  = "waiting for the run to stop"
	CancelTheRun   = "cancel the run" // the cancel key's description while a run goes
	ScannerNoSnap  = "the scanner returned no snapshot"
	HelpClosesNote = "   (any key closes this help)"
	HelpColumns    = "Mount tree columns"
)

// ReleaseNotPlanned is the staged dialog's line when the releases could
// not be planned.
func ReleaseNotPlanned(err error) string {
	return "! releasing them could not be planned: " + termsafe.Message(err.Error())
}

// Cancelling says a cancel of the run (modeName) was asked.
func Cancelling(modeName string) string { return "cancelling the " + modeName + "…" }

// QuittingWhileRunning: the program quits (why) once the run (modeName)
// stopped.
func QuittingWhileRunning(why, modeName string) string {
	return why + ": cancelling the " + modeName + " and waiting for it to stop…"
}

// LeftRunning: a run (runName, at stage) had not stopped when mounttop quit.
func LeftRunning(runName, stage string) string {
	return fmt.Sprintf("the %s was cancelled but had not stopped when mounttop quit (stage %s); check it with: mounttop list",
		runName, stage)
}

// StillRunning is the error of an action refused while runName goes;
// cancelKey stops it.
func StillRunning(runName, cancelKey string) error {
	return fmt.Errorf("a %s is still running: %s cancels it", runName, cancelKey)
}

// TooSmall is the whole screen on a terminal too small for the view.
func TooSmall(width, height int) string {
	return "mounttop: the terminal is too small (" + fmt.Sprint(width, "x", height) + ")"
}

// MountGone: the selected mount point went; the selection moved up.
func MountGone(mountpoint string) string {
	return Name(mountpoint) + " is no longer mounted; selected the mount above it"
}

// NoMountAt is the error of a start path no mount is found for.
func NoMountAt(path string) error { return fmt.Errorf("%s: no mount found there", Name(path)) }

// LiesOn says which mount the start path lies on.
func LiesOn(path, mountpoint string) string { return Name(path) + " lies on " + Name(mountpoint) }

// Counts is the title's " · 7 mounts · 3 busy · 4 holders" (and the note
// on a kernel without unique mount IDs).
func Counts(mounts, busy, holders int, uniqueIDs bool) string {
	s := fmt.Sprintf(" · %s · %d busy · %s", Plural(mounts, "mount"), busy, Plural(holders, "holder"))
	if !uniqueIDs {
		s += " · no unique mount IDs (kernel < 6.8)"
	}
	return s
}

// ExpiryArmed is the holders pane's line about a mount's MNT_EXPIRE mark,
// set at; expireKey unmounts it.
func ExpiryArmed(at time.Time, expireKey string) string {
	return "Expiry: marked at " + at.Format("15:04:05") + "; " + expireKey + " unmounts it if nothing touches it first."
}

// ExpiryCleared: an access cleared the mark, set again at.
func ExpiryCleared(at time.Time) string {
	return "Expiry: an access cleared the mark; marked again at " + at.Format("15:04:05") + "."
}

// ExpiryExpired: the mount expired at.
func ExpiryExpired(at time.Time) string { return "Expiry: expired at " + at.Format("15:04:05") + "." }

// HelpUnmounting is the help screen's closing note; cancelKey cancels.
func HelpUnmounting(cancelKey string) []string {
	return []string{"Every unmount asks first; the dialog starts on No. A staged unmount fences the",
		"mount, revokes each holder, then drains; " + cancelKey + " cancels it (rolled back before revoke)."}
}

// PlanSummary is a staged plan in one line, for the progress pane: how
// holders are revoked and how long the drain may take.
func PlanSummary(p unmount.Plan) string {
	s := "plan: revoke " + Plural(len(p.Holders), "holder")
	if p.Policy == unmount.PolicySignal {
		s += " by SIGTERM"
		if p.Grace > 0 {
			s += ", SIGKILL after " + p.Grace.String()
		}
	} else {
		s += " by closing (ptrace)"
	}
	if p.Interval > 0 {
		s += ", drain every " + p.Interval.String()
	}
	if p.Timeout > 0 {
		s += ", give up after " + p.Timeout.String()
	}
	if n := len(p.Submounts); n > 0 {
		s += ", " + Plural(n, "submount") + " first"
	}
	return s
}

// PreviewTitle is the progress pane's title over a dry run of p.
func PreviewTitle(p unmount.Plan) string {
	return fmt.Sprintf("Plan for %s of %s (dry run: nothing changed)", ModeName(p), MountName(p.Target))
}

// PreviewHint says which keys act on a previewed plan (actKeys: "F, l, e
// or f") and which closes it.
func PreviewHint(actKeys, closeKey string) string {
	return actKeys + " acts on it (asking first); " + closeKey + " closes this preview."
}

// CancelRequested is the log's line when the operator cancels a run: before
// revoke the fence is rolled back; after, what was revoked stays revoked.
func CancelRequested(revoking bool) string {
	if revoking {
		return "cancel requested: stopping (holders already revoked stay revoked)"
	}
	return "cancel requested: rolling back"
}

// Lines of the progress pane.
const (
	EngineStoppedNoResult = "the engine stopped without a result"
	ExpiryNotMarked       = "Expiry: not marked (yet)"
	MoreInHoldersPane     = "… (the holders pane has the full list)"
)

// StillHeldBy is a result's line for a holder that still holds the mount.
func StillHeldBy(h inspect.Holder) string { return "still held by " + HolderBrief(h) }

// Answers of the view's questions.
const (
	AnswerNo        = "No"
	AnswerYes       = "Yes"
	AnswerRevoke    = "Yes, revoke"
	AnswerSignal    = "Yes, signal"
	AnswerSignalToo = "Signal instead"
	AnswerExpireNow = "Expire now"
	AnswerWhenIdle  = "When idle"
	AnswerRollback  = "Yes, roll it back"
)

// AnswerAlsoRelease is the staged dialog's answer that also releases n
// kernel holders and copies.
func AnswerAlsoRelease(n int) string { return fmt.Sprintf("Also release %d", n) }

// AlsoRevokesElsewhere heads the processes in other namespaces that the
// answer keyed alsoKey revokes too.
func AlsoRevokesElsewhere(alsoKey string) string {
	return "(" + alsoKey + ") also revokes these processes in other namespaces:"
}

// DialogHint is a dialog's last line: noKey answers No, left/right and
// choose take the highlighted answer.
func DialogHint(noKey, leftKey, rightKey, chooseKey string) string {
	return noKey + ": No · " + leftKey + "/" + rightKey + " and " + chooseKey + ": the highlighted one"
}

// MoreLeftovers counts the other fences killed runs left, after the
// banner's first.
func MoreLeftovers(n int) string { return fmt.Sprintf(" (and %d more: mounttop list)", n) }

// RollbackFailed is the error of a failed rollback of the fence at target.
func RollbackFailed(target string, err error) error {
	return fmt.Errorf("rolling back the fence at %s: %w", Name(target), err)
}

// RolledBack says a rollback (what it did, as the engine said) is done.
func RolledBack(what string) string { return "rolled back: " + termsafe.Message(what) }

// StillReleasing is the error of a release asked while another (what)
// goes.
func StillReleasing(what string) error { return fmt.Errorf("still releasing: %s", what) }

// ReleaseAskFailed is the error of the engine's plan asked for a release
// on target.
func ReleaseAskFailed(target inspect.Mount, err error) error {
	return fmt.Errorf("asking how to release it from %s: %w", MountName(target), err)
}
