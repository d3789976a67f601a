// Package present is the one place where mounttop's data becomes text: every
// sentence, table and JSON document that the view, `list`, `holders`,
// `umount` and the journal show is rendered here, from the typed values
// inspect/ and unmount/ return.
//
// The contract, so that names are escaped exactly once and at the edge:
//
//   - inspect/ and unmount/ never write prose for people and never escape;
//     they return raw values (paths, comm, mount sources as the kernel gave
//     them), kinds and states as named types, and errors.
//   - present escapes each untrusted name exactly once, as it renders it:
//     Name for text (termsafe.Text), termsafe.Name for JSON strings.
//   - ui/ and cmd/ print what present returns and add no prose of their own
//     about the system (ui may still style it).
//
// Nothing here touches /proc, makes a syscall or imports tea.
package present

import (
	"strconv"

	"mounttop/internal/termsafe"
)

// Name escapes one untrusted name (a path, a process name, a mount source)
// for a terminal: control bytes and escape sequences become visible text.
// Call it once per name, when the name is put into a sentence.
func Name(s string) string { return termsafe.Text(s) }

// Plural says "1 holder" or "3 holders": word takes an "s" unless n is 1.
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
