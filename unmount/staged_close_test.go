package unmount

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/mountapi"
	"mounttop/internal/testns"
)

// TestStagedClose runs the staged unmount with the close policies (ptrace
// revoke) against real victims: each must stay alive and see what fumount
// promises (EBADF on its fds, SIGSEGV on its mappings, its cwd in an empty
// directory on no mount of ours), and the mount must be gone, verified.
func TestStagedClose(t *testing.T) {
	testns.Require(t, testns.Namespace)
	cases := []struct {
		name   string
		policy Policy // PolicyClose if 0
		setup  func(t *testing.T, dir string) (role string, args []string)
		check  func(t *testing.T, h tracee)
	}{
		{"blocked in read on a FIFO", 0, func(t *testing.T, dir string) (string, []string) {
			return testns.RoleFifoRead, []string{mkfifo(t, dir)}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "read: EBADF", 5*time.Second)
		}},
		{"touching a mapping", 0, func(t *testing.T, dir string) (string, []string) {
			p := filepath.Join(dir, "mapped")
			writeFile(t, p, strings.Repeat("m", 4096))
			return testns.RoleRevokeMmapTouch, []string{p}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "fault", 5*time.Second)
		}},
		{"cwd in the mount", 0, func(t *testing.T, dir string) (string, []string) {
			return testns.RoleCwd, []string{dir}
		}, func(t *testing.T, h tracee) {
			// readlink shows the root of the empty tmpfs as "/"; it is
			// on no mount of this namespace.
			link := "/proc/" + strconv.Itoa(h.pid) + "/cwd"
			var stx unix.Statx_t
			if err := unix.Statx(unix.AT_FDCWD, link, unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
				t.Fatal(err)
			}
			ids, err := mountapi.ListMounts()
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(ids, stx.Mnt_id) {
				t.Errorf("cwd on mount %d, one of this namespace's", stx.Mnt_id)
			}
		}},
		{"flock holder", 0, func(t *testing.T, dir string) (string, []string) {
			return testns.RoleLock, []string{filepath.Join(dir, "lockfile"), "flock", "w"}
		}, nil},
		{"POSIX lock holder", 0, func(t *testing.T, dir string) (string, []string) {
			return testns.RoleLock, []string{filepath.Join(dir, "lockfile"), "posix", "w"}
		}, nil},
		{"OFD lock holder", 0, func(t *testing.T, dir string) (string, []string) {
			return testns.RoleLock, []string{filepath.Join(dir, "lockfile"), "ofd", "r"}
		}, nil},
		{"threads blocked in read", 0, func(t *testing.T, dir string) (string, []string) {
			return testns.RoleThreads, []string{mkfifo(t, dir), "4"}
		}, func(t *testing.T, h tracee) {
			for i := 0; i < 4; i++ {
				h.v.WaitLine(t, "thread "+strconv.Itoa(i)+" read: EBADF", 5*time.Second)
			}
		}},
		{"re-opening by a relative path", 0, func(t *testing.T, dir string) (string, []string) {
			writeFile(t, filepath.Join(dir, "f"), "x")
			return testns.RoleReopen, []string{dir, "f"}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "open: ENOENT", 5*time.Second) // its cwd is the empty directory now
		}},
		{"re-opening through a dirfd", 0, func(t *testing.T, dir string) (string, []string) {
			writeFile(t, filepath.Join(dir, "f"), "x")
			return testns.RoleDirfd, []string{dir, "f"}
		}, func(t *testing.T, h tracee) {
			h.v.WaitLine(t, "open: ENOENT", 5*time.Second) // the dirfd's placeholder is the empty directory
		}},
		{"re-opening through a dirfd, plain close", PolicyClosePlain, func(t *testing.T, dir string) (string, []string) {
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
			policy := tc.policy
			if policy == 0 {
				policy = PolicyClose
			}
			evs := staged(t, realUnmounter(t), dir, Plan{Policy: policy})
			requireGone(t, evs, dir)
			revoked := false
			for _, ev := range evs {
				if ev.PID == h.pid && (ev.Stage == StageRevoke || ev.Stage == StageDrain) && ev.Err == nil && strings.Contains(whatOf(ev), "stopped for") {
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
