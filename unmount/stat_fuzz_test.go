package unmount

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzStartTicks: the start time OpenProcess compares with the scan's is
// read back from a /proc/PID/stat line as the kernel writes it
// (fs/proc/array.c do_task_stat: the command name in parentheses may hold
// anything, ')' and spaces included); any text parses without a panic.
func FuzzStartTicks(f *testing.F) {
	f.Add(42, "sleep", uint64(12), []byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0"))
	f.Add(7, ") S 1 (x", uint64(1)<<40, []byte("7 (a) b) R"))
	f.Add(9, "\x1b[2J\n\u202e", uint64(0), []byte("("))
	f.Add(1, "a b", uint64(99), []byte(")"))
	f.Fuzz(func(t *testing.T, pid int, comm string, start uint64, raw []byte) {
		_, _ = parseStartTicks(raw)
		if strings.Contains(comm, "\x00") {
			return // comm is a C string
		}
		// Fields 3 to 21 (state ... itrealvalue), then starttime, then more.
		line := fmt.Sprintf("%d (%s) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %d 1000 200 18446744073709551615\n", pid, comm, start)
		got, err := parseStartTicks([]byte(line))
		if err != nil || got != start {
			t.Fatalf("%q read back as %d (%v), want %d", line, got, err, start)
		}
	})
}
