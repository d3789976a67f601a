// Package testns is mounttop's real-kernel test harness: it runs a package's
// tests inside a private mount namespace that dies with them, builds real
// mounts there (tmpfs, bind, loop-mounted ext4, FUSE via bindfs), and starts
// real victim processes from the test binary itself.
//
// Every package whose tests mount anything calls Main from TestMain:
//
//	func TestMain(m *testing.M) { testns.Main(m) }
//
// Main re-executes the test binary in a new mount namespace with private
// propagation (unshare(CLONE_NEWNS), see mount_namespaces(7)); when not root
// it adds a user namespace mapping the caller to root, so tmpfs, bind and
// FUSE mounts work unprivileged. Nothing mounted in there can reach the
// machine's own namespace, and it all goes away when the last process in it
// exits.
package testns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	envInNS   = "MOUNTTOP_TESTNS"      // "root" or "userns" once inside
	envNoNS   = "MOUNTTOP_TESTNS_NONE" // why no namespace could be made
	envVictim = "MOUNTTOP_TEST_VICTIM" // a victim role to run instead of tests
	// envTracer is unmount/revoke's mark of a tracer process (TracerMain):
	// a test binary started as one whose TestMain does not call
	// revoke.TracerMain must not run its tests instead.
	envTracer = "MOUNTTOP_REVOKE_TRACER"
)

// init keeps a victim's main goroutine on the main thread, the
// thread-group leader. A role that unshares or enters a namespace
// (unshare(2) CLONE_NEWNS, setns(2)) changes only the calling thread, while
// /proc/PID/mountinfo and /proc/PID/root, which the tests read, follow the
// leader: run on another thread, such a role leaves the leader in the
// tests' namespace, and a test would then act on its own mount as if it
// were the victim's copy. Only an init function is guaranteed to run on
// the main thread (runtime.LockOSThread); TestMain may already have moved.
func init() {
	if os.Getenv(envVictim) != "" {
		runtime.LockOSThread()
	}
}

// Main runs a victim role if this process is one, otherwise the package's
// tests inside a private mount namespace. It never returns.
func Main(m *testing.M) {
	if os.Getenv(envTracer) != "" {
		fmt.Fprintln(os.Stderr, "testns: started as a revoke tracer process, but TestMain does not call revoke.TracerMain")
		os.Exit(2)
	}
	if role := os.Getenv(envVictim); role != "" {
		os.Exit(runVictim(role, os.Args[1:]))
	}
	if os.Getenv(envInNS) != "" || os.Getenv(envNoNS) != "" {
		if os.Getenv(envInNS) != "" {
			// Belt and braces: Go's Unshareflags already does this for
			// CLONE_NEWNS; a namespace made with CLONE_NEWUSER gets slave
			// mounts; private leaves nothing to propagate either way.
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				fmt.Fprintf(os.Stderr, "testns: making / private: %v\n", err)
				os.Exit(1)
			}
			// A /run of the tests' own: the staged fence's stash and the
			// fallback journal go to /run, a tmpfs shared by every mount
			// namespace, so a test that kills mounttop mid-run would leave
			// its directories in the machine's /run.
			if err := unix.Mount("testns-run", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
				fmt.Fprintf(os.Stderr, "testns: a private /run: %v\n", err)
				os.Exit(1)
			}
		}
		os.Exit(m.Run())
	}
	os.Exit(reexec())
}

func reexec() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testns: %v\n", err)
		return 1
	}
	run := func(attr *syscall.SysProcAttr, mode string) (int, error) {
		cmd := exec.Command(exe, os.Args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), envInNS+"="+mode)
		cmd.SysProcAttr = attr
		attr.Pdeathsig = unix.SIGKILL
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), nil
		}
		return 0, err
	}
	var code int
	if os.Geteuid() == 0 {
		code, err = run(&syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS}, "root")
	} else {
		code, err = run(&syscall.SysProcAttr{
			Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
			GidMappingsEnableSetgroups: false,
		}, "userns")
	}
	if err == nil {
		return code
	}
	// No namespace to be had: run the tests that need none; the others
	// skip (or fail under CI) through Require.
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envNoNS+"="+strings.ReplaceAll(err.Error(), "\n", " "))
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 1
	}
	return 0
}

// Privilege names what a test needs from the harness.
type Privilege int

const (
	// Namespace: a private mount namespace (root or user namespace);
	// enough for tmpfs and bind mounts, ptrace of our own victims, FUSE.
	Namespace Privilege = iota
	// RealRoot: root in the initial user namespace; needed for loop
	// devices, ext4, swap and map_files.
	RealRoot
)

// Require skips the test when the privilege is missing, naming why; under
// CI (CI=true) a missing privilege is a failure instead, so a green CI run
// means every test ran.
func Require(t testing.TB, p Privilege) {
	t.Helper()
	var why string
	switch {
	case os.Getenv(envNoNS) != "":
		why = "no private mount namespace: " + os.Getenv(envNoNS)
	case os.Getenv(envInNS) == "":
		why = "not running under testns.Main"
	case p == RealRoot && os.Getenv(envInNS) != "root":
		why = "needs root in the initial user namespace (loop devices, ext4)"
	}
	if why == "" {
		return
	}
	skipOrFail(t, why)
}

// skipOrFail skips a test that lacks a privilege, or fails it under CI.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI: a required privilege is missing: %s", why)
	}
	t.Skip(why)
}

// RequireTool is Require for an external program (bindfs, mkfs.ext4).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI: %s is not installed (.ci/run should install it)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// IsRealRoot reports whether the tests run as root of the initial user
// namespace.
func IsRealRoot() bool { return os.Getenv(envInNS) == "root" }
