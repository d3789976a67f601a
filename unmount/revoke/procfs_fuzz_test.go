//go:build linux && amd64

package revoke

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mounttop/inspect"
)

// statusText formats /proc/PID/status as fs/proc/array.c proc_pid_status
// does, with the lines the tracer reads among others; the command name is
// escaped as the kernel escapes it there (newline and backslash in octal).
func statusText(name string, state byte, tgid, tracer, seccomp int) string {
	var esc strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] == '\n' || name[i] == '\\' {
			fmt.Fprintf(&esc, "\\%03o", name[i])
			continue
		}
		esc.WriteByte(name[i])
	}
	return fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\t%c (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t1\nTracerPid:\t%d\n"+
		"Uid:\t0\t0\t0\t0\nVmRSS:\t  1234 kB\nThreads:\t3\nNoNewPrivs:\t0\nSeccomp:\t%d\nSeccomp_filters:\t%d\n",
		esc.String(), state, tgid, tgid, tracer, seccomp, seccomp)
}

// FuzzStatus: any status text is read without a panic; one as the kernel
// writes it gives back the state, thread group, tracer and seccomp mode
// whatever the command name holds (it is chosen by the process:
// "State:\tX" or "Seccomp:\t2" inside it must not count).
func FuzzStatus(f *testing.F) {
	f.Add("sleep", byte('S'), 42, 0, 0, []byte("Name:\tx\nState:\tR (running)\nTgid:\t1\n"))
	f.Add("x\nState:\tZ\nTracerPid:\t1", byte('t'), 7, 99, 2, []byte("State:\nTgid:x\n:\nSeccomp:\t-1"))
	f.Add("\x1b]0;x\x07\\", byte('D'), 1<<22, 1, 1, []byte(nil))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, name string, state byte, tgid, tracer, seccomp int, raw []byte) {
		path := filepath.Join(dir, fmt.Sprintf("status-%d", os.Getpid()))
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readStatus(path); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if !strings.ContainsRune("RSDTtXZPIWK", rune(state)) || tgid < 0 || tracer < 0 || strings.Contains(name, "\x00") {
			return // the kernel writes a state letter, pids and a C string
		}
		seccomp &= 3
		text := statusText(name, state, tgid, tracer, seccomp)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := readStatus(path)
		want := taskStatus{tgid: tgid, state: state, tracerPid: tracer, seccomp: seccomp}
		if err != nil || st != want {
			t.Fatalf("%q read back as %+v (%v), want %+v", text, st, err, want)
		}
	})
}

// mapsText formats /proc/PID/maps lines as fs/proc/task_mmu.c show_map_vma
// does: the path (a newline in it escaped) from column 74, or nothing.
func mapsText(maps []mapping) string {
	var b strings.Builder
	for _, m := range maps {
		line := fmt.Sprintf("%08x-%08x %s %08x %02x:%02x %d ", m.start, m.end, m.perms, 0, 0, 0x2f, m.inode)
		if m.path != "" {
			line += strings.Repeat(" ", max(0, 73-len(line))) + m.path
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// FuzzMaps: any maps text is read without a panic; lines as the kernel
// writes them read back to their range, permissions, inode and path, the
// path exactly (spaces in it included), so that "[vdso]" is found only where
// the kernel wrote it.
func FuzzMaps(f *testing.F) {
	f.Add(uint64(0x7ffd1000), uint64(0x7ffd3000), "r-xp", uint64(0), "[vdso]", "/mnt/a  b (deleted)", []byte("00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\n"))
	f.Add(uint64(1), uint64(2), "rw-s", uint64(1)<<63, "/x [vdso]", "", []byte("1-2 r 0 0:0\n-\n\n1-2 3 4 5 6 7 8"))
	f.Fuzz(func(t *testing.T, start, end uint64, perms string, inode uint64, path1, path2 string, raw []byte) {
		parseMaps(raw)
		if len(perms) != 4 || strings.ContainsAny(perms, " \n") {
			return // four letters: rwxp, r--s, ...
		}
		want := []mapping{{start: start, end: end, perms: perms, inode: inode}, {start: end, end: end + 4096, perms: perms}}
		for i, p := range []string{path1, path2} {
			p = strings.ReplaceAll(p, "\n", `\012`) // seq_file_path(m, file, "\n")
			if p != "" && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "[") {
				p = "/" + p // a file's path is absolute; a pseudo-path is bracketed
			}
			want[i].path = p
		}
		text := mapsText(want)
		got := parseMaps([]byte(text))
		if len(got) != len(want) {
			t.Fatalf("%q: %d mappings, want %d", text, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%q: mapping %d = %+v, want %+v", text, i, got[i], want[i])
			}
		}
	})
}

// FuzzFDFlags: the octal flags of an fdinfo file (inspect.ParseFDInfo,
// which the revoke reads an fd's FD_CLOEXEC with) read back, whatever the
// lines around them; any text is read without a panic.
func FuzzFDFlags(f *testing.F) {
	f.Add(uint64(0o2100002), []byte("pos:\t0\nflags:\t02100002\nmnt_id:\t30\n"))
	f.Add(uint64(0), []byte("flags:\t9\nflags: 1"))
	f.Fuzz(func(t *testing.T, flags uint64, raw []byte) {
		inspect.ParseFDInfo(raw)
		flags &= 0o77777777
		text := fmt.Sprintf("pos:\t4096\nflags:\t0%o\nmnt_id:\t41\nino:\t12\nlock:\t1: FLOCK  ADVISORY  WRITE 99 00:2f:12 0 EOF\n", flags)
		if fi := inspect.ParseFDInfo([]byte(text)); fi.Flags != flags || fi.MntID != 41 {
			t.Fatalf("%q: flags %o, mnt_id %d, want %o, 41", text, fi.Flags, fi.MntID, flags)
		}
	})
}

// FuzzStartTime: the start time the tracer compares with the scan's once
// the holder is seized is read back from a /proc/PID/stat line as
// fs/proc/array.c do_task_stat writes it (the command name in parentheses
// may hold ')' and spaces); any text parses without a panic.
func FuzzStartTime(f *testing.F) {
	f.Add(42, "sleep", uint64(12), []byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0"))
	f.Add(7, ") S 1 (x", uint64(1)<<40, []byte("7 (a) b) R"))
	f.Add(9, "\x1b[2J\n\u202e", uint64(0), []byte("("))
	f.Fuzz(func(t *testing.T, pid int, comm string, start uint64, raw []byte) {
		_, _ = parseStartTime(raw)
		if strings.Contains(comm, "\x00") {
			return // comm is a C string
		}
		line := fmt.Sprintf("%d (%s) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %d 1000 200 18446744073709551615\n", pid, comm, start)
		got, err := parseStartTime([]byte(line))
		if err != nil || got != start {
			t.Fatalf("%q read back as %d (%v), want %d", line, got, err, start)
		}
	})
}
