// Package release frees a mount from holders that are not processes' uses:
// a copy of it in another mount namespace, a loop device backed by a file on
// it, a swap file on it: what present.KernelHolderAction tells the operator
// to do for an inspect.KernelHolder, and the unmount of an inspect.Copy.
package release

import (
	"errors"
	"fmt"
	"mounttop/inspect"
	"os"
	"path"
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

// ErrChanged: what the release would act on is no longer what was
// inspected (another namespace behind the pid, a path led elsewhere,
// another mount or file there).
var ErrChanged = errors.New("not what was inspected")

// Copy is a copy of a mount in another mount namespace, as inspected.
type Copy struct {
	PID         int    // a process living in that namespace (the way in)
	Namespace   uint64 // the namespace's inode, mnt:[Namespace]
	Mountpoint  string // where the copy is mounted there, from that process's root
	OldID       int    // the copy's mount ID (mountinfo field 1)
	ParentOldID int    // its parent mount's
	// Dev is the copy's filesystem (st_dev, mountinfo's major:minor). The
	// 32-bit mount ID of mountinfo is reused (the lowest free one is
	// handed out again): a copy unmounted after the scan and a masking
	// mount made in its place can carry its ID, never its filesystem.
	Dev uint64
}

// UnmountInNamespace unmounts the copy c inside its mount namespace, with
// umount2 flags (0 or MNT_DETACH; always UMOUNT_NOFOLLOW), acting only on
// what was inspected and walking no path the namespace's owner controls
// (a container's root can put a symbolic link or a mount anywhere on the
// way, and umount2(2) by path would follow it to, say, a masking mount):
//
//   - a pidfd of c.PID is opened first; /proc/PID/ns/mnt and /proc/PID/root
//     are opened after it, and the pidfd is asked afterwards whether the
//     process still lives (pidfd_send_signal(2) with signal 0), so both
//     belong to that very process and not to a later one with its pid;
//   - the namespace's inode (fstat of the ns file) must be c.Namespace;
//   - the copy's parent directory is opened from that root with openat2(2)
//     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; it
//     must lie on c.ParentOldID, and the top mount at the last component
//     must be c.OldID (statx STATX_MNT_ID; the fd pins the parent, so the
//     ID cannot be reused meanwhile) with the copy's filesystem c.Dev
//     (the copy's own ID may have been reused since the scan);
//   - then, on a thread of its own: unshare(CLONE_FS), setns(2) into the
//     namespace (which moves the thread's root and cwd to the namespace's
//     root), fchdir to the parent directory fd, umount2 of the last
//     component.
//
// setns(2) into a mount namespace changes the calling thread only and needs
// it not to share its fs_struct, so this runs on a goroutine locked to its
// own OS thread that first unshare(CLONE_FS)s, and that exits without
// unlocking, so the Go runtime throws the thread away instead of reusing it
// in the wrong namespace (DESIGN.md, other namespaces). The main thread is
// never the one that moves (onThrownAwayThread), whether or not the
// program locked its main goroutine there (cmd/mounttop does, in init).
func UnmountInNamespace(c Copy, flags int) error {
	op := "unmount in the namespace of pid " + fmt.Sprint(c.PID)
	fail := func(err error) error { return &Error{op, c.Mountpoint, err} }
	dir, name, err := c.identified()
	if err != nil {
		return fail(err)
	}
	ns, err := openNamespace(c.PID)
	if err != nil {
		return fail(err)
	}
	defer ns.close()
	if err := ns.isTheOneInspected(c.PID, c.Namespace); err != nil {
		return fail(err)
	}
	parentfd, err := ns.findParent(dir)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(parentfd)
	if err := c.isAtParent(parentfd, dir, name); err != nil {
		return fail(err)
	}
	if err := ns.unmount(parentfd, name, flags); err != nil {
		return fail(err)
	}
	return nil
}

// identified splits the copy's mount point into its parent directory and
// last component, the name umount2 is given from the parent, and checks
// that the scan identified the copy fully: both mount IDs, its filesystem
// and its namespace. A mount point that is not absolute and clean, or
// has no last component ("/"), cannot be unmounted that way.
func (c Copy) identified() (dir, name string, err error) {
	dir, name = path.Split(c.Mountpoint)
	if !path.IsAbs(c.Mountpoint) || name == "" || name == "." || name == ".." || path.Clean(c.Mountpoint) != c.Mountpoint {
		return "", "", fmt.Errorf("%s has no last component to unmount by", termsafe.Quote(c.Mountpoint))
	}
	if c.OldID == 0 || c.ParentOldID == 0 || c.Namespace == 0 || c.Dev == 0 {
		return "", "", errors.New("the copy was not fully identified when inspected (mount IDs, filesystem and namespace needed)")
	}
	return dir, name, nil
}

// namespace is the way into another mount namespace through one process
// living there: a pidfd of it, its /proc/PID/ns/mnt and its root.
type namespace struct {
	pidfd, nsfd, rootfd int
}

// openNamespace opens the way into pid's mount namespace: a pidfd first,
// then /proc/PID/ns/mnt and /proc/PID/root, then asks the pidfd whether
// the process still lives (pidfd_send_signal(2), signal 0). If it does,
// both files belong to that very process, not to a later one given its
// pid.
func openNamespace(pid int) (*namespace, error) {
	ns := &namespace{pidfd: -1, nsfd: -1, rootfd: -1}
	var err error
	if ns.pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
		return nil, fmt.Errorf("%w: pid %d: %w", ErrChanged, pid, err)
	}
	if ns.nsfd, err = unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		ns.close()
		return nil, err
	}
	if ns.rootfd, err = unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		ns.close()
		return nil, err
	}
	if err := unix.PidfdSendSignal(ns.pidfd, 0, nil, 0); err != nil {
		ns.close()
		return nil, fmt.Errorf("%w: pid %d exited (%w)", ErrChanged, pid, err)
	}
	return ns, nil
}

