package inspect

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func readAll(path string) ([]byte, error) { return os.ReadFile(path) }

// readLockedFiles returns the set of files (device, inode) that have a lock
// in /proc/locks, so the scan reads fdinfo only for fds on those files.
func readLockedFiles(path string) (map[devIno]bool, error) {
	b, err := readAll(path)
	if err != nil {
		return nil, err
	}
	out := map[devIno]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if dev, ino, ok := lockFile(line); ok {
			out[devIno{dev, ino}] = true
		}
	}
	return out, nil
}

// parseLockLine parses one lock as /proc/locks and fdinfo print it
// (fs/locks.c lock_get_status):
//
//	"1: POSIX  ADVISORY  WRITE 1234 00:2f:12345 0 EOF"
//	"2: -> FLOCK  ADVISORY  WRITE 99 08:01:77 0 EOF"   (a blocked waiter)
func parseLockLine(line string) (Lock, bool) {
	f := strings.Fields(line)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:]
	}
	var l Lock
	if len(f) > 0 && f[0] == "->" {
		l.Waiter = true
		f = f[1:]
	}
	if len(f) < 7 {
		return Lock{}, false
	}
	l.Type, l.Mode = LockType(f[0]), LockMode(f[2]) // f[1]: ADVISORY, or a lease's ACTIVE/BREAKING
	l.Start, l.End = f[5], f[6]
	return l, true
}

// lockFile extracts the locked file's device and inode ("MAJ:MIN:INODE",
// hex device numbers) from a /proc/locks line.
func lockFile(line string) (dev, ino uint64, ok bool) {
	f := strings.Fields(line)
	for i, s := range f {
		if i < 4 {
			continue
		}
		parts := strings.Split(s, ":")
		if len(parts) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(parts[0], 16, 32)
		min, err2 := strconv.ParseUint(parts[1], 16, 32)
		in, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil {
			return unix.Mkdev(uint32(maj), uint32(min)), in, true
		}
	}
	return 0, 0, false
}
