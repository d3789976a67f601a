// Package kindname names the values of the engine's kinds: the small
// integer types unmount/ and inspect/ return as data (a doubt's kind, a
// probe's outcome, ...), each with a table of names its String method
// reads through Of. The words an operator reads are internal/present's;
// these names are for logs, test failures and %v.
package kindname

import "strconv"

// Of returns names[v-base], or "Type(v)" for a value outside the table (a
// kind added without its name, or a corrupt value), as Go's stringer does.
func Of(typ string, names []string, v, base int) string {
	if i := v - base; i >= 0 && i < len(names) && names[i] != "" {
		return names[i]
	}
	return typ + "(" + strconv.Itoa(v) + ")"
}