func (ns *namespace) close() {
	for _, fd := range []int{ns.rootfd, ns.nsfd, ns.pidfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// isTheOneInspected checks that the namespace opened is the one the scan
// saw the copy in: the ns file's inode is its mnt:[inode] (namespaces(7)).
// The process may have moved to another namespace since (setns, unshare).
func (ns *namespace) isTheOneInspected(pid int, want uint64) error {
	var st unix.Stat_t
	if err := unix.Fstat(ns.nsfd, &st); err != nil {
		return err
	}
	if st.Ino != want {
		return fmt.Errorf("%w: pid %d is in mount namespace mnt:[%d] now, not mnt:[%d]", ErrChanged, pid, st.Ino, want)
	}
	return nil
}

// findParent opens the copy's parent directory dir from the namespace's
// root, O_PATH, with openat2(2) RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS: the namespace's owner controls every component
// on the way, and a symbolic link or a ".." out of its root is refused
// rather than followed.
func (ns *namespace) findParent(dir string) (int, error) {
	rel := strings.TrimPrefix(strings.TrimSuffix(dir, "/"), "/")
	if rel == "" {
		rel = "."
	}
	parentfd, err := unix.Openat2(ns.rootfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	switch {
	case errors.Is(err, unix.ELOOP):
		return -1, fmt.Errorf("%w: a component of %s is a symbolic link there now (ELOOP)", ErrChanged, termsafe.Quote(dir))
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV):
		return -1, fmt.Errorf("%w: %s: %w", ErrChanged, termsafe.Quote(dir), err)
	case err != nil:
		return -1, err
	}
	return parentfd, nil
}

// isAtParent checks the mount IDs and the filesystem against the scan's:
// the parent directory (open in parentfd, which pins it, so its ID cannot
// be reused meanwhile) lies on the copy's parent mount, and the top mount
// at name is the copy (statx STATX_MNT_ID) with the copy's filesystem
// (st_dev): the copy may have been unmounted since and its 32-bit ID given
// to a masking mount made there, which never has its filesystem.
func (c Copy) isAtParent(parentfd int, dir, name string) error {
	if id, _, err := oldMountID(parentfd, "", unix.AT_EMPTY_PATH); err != nil {
		return err
	} else if id != c.ParentOldID {
		return fmt.Errorf("%w: %s lies on mount %d there now, not on the copy's parent %d (something was mounted over the way)",
			ErrChanged, termsafe.Quote(dir), id, c.ParentOldID)
	}
	id, dev, err := oldMountID(parentfd, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: %w", ErrChanged, termsafe.Quote(c.Mountpoint), err)
	case id != c.OldID:
		return fmt.Errorf("%w: the top mount at %s there is mount %d, not the copy %d", ErrChanged, termsafe.Quote(c.Mountpoint), id, c.OldID)
	case dev != c.Dev:
		return fmt.Errorf("%w: mount %d at %s there is another filesystem (%d:%d) than the copy's (%d:%d): its ID was reused",
			ErrChanged, id, termsafe.Quote(c.Mountpoint), unix.Major(dev), unix.Minor(dev), unix.Major(c.Dev), unix.Minor(c.Dev))
	}
	return nil
}

// unmount unmounts name in parentfd inside the namespace, on a thread
// thrown away afterwards (onThrownAwayThread): unshare(CLONE_FS), since
// setns(2) into a mount namespace refuses a thread sharing its fs_struct;
// setns, which moves the thread's root and cwd to the namespace's root;
// fchdir to the checked parent; umount2(2) of the last component with
// UMOUNT_NOFOLLOW, so no path the owner controls is walked.
func (ns *namespace) unmount(parentfd int, name string, flags int) error {
	return onThrownAwayThread(func() error {
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare(CLONE_FS): %w", err)
		}
		if err := unix.Setns(ns.nsfd, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		if err := unix.Fchdir(parentfd); err != nil {
			return fmt.Errorf("fchdir: %w", err)
		}
		return unix.Unmount(name, flags|unix.UMOUNT_NOFOLLOW)
	})
}

// oldMountID is the reusable mount ID (statx STATX_MNT_ID, the one
// mountinfo shows) of name in dirfd and the device of the filesystem it
// is on, answered from the cache (AT_STATX_DONT_SYNC).
func oldMountID(dirfd int, name string, flags int) (int, uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(dirfd, name, flags|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, 0, errors.New("no mount ID from statx")
	}
	return int(stx.Mnt_id), unix.Mkdev(stx.Dev_major, stx.Dev_minor), nil
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

// FileID is a file's identity: its device (as unix.Mkdev makes it) and
// inode number.
type FileID struct {
	Dev, Ino uint64
}

func (f FileID) String() string {
	return fmt.Sprintf("%d:%d inode %d", unix.Major(f.Dev), unix.Minor(f.Dev), f.Ino)
}

// ErrRefused: the release was not attempted (the loop device is itself
// mounted or claimed).
var ErrRefused = errors.New("refused")

// DetachLoop detaches the loop device dev (LOOP_CLR_FD, loop(4)) if it
// is still backed by the file the scan found. The device is opened with
// O_EXCL first: a block device opened exclusively fails with EBUSY while a
// filesystem on it is mounted (in any namespace, detached or not) or
// device-mapper/md claims it (open(2)). Such a device is refused:
// LOOP_CLR_FD would only set autoclear and the backing file would stay
// held. On that exclusive fd, LOOP_GET_STATUS64 gives the backing file's
// device and inode, which must be want's: a device detached and set up
// again since the scan (another file at the same path, say) is refused.
// Nobody can mount the device between the check and the detach. The
// detach completes when the last opener closes the device, so the mount
// may stay busy a moment after.
func DetachLoop(dev string, want FileID) error {
	fail := func(err error) error { return &Error{"detach loop", dev, err} }
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return fail(fmt.Errorf("%w: the loop device is itself mounted or claimed (device-mapper, md, swap); unmount it first", ErrRefused))
	}
	if err != nil {
		return fail(err)
	}
	defer unix.Close(fd)
	if want.Ino == 0 {
		return fail(fmt.Errorf("%w: the scan did not identify the backing file", ErrChanged))
	}
	st, err := unix.IoctlLoopGetStatus64(fd)
	if errors.Is(err, unix.ENXIO) {
		return fail(fmt.Errorf("%w: the loop device is not attached to any file now", ErrChanged))
	}
	if err != nil {
		return fail(fmt.Errorf("LOOP_GET_STATUS64: %w", err))
	}
	if got := (FileID{Dev: st.Device, Ino: st.Inode}); got != want {
		return fail(fmt.Errorf("%w: it is backed by another file now (%s, not %s as inspected)", ErrChanged, got, want))
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0); err != nil {
		return fail(err)
	}
	return nil
}

// Swapoff stops swapping to the swap file at p (swapoff(2)) if p still
// leads to the file inspected: the file is opened O_PATH with openat2(2)
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, its device and inode must be
// want's and /proc/swaps must list it, and then swapoff is given
// /proc/self/fd/N: swapoff(2) resolves its path argument, and that magic
// link leads to the checked file whatever happens to p meanwhile. Its pages
// move back to memory, which can take time and fails with ENOMEM when
// memory is short.
func Swapoff(p string, want FileID) error {
	fail := func(err error) error { return &Error{"swapoff", p, err} }
	if want.Ino == 0 {
		return fail(fmt.Errorf("%w: the scan did not identify the swap file", ErrChanged))
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	switch {
	case errors.Is(err, unix.ELOOP):
		return fail(fmt.Errorf("%w: a component of the path is a symbolic link now (ELOOP)", ErrChanged))
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return fail(fmt.Errorf("%w: %w", ErrChanged, err))
	case err != nil:
		return fail(err)
	}
	defer unix.Close(fd)
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &stx); err != nil {
		return fail(err)
	}
	if got := (FileID{Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}); got != want {
		return fail(fmt.Errorf("%w: the path leads to another file now (%s, not %s as inspected)", ErrChanged, got, want))
	}
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		return fail(err)
	}
	if !listedSwap(string(b), p) {
		return fail(fmt.Errorf("%w: /proc/swaps does not list it", ErrChanged))
	}
	link, err := unix.BytePtrFromString(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return fail(err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(link)), 0, 0); errno != 0 {
		return fail(errno)
	}
	return nil
}

// listedSwap reports whether /proc/swaps (proc(5); names octal-escaped
// like mountinfo's) lists the file p.
func listedSwap(swaps, p string) bool {
	for i, line := range strings.Split(swaps, "\n") {
		// The kernel escapes only " \t\n\\" in the path (seq_file_path)
		// and pads with spaces and tabs: a carriage return or a Unicode
		// space is part of a name, not a separator (strings.Fields would
		// read "/a\rfile" as "/a" of type "file").
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if i > 0 && len(f) >= 2 && f[1] == "file" && inspect.UnescapeSeqPath(f[0]) == p {
			return true
		}
	}
	return false
}
