package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func init() {
	// container: starts the test binary as a container's init: in new
	// pid and mount namespaces (a copy of ours, so it holds a copy of
	// every mount), where it mounts a proc of its own on /proc. Prints
	// "child PID" (the pid as we see it) before "ready".
	testns.RegisterRole("container", 0, func(args []string) error {
		runtime.LockOSThread() // PDEATHSIG follows the forking thread
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		child := exec.Command(exe)
		child.Env = append(os.Environ(), "MOUNTTOP_TEST_VICTIM=container-init")
		child.Stdout = w
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL, Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
		if err := child.Start(); err != nil {
			return err
		}
		w.Close()
		buf := make([]byte, 64)
		n, _ := r.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "ready") {
			return fmt.Errorf("container init said %q", buf[:n])
		}
		testns.Say("child %d", child.Process.Pid)
		testns.Say("ready")
		testns.Forever()
		return nil
	})
	// container-init: pid 1 of its pid namespace; makes its mounts
	// private (nothing propagates back) and mounts its own /proc.
	testns.RegisterRole("container-init", 0, func(args []string) error {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return err
		}
		if os.Getpid() != 1 {
			return fmt.Errorf("pid %d, not 1: no new pid namespace", os.Getpid())
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

// TestReleaseIntoContainerWithItsOwnProc: a copy of the target in a
// container (new pid and mount namespaces, its own /proc mounted) is
// unmounted there by --release: the release reads nothing from /proc
// after entering the namespace (where mounttop's thread has no entry), and
// the run ends with the mount gone and the copy gone from the container.
func TestReleaseIntoContainerWithItsOwnProc(t *testing.T) {
	testns.Require(t, testns.RealRoot) // CLONE_NEWPID and the setns into the container
	dir := testns.Tmpfs(t, "")
	var child int
	// Registered first, so it runs after the victim's own cleanup killed
	// the role (and with it, by PDEATHSIG, the container's init): a
	// container dying, or a zombie left of it, must not meet the next
	// test's scan (its namespace unreadable, its root and cwd would be
	// uses of mounts in no table).
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); child != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); err != nil {
				return
			}
		}
		if child != 0 {
			t.Errorf("the container's init (pid %d) outlived the test", child)
		}
	})
	v := testns.StartVictim(t, "container")
	fmt.Sscanf(v.WaitLine(t, "child", time.Second), "child %d", &child)
	if !copyIn(t, child, dir) {
		t.Fatalf("the container (pid %d) has no copy of %s", child, dir)
	}
	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--release", "--interval", "50ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "done: unmount its copy at "+dir) || strings.Contains(r.stdout, "failed") {
		t.Errorf("no successful release of the copy:\n%s", r.stdout)
	}
	if copyIn(t, child, dir) {
		t.Errorf("the container still has its copy of %s", dir)
	}
}

// copyIn reports whether pid's mount namespace has a mount at dir (read
// through our /proc, which sees the container's processes).
func copyIn(t *testing.T, pid int, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
