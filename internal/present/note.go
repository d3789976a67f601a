package present

import (
	"fmt"
	"reflect"
	"strings"
	"unicode"

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

// EventWhat is what an event says: its Note rendered, or for the last
// event, the result line (ResultSummary).
func EventWhat(e unmount.Event) string {
	if e.Result != nil && e.Result.Outcome != nil {
		return ResultSummary(*e.Result)
	}
	return NoteText(e.Note)
}

// NoteKind is the kind of a note, in kebab case from its type's name
// (unmount.FuseConnAborted: "fuse-conn-aborted"): the "note" of an event
// in `umount --json` and the journal, so a script switches on kinds
// rather than parse the words. "" for no note.
func NoteKind(n unmount.Note) string {
	if n == nil {
		return ""
	}
	t := reflect.TypeOf(n)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := []rune(t.Name())
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			// A word starts at an upper-case letter after a lower-case
			// one, or at the last capital of an acronym ("FS" in
			// "ForceIgnoredFS" stays one word).
			if i > 0 && (unicode.IsLower(name[i-1]) || i+1 < len(name) && unicode.IsLower(name[i+1]) && unicode.IsUpper(name[i-1])) {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
