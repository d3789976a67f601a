package inspect

import (
	"fmt"
	"strings"
	"testing"
)

// seqEsc is what seq_file_path and seq_escape escape in /proc/swaps,
// mountinfo, nfsd's exports and io_uring's fdinfo.
const seqEsc = " \t\n\\"

// FuzzUnescapeSeqPath: undoing the kernel's octal escapes gives back the
// exact name, whatever bytes it holds; on any text it never grows it, and
// text without a backslash passes unchanged.
func FuzzUnescapeSeqPath(f *testing.F) {
	for _, seed := range []string{"/mnt/a b/swapfile", "tab\there", "back\\slash", "\\", "\\0", "\\04", "\\400", "\\777\\1234", "\x1b\xc2\x9b\xff", "\\\\040"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := UnescapeSeqPath(mangle(s, seqEsc)); got != s {
			t.Fatalf("unescape(mangle(%q)) = %q", s, got)
		}
		got := UnescapeSeqPath(s)
		if len(got) > len(s) {
			t.Fatalf("unescape(%q) = %q grew", s, got)
		}
		if !strings.Contains(s, "\\") && got != s {
			t.Fatalf("unescape(%q) = %q changed text without escapes", s, got)
		}
	})
}

// FuzzSwaps: the swap files of a /proc/swaps written as mm/swapfile.c
// swap_show does read back exactly, partitions are left out, and any text
// parses without a panic.
func FuzzSwaps(f *testing.F) {
	f.Add("/mnt/a b/swapfile", "/dev/vdb", "/swap\tfile\n2", []byte(nil))
	f.Add("/x\\y", "/dev/dm-0", "/\x1b[2J", []byte("Filename\tType\tSize\tUsed\tPriority\n/dev/vdb partition 100 0 -2\n"))
	f.Fuzz(func(t *testing.T, file1, partition, file2 string, raw []byte) {
		parseSwaps(string(raw))
		if file1 == "" || file2 == "" || partition == "" {
			return
		}
		var b strings.Builder
		b.WriteString("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
		for _, e := range []struct{ name, kind string }{{file1, "file"}, {partition, "partition"}, {file2, "file"}} {
			name := mangle(e.name, seqEsc)
			fmt.Fprintf(&b, "%s%s\t%s\t%d\t%d\t%d\n", name, strings.Repeat(" ", max(0, 40-len(name))), e.kind, 1024, 0, -2)
		}
		got := parseSwaps(b.String())
		if len(got) != 2 || got[0] != file1 || got[1] != file2 {
			t.Fatalf("%q: swap files %q, want %q and %q", b.String(), got, file1, file2)
		}
	})
}

// FuzzExports: the paths of /proc/fs/nfsd/exports as fs/nfsd/export.c
// writes them (seq_escape of the path, a tab, the client and its options)
// read back exactly; comments are skipped.
func FuzzExports(f *testing.F) {
	f.Add("/srv/export", "*", "/srv/with space", []byte("# Version 1.1\n# Path Client(Flags) # IPs\n/srv/export\t*(rw,no_root_squash)\n"))
	f.Add("/srv/\t\\#x", "10.0.0.0/8", "/\x1b]0;x\x07", []byte("/a\\040b\n\n#\n"))
	f.Fuzz(func(t *testing.T, path1, client, path2 string, raw []byte) {
		parseExports(string(raw))
		if path1 == "" || path2 == "" || strings.HasPrefix(path1, "#") || strings.HasPrefix(path2, "#") {
			return // exported paths are absolute
		}
		text := "# Version 1.1\n# Path Client(Flags) # IPs\n"
		for _, p := range []string{path1, path2} {
			text += mangle(p, seqEsc) + "\t" + mangle(client, seqEsc) + "(rw,sync,wdelay,no_subtree_check)\n"
		}
		got := parseExports(text)
		if len(got) != 2 || got[0] != path1 || got[1] != path2 {
			t.Fatalf("%q: exports %q, want %q and %q", text, got, path1, path2)
		}
	})
}

// FuzzBinfmt: a binfmt_misc entry as fs/binfmt_misc.c bm_status_read
// writes it holds its interpreter open exactly when its flags have F, and
// gives back the interpreter; any text parses without a panic.
func FuzzBinfmt(f *testing.F) {
	f.Add(true, "/usr/bin/qemu-arm", "POCF", []byte("enabled\ninterpreter /usr/bin/qemu-arm\nflags: POCF\noffset 0\nmagic 7f454c46\nmask ffffffff\n"))
	f.Add(false, "/usr/libexec/x y", "P", []byte("disabled\ninterpreter \nflags: F\n"))
	f.Fuzz(func(t *testing.T, enabled bool, interp, flags string, raw []byte) {
		if p, ok := binfmtFixed(string(raw)); ok && p == "" {
			t.Fatalf("%q: fixed with no interpreter", raw)
		}
		if strings.ContainsAny(interp+flags, "\n") {
			return // the kernel writes both on one line each, unescaped
		}
		state := "disabled"
		if enabled {
			state = "enabled"
		}
		text := fmt.Sprintf("%s\ninterpreter %s\nflags: %s\noffset 0\nmagic 7f454c46\n", state, interp, flags)
		p, ok := binfmtFixed(text)
		want := strings.Contains(flags, "F") && interp != ""
		if ok != want || ok && p != interp {
			t.Fatalf("%q: binfmtFixed = %q %v, want %q %v", text, p, ok, interp, want)
		}
	})
}
