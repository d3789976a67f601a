package unmount

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/unmount/release"
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
	// Anchor opens the directory of the mount point rel (see Anchor): rel
	// absolute from our root when base is nil, else relative to base's
	// directory and beneath it. It walks no further than that directory,
	// so it leaves an expiry mark on the mount alone. A symbolic link on
	// the way is ErrChanged. The caller closes the Anchor.
	Anchor(base *Anchor, rel string) (*Anchor, error)
	// MountIDAt is the unique ID of the top mount at a.Name in a's
	// directory, by statx(AT_SYMLINK_NOFOLLOW, STATX_MNT_ID_UNIQUE). It
	// crosses into that mount and so clears an expiry mark: never called
	// on the expire path.
	MountIDAt(a *Anchor) (inspect.MountID, error)
	// Umount2 is umount2(2) of a.Name from a's directory (fchdir on a
	// thread of its own), always with UMOUNT_NOFOLLOW.
	Umount2(a *Anchor, flags int) error
	// Self is the unique IDs of the mounts mounttop itself stands on: its
	// executable, its cwd, the /proc it reads.
	Self() (Own, error)

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
	// injection (placeholders or close, PROT_NONE mappings, cwd into an empty
	// directory), keeping it running.
	// It returns what was done (Revoked: figures, worded by internal/present).
	Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error)
	// OpenProcess opens a pidfd (pidfd_open(2)) on the process pid that
	// the scan saw start at startTicks (inspect.Holder.StartTicks), for
	// signals that reach that process or none. An error wrapping
	// ErrHolderGone: it exited, or its pid now names another process.
	OpenProcess(pid int, startTicks uint64) (Process, error)

	// UnmountCopy unmounts a copy of the mount in another mount namespace
	// (release.UnmountInNamespace): the namespace re-identified by its
	// inode, the copy by its parent directory's fd and mount IDs; flags is
	// 0 or MNT_DETACH.
	UnmountCopy(c release.Copy, flags int) error
	// DetachLoop detaches the loop device dev (LOOP_CLR_FD, loop(4)) if it
	// is still backed by the file the scan found, refusing one that is
	// mounted or otherwise claimed.
	DetachLoop(dev string, backing release.FileID) error
	// Swapoff stops swapping to the file at path (swapoff(2)) if the path
	// still leads, without a symbolic link, to the file the scan found.
	Swapoff(path string, file release.FileID) error
	// ClaimDevice opens the block device major:minor exclusively (O_EXCL)
	// and closes it again: nil when nothing claims it any more, an error
	// wrapping EBUSY while something does, ErrNotBlockDevice when the
	// filesystem has no block device. It returns the device node's path.
	ClaimDevice(major, minor int) (string, error)
	// WatchRoot puts an inotify watch (inotify(7), IN_UNMOUNT) on the
	// root of the mount m, reached from its mount point's anchored
	// directory and checked to be on the mount with unique ID m.ID, so
	// that after the unmount the engine can tell whether the filesystem
	// itself went (RootWatch). The watch pins no mount, so it does not
	// make the unmount EBUSY. The lookup crosses into the mount (it
	// clears an expiry mark: never on the expire path) and may reach its
	// server: the engine runs it bounded.
	WatchRoot(m *inspect.Mount) (RootWatch, error)
}

