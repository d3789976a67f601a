package inspect

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mapsLine formats one file-backed line of /proc/PID/maps as
// fs/proc/task_mmu.c show_map_vma does: the path from column 74 on, with a
// newline in it escaped (seq_file_path(m, file, "\n")).
func mapsLine(start, end, off uint64, major, minor uint32, ino uint64, path string) string {
	head := fmt.Sprintf("%08x-%08x r--s %08x %02x:%02x %d ", start, end, off, major, minor, ino)
	if len(head) < 73 {
		head += strings.Repeat(" ", 73-len(head))
	}
	return head + mangle(path, "\n")
}

// FuzzMapsLine: any line parses without a panic; one taken as a file
// mapping has an inode and reads back the same once written again.
func FuzzMapsLine(f *testing.F) {
	for _, seed := range []string{
		"7f0a00000000-7f0a00001000 r--s 00000000 00:2f 42                         /mnt/x y (deleted)",
		"7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]",
		"00400000-00596000 r-xp 00000000 fe:00 9979281                            /tmp/go-build/b001/inspect.test",
		"1-2 r 0 1:2 3",
		"-",
		"zz-yy rw-p 0 ff:ff 18446744073709551615 /x",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, ok := parseMapsLine(line)
		if !ok {
			return
		}
		if m.ino == 0 {
			t.Fatalf("%q: a file mapping with inode 0", line)
		}
		if bytes.HasPrefix(m.path, []byte(" ")) {
			t.Fatalf("%q: path %q keeps the padding", line, m.path)
		}
		again, ok := parseMapsLine([]byte(mapsLine(m.start, m.end, 0, unix.Major(m.dev), unix.Minor(m.dev), m.ino, string(m.path))))
		if !ok || again.start != m.start || again.end != m.end || again.dev != m.dev || again.ino != m.ino {
			t.Fatalf("%q: %+v reads back as %+v", line, m, again)
		}
	})
}

// FuzzMapsRoundTrip: a line written as the kernel writes it reads back to
// its range, device, inode and path (a newline in the path stays \012:
// the kernel does not escape backslashes there, so it cannot be undone).
func FuzzMapsRoundTrip(f *testing.F) {
	f.Add(uint64(0x7f0a00000000), uint64(0x7f0a00001000), uint64(0), uint32(0), uint32(0x2f), uint64(42), "/mnt/x y (deleted)")
	f.Add(uint64(0x400000), uint64(0x596000), uint64(0x1000), uint32(254), uint32(0), uint64(9979281), "/a  b\x1b[2J\u202e")
	f.Add(uint64(1), uint64(2), uint64(3), uint32(4095), uint32(0xfffff), uint64(1)<<63, "/")
	f.Fuzz(func(t *testing.T, start, end, off uint64, major, minor uint32, ino uint64, path string) {
		major &= 0xfff
		minor &= 0xfffff
		if ino == 0 {
			ino = 1 // an inode 0 line is an anonymous mapping
		}
		path = "/" + path // a mapped file's path is absolute
		line := mapsLine(start, end, off, major, minor, ino, path)
		m, ok := parseMapsLine([]byte(line))
		want := mapping{start: start, end: end, dev: unix.Mkdev(major, minor), ino: ino, path: []byte(mangle(path, "\n"))}
		if !ok || m.start != want.start || m.end != want.end || m.dev != want.dev || m.ino != want.ino || !bytes.Equal(m.path, want.path) {
			t.Fatalf("%q read back as %+v (%v), want %+v", line, m, ok, want)
		}
	})
}
