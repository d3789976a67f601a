//go:build linux && amd64

package revoke

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// taskStatus is what the tracer needs from /proc/PID[/task/TID]/status
// (proc(5)).
type taskStatus struct {
	tgid      int
	state     byte // R S D T t Z X ...
	tracerPid int
	seccomp   int // 0 off, 1 strict, 2 filter
}

func readStatus(path string) (taskStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return taskStatus{}, err
	}
	var st taskStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if v != "" {
				st.state = v[0]
			}
		case "Tgid":
			st.tgid, _ = strconv.Atoi(v)
		case "TracerPid":
			st.tracerPid, _ = strconv.Atoi(v)
		case "Seccomp":
			st.seccomp, _ = strconv.Atoi(v)
		}
	}
	return st, nil
}

func processStatus(pid int) (taskStatus, error) {
	return readStatus(fmt.Sprintf("/proc/%d/status", pid))
}

func threadStatus(pid, tid int) (taskStatus, error) {
	return readStatus(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
}

// startTime is the start time of process pid: /proc/PID/stat field 22
// (starttime, clock ticks after boot, proc(5)). The command name in field
// 2 may hold spaces and parentheses, so fields are counted from the last
// ')'.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	start, err := parseStartTime(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return start, nil
}

// parseStartTime reads starttime from the text of a /proc/PID/stat.
func parseStartTime(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 22-2 {
		return 0, errors.New("short")
	}
	return strconv.ParseUint(f[22-3], 10, 64)
}

// listThreads returns the TIDs in /proc/PID/task, lowest first.
func listThreads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	perms      string
	inode      uint64
	path       string
}

func readMaps(pid int) ([]mapping, error) {
	return readTaskMaps(pid, pid)
}

// readTaskMaps reads the maps through thread tid of process pid: a leader
// that exited has no mm any more (its /proc/PID/maps is empty), its live
// threads share the process's.
func readTaskMaps(pid, tid int) ([]mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/maps", pid, tid))
	if err != nil {
		return nil, err
	}
	return parseMaps(b), nil
}

// parseMaps parses /proc/PID/maps: "start-end perms offset dev inode",
// then, padded with spaces, the path or pseudo-path ([vdso], [stack]) to
// the end of the line, kept as the kernel wrote it. Lines it cannot read
// are skipped.
func parseMaps(b []byte) []mapping {
	var maps []mapping
	for _, raw := range bytes.Split(b, []byte("\n")) {
		line := string(raw)
		var f [5]string
		for i := range f {
			line = strings.TrimLeft(line, " ")
			f[i], line, _ = strings.Cut(line, " ")
		}
		if f[4] == "" {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		var m mapping
		var err error
		if m.start, err = strconv.ParseUint(lo, 16, 64); err != nil {
			continue
		}
		if m.end, err = strconv.ParseUint(hi, 16, 64); err != nil {
			continue
		}
		m.perms = f[1]
		m.inode, _ = strconv.ParseUint(f[4], 10, 64)
		m.path = strings.TrimLeft(line, " ")
		maps = append(maps, m)
	}
	return maps
}

// fdCloexec reports whether fd of pid has FD_CLOEXEC, from the flags line
// of /proc/PID/fdinfo/FD (octal, O_CLOEXEC included: proc(5)).
func fdCloexec(pid, fd int) bool {
	return taskFDCloexec(pid, pid, fd)
}

// taskFDCloexec is fdCloexec for fd in the fd table of thread tid.
func taskFDCloexec(pid, tid, fd int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/fdinfo/%d", pid, tid, fd))
	if err != nil {
		return false
	}
	flags, ok := fdFlags(b)
	return ok && flags&unix.O_CLOEXEC != 0
}

// fdFlags returns the open flags of an fdinfo file's "flags:" line.
func fdFlags(b []byte) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return flags, err == nil
		}
	}
	return 0, false
}

// mountOf returns the unique mount ID of what the /proc magic link at path
// points to. statx follows the link to the target without opening it, also
// when the mount is detached (DESIGN.md); AT_STATX_DONT_SYNC keeps a dead
// network or FUSE server from blocking us. ok is false where the kernel has
// no unique mount IDs (before 6.8).
func mountOf(path string) (id uint64, ok bool, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return 0, false, err
	}
	if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		return 0, false, nil
	}
	return stx.Mnt_id, true, nil
}

// oldMountOf returns the reusable mount ID (mountinfo field 1) of what the
// /proc magic link at path points to, like mountOf (statx(2)
// STATX_MNT_ID, Linux 5.8).
func oldMountOf(path string) (int, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, fmt.Errorf("statx %s: no mount ID", path)
	}
	return int(stx.Mnt_id), nil
}

// errnoName is an errno in the words the operator sees elsewhere ("EBADF").
func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return e.Error()
}
