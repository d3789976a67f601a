package present

import "mounttop/unmount"

// runNoteText renders the notes of a run's steps: probe, abort, fence,
// syncfs, revoke, drain, unmount, rollback and the result.
func runNoteText(n unmount.Note) (string, bool) {
	switch n.(type) {
	}
	return "", false
}
