package scantext

import (
	"fmt"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
)

// The lists below name mounts and holders inside present's sentences and
// inside unmount's errors (unmount.Error: "held by ...", "submounts:
// ..."). An error is text, so, unlike the rest of this package, they
// escape each name as they build the list (a path on its own, by
// termsafe.Quote; a command by termsafe.Text), once; whoever shows them
// passes them on as they are, or through termsafe.Message, which leaves
// those escapes as they are.

// MountList names mounts by their mount points, the first max of them,
// then how many more: "/a, /b, and 3 more".
func MountList(ms []inspect.Mount, max int) string {
	return firstOf(len(ms), max, func(i int) string { return termsafe.Quote(ms[i].Mountpoint) })
}

// HolderList names holder processes, the first max of them, then how many
// more: "pid 12 (cat), pid 40 (bash), and 3 more".
func HolderList(hs []inspect.Holder, max int) string {
	return firstOf(len(hs), max, func(i int) string { return fmt.Sprintf("pid %d (%s)", hs[i].PID, termsafe.Text(hs[i].Comm)) })
}

// firstOf joins the names of the first max of n items, then "and N more"
// for the rest.
func firstOf(n, max int, name func(i int) string) string {
	var parts []string
	for i := range min(n, max) {
		parts = append(parts, name(i))
	}
	if n > max {
		parts = append(parts, fmt.Sprintf("and %d more", n-max))
	}
	return strings.Join(parts, ", ")
}
