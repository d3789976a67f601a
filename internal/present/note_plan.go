package present

import "mounttop/unmount"

// planNoteText renders the notes of the plan, releases, refusals and
// leftovers.
func planNoteText(n unmount.Note) (string, bool) {
	switch n.(type) {
	}
	return "", false
}