// RootWatch is an inotify watch on a mount's root inode. The kernel sends
// IN_UNMOUNT ("filesystem containing watched object was unmounted",
// inotify(7)) to every watch on a superblock when that superblock shuts
// down (generic_shutdown_super -> fsnotify_sb_delete), followed by
// IN_IGNORED as the watch is dropped; not when one of several mounts of it
// goes, since the superblock lives on while any mount (a bind mount, a
// copy in another namespace, a detached mount still held, an overlay's
// private clone) or a kernel user (a loop device's backing file) keeps it.
// So IN_UNMOUNT says the filesystem is released, whatever filesystem is
// given its freed anonymous device number (0:N) afterwards.
type RootWatch interface {
	// Unmounted reads the events queued, waiting at most wait for one:
	// unmounted when IN_UNMOUNT came; lost when the watch went away
	// without it (IN_IGNORED alone, IN_Q_OVERFLOW) or could not be read,
	// in which case nothing can be told from it.
	Unmounted(wait time.Duration) (unmounted, lost bool)
	// Close closes the inotify instance (and with it the watch).
	Close()
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
	// File: the mount is a bind-mounted file, fenced by an empty read-only
	// file (a mount of a file stacks only with one of a file).
	File bool

	// Top is the target's parent directory, where the fence is the top
	// mount; Real is where the real mount sits now: the stash's root with
	// Name "mnt" (FenceBeneath), or Top itself, under the fence
	// (FenceOver). Both are opened when the fence goes up and kept until
	// it is gone, so the final unmount, the rollback and the fence's
	// removal work from them and never walk a path again (nil in a fake
	// that needs none).
	Top, Real *Anchor
	// stashAt is the stash's own mount point in the directory it was made
	// in (FenceBeneath).
	stashAt *Anchor
}

// Close lets go of every fd the fence holds: when it is gone, or rolled
// back (the directory fds pin the parent mount and the stash).
func (f *Fence) Close() {
	f.Top.Close()
	f.Real.Close()
	f.stashAt.Close()
}

// Own is what mounttop itself stands on, by unique mount ID: the mounts of
// its executable, its cwd and the /proc it reads. Unmounting one from under
// itself is refused (Prepare); 0 means unknown.
type Own struct {
	Exe, Cwd, Proc inspect.MountID
}

// Process is one holder process, held by a pidfd: once it exits, Signal
// gives ESRCH, even if its pid was given to another process meanwhile
// (pidfd_send_signal(2)).
type Process interface {
	Signal(sig unix.Signal) error
	Close() error
}

// Range is a mapped address range [Start, End).
type Range struct{ Start, End uint64 }

// RevokeTargets is what to take away from one holder process, and which
// process and mounts they were found on, so that the revoker acts only on
// what was inspected.
type RevokeTargets struct {
	FDs  []int   // take these fds away (placeholder, or close)
	Maps []Range // replace with PROT_NONE anonymous memory
	// ThreadFDs are fds in one thread's own fd table (unshare(2)
	// CLONE_FILES), or of a process whose leader exited, by thread id:
	// taken away by calls made in that thread.
	ThreadFDs map[int][]int
	CwdTIDs   []int // threads whose cwd is on the mount: moved into an empty read-only directory on no mounted tree
	// Placeholder: dup3 an O_PATH fd of that empty directory over each fd
	// instead of closing it, so the number stays taken (the default of
	// PolicyClose; PolicyClosePlain closes).
	Placeholder bool
	// StartTime is the holder's start time from the scan
	// (inspect.Holder.StartTicks): a pid now naming a process started at
	// another time is left alone (ErrHolderGone).
	StartTime uint64
	// Mounts are the unique IDs of every mount the run targets (the mount
	// and its submounts), CopyIDs the reusable IDs of their copies in
	// other mount namespaces: once the process is stopped, the revoker
	// checks each fd, mapping and cwd again and leaves alone, reporting
	// it, what no longer lies on one of them (an fd number reused
	// meanwhile).
	Mounts  []inspect.MountID
	CopyIDs []int
	// InjectTimeout is how long one injected syscall may take before the
	// revoke is answered as stuck (the holder left inside it, restored
	// when it returns): the staged run's CallTimeout, cut to what is left
	// of its --timeout. Zero: the revoker's own (10s).
	InjectTimeout time.Duration
}

// Empty reports whether there is nothing to revoke.
func (t RevokeTargets) Empty() bool {
	return len(t.FDs) == 0 && len(t.Maps) == 0 && len(t.CwdTIDs) == 0 && len(t.ThreadFDs) == 0
}
