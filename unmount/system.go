package unmount

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
)

// System is everything the unmount code asks of the kernel. The real one
// (NewSystem) makes the system calls; tests of the event sequence use a fake.
// Methods are in the operator's terms (fence, revoke, signal), one system
// call or one small fixed sequence each, so that the order of calls is the
// engine's and can be asserted.
type System interface {
	// Scan reads the mount table and the holders of the mounts of interest
	// (inspect.Scan).
	Scan(ctx context.Context) (*inspect.Snapshot, error)
	// Mounts reads the mount table only. It walks no path, so it is safe
	// between the two steps of an expire.
	Mounts(ctx context.Context) (*inspect.Snapshot, error)
	// StatMount looks the mount up by unique ID with statmount(2), walking
	// no path; an error wrapping unix.ENOENT means it is gone from this
	// namespace (statmount does not find detached mounts either).
	StatMount(id inspect.MountID) (parent inspect.MountID, err error)
	// MountIDAt is the unique ID of the mount at path, by
	// statx(AT_SYMLINK_NOFOLLOW, STATX_MNT_ID_UNIQUE). It walks the path
	// and so clears an expiry mark: never called on the expire path.
	MountIDAt(path string) (inspect.MountID, error)
	// Umount2 is umount2(2); the caller always includes UMOUNT_NOFOLLOW.
	Umount2(path string, flags int) error
	// Self is the unique ID of the mounts holding this process's
	// executable and cwd: those are never unmounted from under ourselves.
	Self() (exe, cwd inspect.MountID, err error)

	// Fence stops new opens by path on the target (see Fence).
	Fence(target *inspect.Mount, over bool) (*Fence, error)
	// OpenRoot opens the root of the mount at path for reading, through
	// an O_PATH fd checked to be on the mount with unique ID id: the fd
	// syncfs(2) needs. On FUSE that is an OPENDIR request, on NFS a
	// revalidation: it blocks while the server does not answer, so the
	// engine runs it bounded (internal/bounded).
	OpenRoot(path string, id inspect.MountID) (*os.File, error)
	// Syncfs flushes the filesystem of root (syncfs(2)); root stays open.
	// It waits on the server: the engine runs it bounded.
	Syncfs(root *os.File) error
	// Statfs opens path with O_PATH (which asks nothing of the
	// filesystem), checks that it lies on the mount with unique ID id and
	// asks the filesystem for fstatfs(2), which only its server can
	// answer: the probe (Probe). It blocks while the server does not
	// answer; the engine runs it bounded.
	Statfs(path string, id inspect.MountID) error
	// FuseWaiting is the number of requests waiting for an answer on FUSE
	// connection conn (/sys/fs/fuse/connections/CONN/waiting); an error
	// wrapping fs.ErrNotExist when fusectl is not mounted or there is no
	// such connection.
	FuseWaiting(conn uint64) (int, error)
	// AbortFuse aborts FUSE connection conn (a write to
	// /sys/fs/fuse/connections/CONN/abort): every request fails at once
	// with ENOTCONN, blocked callers return.
	AbortFuse(conn uint64) error
	// Rollback undoes a fence: the real mount is back at the target and
	// the fence is gone.
	Rollback(f *Fence) error
	// RemoveFence unmounts the fence tmpfs and the stash.
	RemoveFence(f *Fence) error

	// Revoke takes a holder's uses of the mount away by ptrace syscall
	// injection (close, PROT_NONE mappings, chdir "/"), keeping it running.
	// It returns what was done, in words.
	Revoke(ctx context.Context, pid int, t RevokeTargets) (string, error)
	// Signal sends sig to pid (through a pidfd, so a recycled pid is not hit
	// once the pidfd is open).
	Signal(pid int, sig unix.Signal) error

	// UnmountCopy unmounts the mount at mountpoint in the mount namespace
	// of process pid (setns(2) on a thrown-away thread), after checking
	// that its mount ID there is still oldID; flags is 0 or MNT_DETACH.
	UnmountCopy(pid int, mountpoint string, oldID int, flags int) error
	// DetachLoop detaches the loop device dev (LOOP_CLR_FD, loop(4)),
	// refusing one that is mounted or otherwise claimed.
	DetachLoop(dev string) error
	// Swapoff stops swapping to the file at path (swapoff(2)).
	Swapoff(path string) error
}

// FenceKind is how a fence was put up.
type FenceKind int

const (
	// FenceBeneath: an empty read-only tmpfs was mounted beneath the target
	// (move_mount(2) MOVE_MOUNT_BENEATH, Linux 6.5+) and the real mount
	// moved to a private stash directory. Only possible when the parent
	// mount is not shared (move_mount gives EINVAL otherwise).
	FenceBeneath FenceKind = iota + 1
	// FenceOver: an empty read-only tmpfs was mounted on top of the target.
	// Used when the parent is shared; it propagates to the peers, which
	// fences their copies too.
	FenceOver
)

func (k FenceKind) String() string {
	if k == FenceOver {
		return "over-mount"
	}
	return "beneath-swap"
}

// Fence is a fenced mount: where the empty tmpfs is and where the real mount
// now lives. New opens by path of anything under Target get ENOENT, creates
// EROFS; existing fds, cwds and mappings keep working until revoked.
// A fence is never a lazy unmount: with MNT_DETACH creates would land in the
// directory underneath, and the final unmount could no longer report errors.
type Fence struct {
	Kind     FenceKind
	Target   string          // the mount point the operator named
	FenceID  inspect.MountID // the empty tmpfs
	RealID   inspect.MountID // the fenced mount itself
	Stash    string          // FenceBeneath: the private 0700 directory (a private bind of itself)
	RealPath string          // where the real mount can be named now (Stash/mnt, or Target under FenceOver)
}

// Range is a mapped address range [Start, End).
type Range struct{ Start, End uint64 }

// RevokeTargets is what to take away from one holder process.
type RevokeTargets struct {
	FDs         []int   // close (or placeholder) these fds
	Maps        []Range // replace with PROT_NONE anonymous memory
	CwdTIDs     []int   // threads whose cwd is on the mount: chdir("/")
	Placeholder bool    // dup3 an O_PATH placeholder over each fd instead of closing it
	// Mount, if set, is the unique ID the targets were found on: the
	// revoker checks each again once the process is stopped and leaves
	// alone what no longer lies there (an fd number reused meanwhile).
	Mount inspect.MountID
}

// Empty reports whether there is nothing to revoke.
func (t RevokeTargets) Empty() bool {
	return len(t.FDs) == 0 && len(t.Maps) == 0 && len(t.CwdTIDs) == 0
}
