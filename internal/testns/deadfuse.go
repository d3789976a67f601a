package testns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers for a FUSE server that stops answering (a bindfs daemon stopped
// with SIGSTOP, Fuse.Stop).

// RoleFileReader PATH: opens PATH and, on a thread of its own, reads its
// first bytes again and again, dropping the page cache before each read
// (posix_fadvise POSIX_FADV_DONTNEED) so that every read goes to the
// filesystem: on a FUSE mount whose daemon is stopped, the next read blocks
// in FUSE READ. Reports "ready" after the first read, then "read: ERRNO"
// when a read fails (after the connection is aborted: ENOTCONN, or EBADF
// once the fd is revoked), and keeps living.
const RoleFileReader = "file-reader"

// RoleVforkIn DIR: chdir(DIR), then RoleRevokeVfork: a thread sleeps in
// vfork(2) for good (D state, never reaching a ptrace stop), so every
// revoke of this holder of DIR's mount waits out the stop timeout.
// Reports "vfork child: PID" (kill it to end the sleep), then "ready".
const RoleVforkIn = "vfork-in"

func init() {
	RegisterRole(RoleFileReader, 1, fileReader)
	RegisterRole(RoleVforkIn, 1, func(args []string) error {
		if err := unix.Chdir(args[0]); err != nil {
			return err
		}
		return revokeVfork(nil)
	})
}

func fileReader(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	first := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		buf := make([]byte, 16)
		for i := 0; ; i++ {
			_ = unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
			_, err := unix.Pread(fd, buf, 0)
			if i == 0 {
				first <- err
				if err != nil {
					return
				}
				continue
			}
			if err != nil {
				say("read: %s", errName(err))
				forever()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if err := <-first; err != nil {
		return err
	}
	say("ready")
	forever()
	return nil
}

// InSyscall reports whether a thread of process pid sits in system call nr
// (/proc/PID/task/TID/syscall, proc(5): the number first, "running" when
// not in a call). Reading it does not touch the process's memory.
func InSyscall(pid int, nr int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(nr)+" ") {
			return true
		}
	}
	return false
}

// WaitInSyscall waits until a thread of pid sits in system call nr.
func WaitInSyscall(t testing.TB, pid, nr int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !InSyscall(pid, nr) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: no thread in system call %d after %v", pid, nr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuseCtl mounts fusectl at /sys/fs/fuse/connections inside the test's
// mount namespace (never the machine's: testns.Main runs every test in a
// private one), unless it is there already; the mount goes at cleanup.
// With it, a FUSE connection can be aborted by writing to
// /sys/fs/fuse/connections/N/abort.
func FuseCtl(t testing.TB) {
	t.Helper()
	Require(t, Namespace)
	const dir = "/sys/fs/fuse/connections"
	if FuseCtlMounted() {
		return
	}
	if err := unix.Mount("none", dir, "fusectl", 0, ""); err != nil {
		skipOrFail(t, "mounting fusectl at "+dir+": "+err.Error())
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
}

// NoFuseCtl makes sure fusectl is not mounted in the test's namespace (a
// FUSE connection can then be aborted only by umount2 MNT_FORCE).
func NoFuseCtl(t testing.TB) {
	t.Helper()
	Require(t, Namespace)
	for FuseCtlMounted() {
		if err := unix.Unmount("/sys/fs/fuse/connections", unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return
			}
			t.Fatalf("unmounting fusectl in the test namespace: %v", err)
		}
	}
}

// FuseCtlMounted reports whether fusectl is mounted at
// /sys/fs/fuse/connections in this namespace.
func FuseCtlMounted() bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "/sys/fs/fuse/connections" {
			return true
		}
	}
	return false
}

// Stopped reports whether process pid is stopped or traced: state T or t
// in /proc/PID/stat, or a TracerPid other than 0 in /proc/PID/status.
func Stopped(pid int) (bool, string) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, err.Error()
	}
	s := string(st)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		if c := s[i+2]; c == 'T' || c == 't' {
			return true, "state " + string(c)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err.Error()
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok && strings.TrimSpace(v) != "0" {
			return true, "traced by " + strings.TrimSpace(v)
		}
	}
	return false, ""
}

// Seized waits up to d for pid to be traced (TracerPid set: a revoke has
// seized it with PTRACE_SEIZE), and reports whether it was. Tests that
// must act while a revoke is under way wait for it so, not for a fixed
// time: the run's scan before the revoke takes long on a loaded machine.
func Seized(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		if stopped, why := Stopped(pid); stopped && strings.HasPrefix(why, "traced") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Released waits up to d for pid to be neither stopped nor traced: the
// tracer process finishes a revoke that mounttop stopped waiting for (a
// cancelled run, a quit) on its own, and gives up a holder that never
// stops at its stop timeout. It returns Stopped's last answer.
func Released(pid int, d time.Duration) (bool, string) {
	deadline := time.Now().Add(d)
	for {
		stopped, why := Stopped(pid)
		if !stopped || time.Now().After(deadline) {
			return !stopped, why
		}
		time.Sleep(20 * time.Millisecond)
	}
}
