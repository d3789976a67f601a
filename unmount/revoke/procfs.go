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

	"mounttop/inspect"
)

// procFS is the /proc the tracer reads its tracees in (ProcRoot; "/proc"
// by default), as inspect.New takes its root: tests point it elsewhere.
// The file formats are parsed by inspect's parsers, so the revoke reads a
// mapping or an fd's flags exactly as the scan that found it did.
type procFS string

func (p procFS) task(pid, tid int) string { return fmt.Sprintf("%s/%d/task/%d", p, pid, tid) }

// fdLink is the magic link of fd in the fd table thread tid uses.
func (p procFS) fdLink(pid, tid, fd int) string { return fmt.Sprintf("%s/fd/%d", p.task(pid, tid), fd) }

func (p procFS) cwdLink(pid, tid int) string { return p.task(pid, tid) + "/cwd" }

// mapFile is the magic link of a mapping's file: only in /proc/PID, it
// reads the leader's mm (map_files needs CAP_SYS_ADMIN, proc(5)).
func (p procFS) mapFile(pid int, start, end uint64) string {
	return fmt.Sprintf("%s/%d/map_files/%x-%x", p, pid, start, end)
}

// mem is thread tid's memory: a leader that exited has no mm, so its own
// /proc/PID/mem reads nothing; a live thread's reads the process's.
func (p procFS) mem(pid, tid int) string { return p.task(pid, tid) + "/mem" }

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

func (p procFS) processStatus(pid int) (taskStatus, error) {
	return readStatus(fmt.Sprintf("%s/%d/status", p, pid))
}

func (p procFS) threadStatus(pid, tid int) (taskStatus, error) {
	return readStatus(p.task(pid, tid) + "/status")
}

// wchan is where thread tid sleeps in the kernel ("" when running or not
// known).
func (p procFS) wchan(pid, tid int) string {
	b, err := os.ReadFile(p.task(pid, tid) + "/wchan")
	if err != nil || string(b) == "0" {
		return ""
	}
	return string(b)
}

// startTime is the start time of process pid: /proc/PID/stat field 22
// (starttime, clock ticks after boot, proc(5)).
func (p procFS) startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", p, pid))
	if err != nil {
		return 0, err
	}
	start, err := parseStartTime(b)
	if err != nil {
		return 0, fmt.Errorf("%s/%d/stat: %w", p, pid, err)
	}
	return start, nil
}

// parseStartTime reads starttime from the text of a /proc/PID/stat. The
// command name in field 2 may hold spaces and parentheses, so fields are
// counted from the last ')'.
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

// threads returns the TIDs in /proc/PID/task, lowest first.
func (p procFS) threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("%s/%d/task", p, pid))
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

// taskMaps reads the maps through thread tid of process pid: a leader
// that exited has no mm any more (its /proc/PID/maps is empty), its live
// threads share the process's.
func (p procFS) taskMaps(pid, tid int) ([]mapping, error) {
	b, err := os.ReadFile(p.task(pid, tid) + "/maps")
	if err != nil {
		return nil, err
	}
	return parseMaps(b), nil
}

// parseMaps parses /proc/PID/maps line by line with inspect.ParseMapsLine:
// the path or pseudo-path ([vdso], [stack]) is the rest of the line as
// the kernel wrote it, spaces and tabs in a file's name kept. Lines it
// cannot read are skipped.
func parseMaps(b []byte) []mapping {
	var maps []mapping
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		l, ok := inspect.ParseMapsLine(line)
		if !ok {
			continue
		}
		maps = append(maps, mapping{start: l.Start, end: l.End, perms: l.Perms, inode: l.Inode, path: l.Path})
	}
	return maps
}

// fdInfo reads /proc/PID/task/TID/fdinfo/FD (proc(5)) with
// inspect.ParseFDInfo: its open flags (O_CLOEXEC among them) and mount
// ID, without touching the file. An error means the fd is not open.
func (p procFS) fdInfo(pid, tid, fd int) (inspect.FDInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/fdinfo/%d", p.task(pid, tid), fd))
	if err != nil {
		return inspect.FDInfo{}, err
	}
	return inspect.ParseFDInfo(b), nil
}

// mountinfo is process pid's /proc/PID/mountinfo.
func (p procFS) mountinfo(pid int) ([]byte, error) {
	return os.ReadFile(fmt.Sprintf("%s/%d/mountinfo", p, pid))
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
