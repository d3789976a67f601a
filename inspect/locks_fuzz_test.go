package inspect

import (
	"fmt"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/sys/unix"
)

// lockLine formats one lock as fs/locks.c lock_get_status does, for
// /proc/locks and the "lock:" lines of fdinfo.
func lockLine(n int, waiter bool, l Lock, pid int, major, minor uint32, ino uint64) string {
	arrow := ""
	if waiter {
		arrow = "-> "
	}
	kind := "ADVISORY "
	if l.Type == "LEASE" || l.Type == "DELEG" {
		kind = "ACTIVE   "
	}
	return fmt.Sprintf("%d: %s%-6s %s %-5s %d %02x:%02x:%d %s %s", n, arrow, l.Type, kind, l.Mode, pid, major, minor, ino, l.Start, l.End)
}

// FuzzLockLine: any text parses without a panic, and a lock taken from it
// has every field non-empty and free of spaces, as lock_get_status writes
// them.
func FuzzLockLine(f *testing.F) {
	for _, seed := range []string{
		"1: POSIX  ADVISORY  WRITE 1234 00:2f:12345 0 EOF",
		"2: FLOCK  ADVISORY  READ 99 fd:00:77 0 EOF",
		"3: OFDLCK ADVISORY  READ -1 00:2f:12347 100 199",
		"\t4: -> POSIX  ADVISORY  WRITE 5 00:2f:1 0 EOF",
		"5: LEASE  ACTIVE    READ 7 08:01:9 0 EOF",
		"6: DELEG  ACTIVE    READ 8 <none>:0 0 EOF",
		"->",
		"1:",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if l, ok := parseLockLine(line); ok {
			for _, v := range []string{l.Type.String(), l.Mode.String(), l.Start, l.End} {
				if v == "" || strings.IndexFunc(v, unicode.IsSpace) >= 0 {
					t.Fatalf("%q: lock %+v has an empty or spaced field", line, l)
				}
			}
		}
		lockFile(line) // its results are checked by FuzzLockRoundTrip
	})
}

// FuzzLockRoundTrip: a lock written as the kernel writes it reads back to
// the same lock, and the same device and inode.
func FuzzLockRoundTrip(f *testing.F) {
	f.Add(1, false, "POSIX", "WRITE", 1234, uint32(0), uint32(0x2f), uint64(12345), uint64(0), uint64(0), true)
	f.Add(4, true, "FLOCK", "READ", -1, uint32(0xfd), uint32(1), uint64(77), uint64(100), uint64(199), false)
	f.Add(9, false, "LEASE", "UNLCK", 7, uint32(8), uint32(0xfffff), uint64(1)<<62, uint64(5), uint64(6), false)
	f.Fuzz(func(t *testing.T, n int, waiter bool, typ, mode string, pid int, major, minor uint32, ino, start, end uint64, eof bool) {
		major &= 0xfff
		minor &= 0xfffff
		const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		if typ == "" || mode == "" || strings.Trim(typ+mode, upper) != "" {
			return // the kernel writes fixed names: FLOCK, POSIX, OFDLCK, LEASE, DELEG; READ, WRITE, UNLCK
		}
		want := Lock{Type: LockType(typ), Mode: LockMode(mode), Start: fmt.Sprint(start), End: fmt.Sprint(end), Waiter: waiter}
		if eof {
			want.End = "EOF"
		}
		line := lockLine(n, waiter, want, pid, major, minor, ino)
		got, ok := parseLockLine(line)
		if !ok || got != want {
			t.Fatalf("%q read back as %+v (%v), want %+v", line, got, ok, want)
		}
		dev, gotIno, ok := lockFile(line)
		if !ok || dev != unix.Mkdev(major, minor) || gotIno != ino {
			t.Fatalf("%q: file %x:%d (%v), want %x:%d", line, dev, gotIno, ok, unix.Mkdev(major, minor), ino)
		}
	})
}
