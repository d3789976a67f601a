package release

import (
	"fmt"
	"strings"
	"testing"
)

// swapsText is /proc/swaps as mm/swapfile.c swap_show writes it: a header,
// then one line per swap area, its path escaped by seq_file_path with
// " \t\n\\" in octal.
func swapsText(paths ...string) string {
	var b strings.Builder
	b.WriteString("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
	for _, p := range paths {
		for i := 0; i < len(p); i++ {
			if strings.IndexByte(" \t\n\\", p[i]) >= 0 {
				fmt.Fprintf(&b, "\\%03o", p[i])
			} else {
				b.WriteByte(p[i])
			}
		}
		b.WriteString("                               file\t\t1048572\t\t0\t\t-2\n")
	}
	return b.String()
}

// FuzzListedSwap: Swapoff's check of /proc/swaps finds a swap file by its
// exact path, whatever the path holds, and no other path; any text parses
// without a panic.
func FuzzListedSwap(f *testing.F) {
	f.Add("/swapfile", "/swapfile2", "Filename Type\n/a file 1 0 -2\n")
	f.Add("/mnt/a b\\040c\nd", "/mnt/a b c\nd", "x\n\\04 file\n\\")
	f.Add("/mnt/tab\there", "/mnt/tab here", "\n\n")
	f.Add("/a", "/a\rfile", "/a\rfile file 1 0 -2\n") // a name strings.Fields read as "/a" of type "file"
	f.Fuzz(func(t *testing.T, p, other, raw string) {
		listedSwap(raw, p)
		if p == "" || strings.ContainsAny(p+other, "\x00") {
			return // a path is a non-empty C string
		}
		if !listedSwap(swapsText(other, p), p) {
			t.Fatalf("%q not found in %q", p, swapsText(other, p))
		}
		if other != p && listedSwap(swapsText(other), p) {
			t.Fatalf("%q found in %q, which lists only %q", p, swapsText(other), other)
		}
	})
}
