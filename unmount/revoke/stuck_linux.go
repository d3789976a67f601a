//go:build linux && amd64

package revoke

import (
	"bufio"
	"bytes"
	"fmt"
	"mounttop/inspect"
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

// describe is what call(nr, args) is about to do in thread th. For the
// calls that close a targeted file (close, and dup3 over a fd) the mount
// is the fd's mnt_id as verify read it from fdinfo (proc(5)), which does
// not touch the file; the revoke's own fds (the socketpair's, the empty
// directory's) have none that matters.
func (s *session) describe(th *thread, nr uintptr, args []uintptr) injected {
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
	case unix.SYS_CLOSE_RANGE:
		in.arg = fmt.Sprintf("fds %d-%d", int32(arg(0)), int32(arg(1)))
	case unix.SYS_MMAP, unix.SYS_MUNMAP:
		in.arg = fmt.Sprintf("%#x, %d", arg(0), arg(1))
	case unix.SYS_CHDIR, unix.SYS_OPENAT:
		in.arg = "\"/\""
	}
	if fd >= 0 {
		in.arg = fmt.Sprintf("fd %d", fd)
		in.mntID = s.fds[fdKey{th.tid, fd}].MntID
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
	case unix.SYS_CLOSE_RANGE:
		return "close_range"
	}
	return "syscall " + strconv.Itoa(int(nr))
}

// mountByID finds mount id in process pid's /proc/PID/mountinfo (proc(5)):
// its filesystem type and mount point. Reading mountinfo never touches a
// filesystem. A mount detached since is not there: ok false.
func (p procFS) mountByID(pid, id int) (fstype, mountpoint string, ok bool) {
	b, err := p.mountinfo(pid)
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
		e.FSType, e.Mount, _ = s.proc.mountByID(s.pid, in.mntID)
	}
	return e
}
