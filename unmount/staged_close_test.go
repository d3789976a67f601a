package unmount

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// TestStagedClose runs the staged unmount with the close policy (ptrace
// revoke) against real victims: each must stay alive and see what fumount
// promises (EBADF on its fds, SIGSEGV on its mappings, cwd "/"), and the
// mount must be gone, verified.
func TestStagedClose(t *testing.T) {
	testns.Require(t, testns.Namespace)
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) (role string, args []string)
		check func(t *testing.T, h tracee)
	}{
		{"blocked in read on a FIFO", func(t *testing.T, dir string) (string, []string) {
			return testns.RoleFifoRead, []string{mkfifo(t, dir)}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "read: EBADF", 5*time.Second)
		}},
		{"touching a mapping", func(t *testing.T, dir string) (string, []string) {
			p := filepath.Join(dir, "mapped")
			writeFile(t, p, strings.Repeat("m", 4096))
			return testns.RoleRevokeMmapTouch, []string{p}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "fault", 5*time.Second)
		}},
		{"cwd in the mount", func(t *testing.T, dir string) (string, []string) {
			return testns.RoleCwd, []string{dir}
		}, func(t *testing.T, h tracee) {
			if cwd, err := os.Readlink("/proc/" + strconv.Itoa(h.pid) + "/cwd"); err != nil || cwd != "/" {
				t.Errorf("cwd %q %v, want /", cwd, err)
			}
		}},
		{"flock holder", func(t *testing.T, dir string) (string, []string) {
			return testns.RoleLock, []string{filepath.Join(dir, "lockfile"), "flock", "w"}
		}, nil},
		{"POSIX lock holder", func(t *testing.T, dir string) (string, []string) {
			return testns.RoleLock, []string{filepath.Join(dir, "lockfile"), "posix", "w"}
		}, nil},
		{"OFD lock holder", func(t *testing.T, dir string) (string, []string) {
			return testns.RoleLock, []string{filepath.Join(dir, "lockfile"), "ofd", "r"}
		}, nil},
		{"threads blocked in read", func(t *testing.T, dir string) (string, []string) {
			return testns.RoleThreads, []string{mkfifo(t, dir), "4"}
		}, func(t *testing.T, h tracee) {
			for i := 0; i < 4; i++ {
				h.v.WaitLine(t, "thread "+strconv.Itoa(i)+" read: EBADF", 5*time.Second)
			}
		}},
		{"re-opening by a relative path", func(t *testing.T, dir string) (string, []string) {
			writeFile(t, filepath.Join(dir, "f"), "x")
			return testns.RoleReopen, []string{dir, "f"}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "open: ENOENT", 5*time.Second) // its cwd is "/" now
		}},
		{"re-opening through a dirfd", func(t *testing.T, dir string) (string, []string) {
			writeFile(t, filepath.Join(dir, "f"), "x")
			return testns.RoleDirfd, []string{dir, "f"}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "open: EBADF", 5*time.Second) // the dirfd is closed
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testns.Tmpfs(t, "")
			role, args := tc.setup(t, dir)
			h := startHolder(t, role, args...)
			evs := staged(t, realUnmounter(t), dir, Plan{Policy: PolicyClose})
			requireGone(t, evs, dir)
			revoked := false
			for _, ev := range evs {
				if ev.PID == h.pid && (ev.Stage == StageRevoke || ev.Stage == StageDrain) && ev.Err == nil && strings.Contains(ev.What, "stopped for") {
					revoked = true
				}
			}
			if !revoked {
				t.Errorf("no revoke event for pid %d", h.pid)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
			time.Sleep(50 * time.Millisecond)
			if !alive(h.pid) {
				t.Fatalf("the holder died; it said %q", h.v.Seen())
			}
		})
	}
}

// tracee is a victim that is not a child of the test process: the test
// process traces it during a revoke, and for a tracee whose parent is in
// the tracer's thread group the kernel reports ptrace stops to every
// waiter there, so exec.Cmd.Wait would take them (testns.RoleRevokeHolder).
type tracee struct {
	v   *testns.Victim
	pid int
}

func startHolder(t *testing.T, role string, args ...string) tracee {
	t.Helper()
	v, pid := testns.StartTracee(t, role, args...)
	return tracee{v: v, pid: pid}
}

func alive(pid int) bool { return testns.Alive(pid) }

func mkfifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
