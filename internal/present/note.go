package present

import (
	"fmt"

	"mounttop/unmount"
)

// NoteText renders what an event says (unmount.Note) as one line in the
// operator's words, every name escaped once (termsafe.Text / Quote).
// Each family of notes has its renderer beside its types' kind: the run's
// steps (runNoteText), the plan, releases and leftovers (planNoteText).
func NoteText(n unmount.Note) string {
	if n == nil {
		return ""
	}
	if s, ok := runNoteText(n); ok {
		return s
	}
	if s, ok := planNoteText(n); ok {
		return s
	}
	// A note without a renderer is a bug; say what it holds rather than
	// nothing.
	return fmt.Sprintf("%T %+v", n, n)
}

// EventWhat is what an event says: its Note rendered, or the engine's
// old sentence while one is left.
func EventWhat(e unmount.Event) string {
	if e.Note != nil {
		return NoteText(e.Note)
	}
	return e.What
}
