//go:build linux && amd64

package revoke

import (
	"bufio"
	"bytes"
	"fmt"
	"mounttop/inspect"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// injected describes an injected syscall for a StuckError, taken before it
// runs: once close(2) is under way the fd is gone from the table, and with
// it the way to its mount.
type injected struct {
	nr    uintptr
	arg   string
	mntID int // fdinfo mnt_id of the fd it closes; 0 when none
}

// describe is what call(nr, args) is about to do to process pid. For the
// calls that close a file (close, and dup3 over a fd) it reads the fd's
// mnt_id from /proc/PID/fdinfo (proc(5)), which does not touch the file.
func describe(pid int, nr uintptr, args []uintptr) injected {
	arg := func(i int) uintptr {
		if i < len(args) {
			return args[i]
		}
		return 0
	}
	in := injected{nr: nr}
	fd := -1
	switch nr {
	case unix.SYS_CLOSE:
		fd = int(int32(arg(0)))
	case unix.SYS_DUP3:
		fd = int(int32(arg(1)))
	case unix.SYS_MMAP, unix.SYS_MUNMAP:
		in.arg = fmt.Sprintf("%#x, %d", arg(0), arg(1))
	case unix.SYS_CHDIR, unix.SYS_OPENAT:
		in.arg = "\"/\""
	}
	if fd >= 0 {
		in.arg = fmt.Sprintf("fd %d", fd)
		in.mntID = fdMountID(pid, fd)
	}
	return in
}

// syscallName names the syscalls the revoke injects.
func syscallName(nr uintptr) string {
	switch nr {
	case unix.SYS_CLOSE:
		return "close"
	case unix.SYS_DUP3:
		return "dup3"
	case unix.SYS_MMAP:
		return "mmap"
	case unix.SYS_MUNMAP:
		return "munmap"
	case unix.SYS_CHDIR:
		return "chdir"
	case unix.SYS_OPENAT:
		return "openat"
	}
	return "syscall " + strconv.Itoa(int(nr))
}

// fdMountID is the mnt_id line of /proc/PID/fdinfo/FD, 0 if unreadable.
func fdMountID(pid, fd int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			id, _ := strconv.Atoi(strings.TrimSpace(v))
			return id
		}
	}
	return 0
}

// mountByID finds mount id in process pid's /proc/PID/mountinfo (proc(5)):
// its filesystem type and mount point. Reading mountinfo never touches a
// filesystem. A mount detached since is not there: ok false.
func mountByID(pid, id int) (fstype, mountpoint string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return "", "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	want := strconv.Itoa(id)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != want {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				return fields[i+1], inspect.UnescapeSeqPath(fields[4]), true
			}
		}
	}
	return "", "", false
}

// stuckError says which injected syscall thread th is left inside.
func (s *session) stuckError(th *thread, in injected) *StuckError {
	e := &StuckError{PID: s.pid, TID: th.tid, Syscall: syscallName(in.nr), Arg: in.arg, After: s.injectTimeout()}
	if in.mntID != 0 {
		e.FSType, e.Mount, _ = mountByID(s.pid, in.mntID)
	}
	return e
}
