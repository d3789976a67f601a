//go:build linux && amd64

package revoke

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
