package present

import (
	"fmt"

	"mounttop/inspect"
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
