package ui

import (
	"mounttop/unmount"
)

// The words of the view's dialogs, the dry-run preview and the progress
// pane (the plan, the releases, the hints) are internal/present's
// (PlanLines, ReleaseLines, HintFor, ...).

// dialogText is the width a dialog's text is wrapped to: its inner width
// on an 80-column terminal.
const dialogText = 72

// matchRelease finds, among a plan's releases, the one for a holders pane
// row: a loop device or swap file by name, a copy by the namespace's
// process and its mount ID there.
func matchRelease(rs []unmount.Release, row holderRow) (unmount.Release, bool) {
	for _, r := range rs {
		switch {
		case row.kernel != nil && r.Kind.String() == row.kernel.Kind.String() && r.Name == row.kernel.Name:
			return r, true
		case row.copy != nil && r.Kind == "copy" && r.OldID == row.copy.Mount.OldID && containsPID(row.copy.Namespace.PIDs, r.PID):
			return r, true
		}
	}
	return unmount.Release{}, false
}

func containsPID(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}
