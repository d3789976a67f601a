package testns

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// envPIDNS names the test that runs as pid 1 of a pid namespace of its own.
const envPIDNS = "MOUNTTOP_TESTNS_PIDNS"

// InNewPIDNamespace runs the calling test again, alone, as pid 1 of a new
// pid namespace (clone(2) CLONE_NEWPID, with a new mount namespace and a
// /proc mounted for it), where a test can hand a pid to a new process on
// purpose: writing N-1 to /proc/sys/kernel/ns_last_pid makes the next
// fork get N (pid_namespaces(7)). Nothing else runs there, so that holds.
//
// It returns true in that copy, where the test goes on; in the test
// itself it returns false once the copy has ended, logging its output and
// failing (or skipping) as the copy did. Call it first, from a top-level
// test (no subtests: the copy is selected by -test.run).
func InNewPIDNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envPIDNS) == t.Name() {
		if os.Getpid() != 1 {
			t.Fatalf("not pid 1 of a new pid namespace (pid %d)", os.Getpid())
		}
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			t.Fatalf("mounting /proc for the new pid namespace: %v", err)
		}
		return true
	}
	Require(t, Namespace)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envPIDNS+"="+t.Name())
	var out strings.Builder
	cmd.Stdout = &lockedWriter{w: &out}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL}
	if err := onSpawnThread(cmd.Start); err != nil {
		t.Fatalf("starting the test in a new pid namespace: %v", err)
	}
	err = cmd.Wait()
	t.Logf("in a new pid namespace:\n%s", out.String())
	switch {
	case err != nil:
		t.Fatalf("the test failed in its pid namespace: %v", err)
	case strings.Contains(out.String(), "--- SKIP: "+t.Name()):
		t.Skip("skipped in its pid namespace")
	case !strings.Contains(out.String(), "--- PASS: "+t.Name()):
		t.Fatal("the test did not run in its pid namespace")
	}
	return false
}
