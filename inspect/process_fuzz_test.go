package inspect

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// statLine formats /proc/PID/stat as fs/proc/array.c do_task_stat does,
// with the fields a scan reads set and the others 0.
func statLine(pid int, comm string, state byte, flags uint64, threads int, start uint64) string {
	f := make([]string, 52-2) // fields 3..52
	for i := range f {
		f[i] = "0"
	}
	f[0] = string(state)
	f[9-3] = fmt.Sprint(flags)
	f[20-3] = fmt.Sprint(threads)
	f[22-3] = fmt.Sprint(start)
	return fmt.Sprintf("%d (%s) %s\n", pid, comm, strings.Join(f, " "))
}

// FuzzStat: any text parses without a panic; a stat line as the kernel
// writes it reads back to its fields whatever the command name holds
// (spaces, parentheses, newlines, escapes: it is chosen by the process).
func FuzzStat(f *testing.F) {
	f.Add(42, "sleep", byte('S'), uint64(0x400100), 1, uint64(4242), []byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0"))
	f.Add(7, ") S 1 (x", byte('D'), uint64(pfKthread), 3, uint64(1)<<40, []byte("7 (a) b) R"))
	f.Add(9, "\x1b[2J\n\u202e", byte('T'), uint64(0), 0, uint64(0), []byte("("))
	f.Fuzz(func(t *testing.T, pid int, comm string, state byte, flags uint64, threads int, start uint64, raw []byte) {
		if st, err := parseStat(raw); err == nil && st.state == 0 && !strings.Contains(string(raw), "\x00") {
			t.Fatalf("%q: parsed with no state", raw)
		}
		if !strings.ContainsRune("RSDTtXZPIWKxw", rune(state)) || strings.Contains(comm, "\x00") {
			return // the state is one of these letters (fs/proc/array.c task_state_array); comm is a C string
		}
		line := statLine(pid, comm, state, flags, threads, start)
		st, err := parseStat([]byte(line))
		want := procStat{comm: comm, state: state, flags: flags, threads: threads, start: start}
		if err != nil || st != want {
			t.Fatalf("%q read back as %+v (%v), want %+v", line, st, err, want)
		}
	})
}

// FuzzFDInfo: an fdinfo file as the kernel writes it (fs/proc/fd.c
// seq_show, then the file's own lines and locks) reads back to its mount
// ID, inode and locks; any text parses without a panic.
func FuzzFDInfo(f *testing.F) {
	f.Add(0o2100002, 41, uint64(12345), 2, []byte("pos:\t0\nflags:\t02\nmnt_id:\t30\nino:\t7\n"))
	f.Add(0o100000, 1<<30, uint64(1)<<63, 0, []byte("lock:\t1: FLOCK  ADVISORY  WRITE 99 00:2f:12 0 EOF\nmnt_id:x\nino:\n:"))
	f.Fuzz(func(t *testing.T, flags, mntID int, ino uint64, nlocks int, raw []byte) {
		parseFDInfo(raw)
		if mntID < 0 {
			return // an unsigned int in the kernel
		}
		nlocks = nlocks & 3
		text := fmt.Sprintf("pos:\t0\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n", flags&0o7777777, mntID, ino)
		var want []Lock
		for i := 0; i < nlocks; i++ {
			l := Lock{Type: []LockType{LockPOSIX, LockFlock, LockOFD}[i%3], Mode: "WRITE", Start: fmt.Sprint(i * 10), End: "EOF"}
			want = append(want, l)
			text += "lock:\t" + lockLine(i+1, false, l, 99, 0, 0x2f, ino) + "\n"
		}
		fi := parseFDInfo([]byte(text))
		if fi.mntID != mntID || fi.ino != ino || len(fi.locks) != len(want) {
			t.Fatalf("%q read back as %+v", text, fi)
		}
		for i := range want {
			if fi.locks[i] != want[i] {
				t.Fatalf("%q: lock %d = %+v, want %+v", text, i, fi.locks[i], want[i])
			}
		}
	})
}

// FuzzUserFiles: the registered files of an io_uring fdinfo as
// io_uring/fdinfo.c writes them read back exactly (index and path, octal
// escapes undone), and the section ends at the next unindented line.
func FuzzUserFiles(f *testing.F) {
	f.Add("/mnt/a b/data", "/tmp/\x1b]0;x\x07\\", []byte("SqMask:\t0x3\nUserFiles:\t1\n    0: /x\nUserBufs:\t0\n"))
	f.Add("/", "/\n:\t ", []byte("UserFiles:\t2\n   x: /y\n 00000: \nUserFiles:"))
	f.Fuzz(func(t *testing.T, path1, path2 string, raw []byte) {
		for _, u := range parseUserFiles(raw) {
			if u.index < 0 {
				t.Fatalf("%q: index %d", raw, u.index)
			}
		}
		text := "SqMask:\t0x3\nSqHead:\t0\nUserFiles:\t3\n"
		want := []userFile{{0, path1}, {1000, ""}, {123456, path2}}
		for _, u := range want {
			text += fmt.Sprintf("%5d: %s\n", u.index, mangle(u.path, seqEsc))
		}
		text += "UserBufs:\t1\n    0: 0x7f0000001000/4096\nPollList:\n"
		got := parseUserFiles([]byte(text))
		if len(got) != len(want) {
			t.Fatalf("%q: user files %+v, want %+v", text, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%q: user file %d = %+v, want %+v", text, i, got[i], want[i])
			}
		}
	})
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// FuzzCgroup: the v2 line of /proc/PID/cgroup gives the path exactly, also
// after v1 lines; the unit found is one component of it with a unit's
// suffix, and the container ID is 64 hex digits found in it.
func FuzzCgroup(f *testing.F) {
	f.Add("/system.slice/nginx.service", true, []byte("0::/init.scope\n"))
	f.Add("/kubepods/burstable/pod1/"+strings.Repeat("ab", 32)+"/x.scope", false, []byte("12:name=systemd:/a\n1:cpu:/b"))
	f.Add("/user.slice/user-0.slice/session-1.scope/\x1b[2J:\u202e", true, []byte("0::\n0::"))
	f.Fuzz(func(t *testing.T, path string, v1 bool, raw []byte) {
		if c := parseCgroup(raw); strings.Contains(c, "\n") {
			t.Fatalf("%q: cgroup %q spans lines", raw, c)
		}
		if strings.Contains(path, "\n") {
			return // the kernel's cgroup paths are names in cgroupfs: no newline
		}
		text := "0::" + path + "\n"
		if v1 {
			text = "12:name=systemd:/elsewhere\n3:cpu,cpuacct:/x\n" + text
		}
		got := parseCgroup([]byte(text))
		if got != path {
			t.Fatalf("%q: cgroup %q, want %q", text, got, path)
		}
		unit, container := unitOf(got)
		parts := strings.Split(got, "/")
		if unit != "" && !contains(parts, unit) {
			t.Fatalf("unitOf(%q): unit %q is not a component", got, unit)
		}
		if container != "" && (!hex64.MatchString(container) || !strings.Contains(got, container)) {
			t.Fatalf("unitOf(%q): container %q", got, container)
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
