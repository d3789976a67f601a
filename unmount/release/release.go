// Package release frees a mount from holders that are not processes' uses:
// a copy of it in another mount namespace, a loop device backed by a file on
// it, a swap file on it. Each is the action inspect.KernelHolder and
// inspect.Copy name.
package release

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"mounttop/internal/termsafe"
)

// Error is a failed release action, with what was attempted.
type Error struct {
	Op     string // "unmount in namespace", "detach loop", "swapoff"
	Target string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, termsafe.Quote(e.Target), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrChanged: the namespace's mount at that path is not the one inspected.
var ErrChanged = errors.New("the mount there is no longer the one inspected")

// UnmountInNamespace unmounts the mount at mountpoint inside the mount
// namespace of process pid, with umount2 flags (0 or MNT_DETACH; always
// UMOUNT_NOFOLLOW). wantOldID is the copy's mount ID as inspected (from
// /proc/PID/mountinfo); it is re-checked inside the namespace right before
// the call, and 0 skips the check.
//
// setns(2) into a mount namespace changes the calling thread only and needs
// it not to share its fs_struct, so this runs on a goroutine locked to its
// own OS thread that first unshare(CLONE_FS)s, and that exits without
// unlocking, so the Go runtime throws the thread away instead of reusing it
// in the wrong namespace (DESIGN.md, other namespaces). The main thread is
// never the one that moves (onThrownAwayThread), whether or not the
// program locked its main goroutine there (cmd/mounttop does, in init).
func UnmountInNamespace(pid int, mountpoint string, wantOldID int, flags int) error {
	op := "unmount in the namespace of pid " + fmt.Sprint(pid)
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{op, mountpoint, err}
	}
	defer unix.Close(nsfd)
	err = onThrownAwayThread(func() error {
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare(CLONE_FS): %w", err)
		}
		if err := unix.Setns(nsfd, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		if wantOldID != 0 {
			id, ok, err := topMountAt("/proc/thread-self/mountinfo", mountpoint)
			if err != nil {
				return err
			}
			if !ok || id != wantOldID {
				return ErrChanged
			}
		}
		return unix.Unmount(mountpoint, flags|unix.UMOUNT_NOFOLLOW)
	})
	if err != nil {
		return &Error{op, mountpoint, err}
	}
	return nil
}

// onThrownAwayThread runs fn on a goroutine locked to an OS thread that is
// never unlocked, so the thread ends with it and nothing else ever runs in
// what fn did to it. Never on the main thread: Go does not end that one
// (it parks it for good), and /proc/self follows the thread-group leader,
// so the whole process would read its mount table from the namespace fn
// entered. If the goroutine lands there (a program that did not lock its
// main goroutine to the main thread), it keeps the main thread locked while
// another goroutine, which therefore runs elsewhere, does the work.
func onThrownAwayThread(fn func() error) error {
	done := make(chan error, 1)
	go lockedRun(fn, done)
	return <-done
}

// lockedRun is the body of onThrownAwayThread's goroutine.
func lockedRun(fn func() error, done chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		done <- fn() // returns locked: the thread ends
		return
	}
	inner := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends
		inner <- fn()
	}()
	done <- <-inner
	runtime.UnlockOSThread()
}

// topMountAt returns the ID of the topmost mount at mountpoint in a
// mountinfo file (proc(5)), without walking the path.
func topMountAt(mountinfo, mountpoint string) (int, bool, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	type ent struct{ id, parent int }
	var at []ent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescape(fields[4]) != mountpoint {
			continue
		}
		var e ent
		fmt.Sscan(fields[0], &e.id)
		fmt.Sscan(fields[1], &e.parent)
		at = append(at, e)
	}
	if err := sc.Err(); err != nil {
		return 0, false, err
	}
	if len(at) == 0 {
		return 0, false, nil
	}
	top := at[0]
	for _, e := range at[1:] {
		if e.parent == top.id {
			top = e
		}
	}
	return top.id, true, nil
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// DetachLoop detaches a loop device (LOOP_CLR_FD, loop(4)), releasing its
// backing file. It refuses a loop device that is itself mounted: detaching
// it would only turn into autoclear, and the file would stay held.
func DetachLoop(dev string, mounted bool) error {
	if mounted {
		return &Error{"detach loop", dev, errors.New("the loop device is itself mounted; unmount it first")}
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{"detach loop", dev, err}
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0); err != nil {
		return &Error{"detach loop", dev, err}
	}
	return nil
}

// Swapoff stops swapping to a swap file (swapoff(2)): its pages move back
// to memory, which can take time and fails with ENOMEM when memory is short.
func Swapoff(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return &Error{"swapoff", path, err}
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return &Error{"swapoff", path, errno}
	}
	return nil
}
