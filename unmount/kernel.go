package unmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/mountapi"
	"mounttop/unmount/release"
)

// kernel is the real System: system calls against the caller's mount
// namespace.
type kernel struct {
	in      *inspect.Inspector
	revoker Revoker
	// stashRoot is where FenceBeneath makes its private directory; empty
	// picks the first of /run, os.TempDir(), / that is not on the target.
	stashRoot string
}

// Revoker takes a holder's uses away (see System.Revoke). The real one
// injects system calls with ptrace (unmount/revoke).
type Revoker interface {
	Revoke(ctx context.Context, pid int, t RevokeTargets) (string, error)
}

// NewSystem returns the real System: in reads the mount table and the
// holders, r revokes (nil: revoking fails and the holder is reported as
// not revocable, so only the signal policy can move it).
func NewSystem(in *inspect.Inspector, r Revoker, opts ...SystemOption) System {
	k := &kernel{in: in, revoker: r}
	for _, o := range opts {
		o(k)
	}
	return k
}

// SystemOption configures the real System.
type SystemOption func(*kernel)

// StashIn makes the beneath-swap fence's private directory under dir
// (default: the first of /run, $TMPDIR, / that is not on the target).
func StashIn(dir string) SystemOption { return func(k *kernel) { k.stashRoot = dir } }

func (k *kernel) Scan(ctx context.Context) (*inspect.Snapshot, error)   { return k.in.Scan(ctx) }
func (k *kernel) Mounts(ctx context.Context) (*inspect.Snapshot, error) { return k.in.Mounts(ctx) }

func (k *kernel) StatMount(id inspect.MountID) (inspect.MountID, error) {
	st, err := mountapi.StatMount(uint64(id))
	if err != nil {
		return 0, err
	}
	return inspect.MountID(st.ParentUnique), nil
}

func (k *kernel) MountIDAt(path string) (inspect.MountID, error) {
	var stx unix.Statx_t
	// AT_STATX_DONT_SYNC: answer from the cache, never wait on a dead
	// server; AT_NO_AUTOMOUNT: do not trigger an automount at the target.
	flags := unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT | unix.AT_STATX_DONT_SYNC
	if err := unix.Statx(unix.AT_FDCWD, path, flags, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		return 0, fmt.Errorf("statx %s: no unique mount ID (needs Linux 6.8+)", path)
	}
	return inspect.MountID(stx.Mnt_id), nil
}

func (k *kernel) Umount2(path string, flags int) error {
	for {
		err := unix.Unmount(path, flags)
		if err != unix.EINTR {
			return err
		}
	}
}

func (k *kernel) Self() (exe, cwd inspect.MountID, err error) {
	if exe, err = k.fdMountID("/proc/self/exe"); err != nil {
		return 0, 0, err
	}
	cwd, err = k.fdMountID("/proc/self/cwd")
	return exe, cwd, err
}

// fdMountID is the unique mount ID of a magic link's target (statx follows
// /proc/self/exe and cwd to the file itself, whatever its path now reads).
func (k *kernel) fdMountID(link string) (inspect.MountID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, link, unix.AT_NO_AUTOMOUNT|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return 0, fmt.Errorf("statx %s: %w", link, err)
	}
	return inspect.MountID(stx.Mnt_id), nil
}

// openMountRoot opens path with O_PATH|O_NOFOLLOW and checks that it is the
// root of the mount with the given unique ID, so the move_mount(2) calls
// that follow act on exactly that mount whatever happens to the path.
func (k *kernel) openMountRoot(path string, id inspect.MountID) (int, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if inspect.MountID(stx.Mnt_id) != id {
		unix.Close(fd)
		return -1, ErrChanged
	}
	return fd, nil
}

// emptyTmpfs makes a detached, empty, read-only tmpfs (fsopen(2),
// fsconfig(2), fsmount(2) with MOUNT_ATTR_RDONLY): the fence. It is never
// visible anywhere until move_mount attaches it.
func emptyTmpfs() (fd int, id inspect.MountID, err error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, 0, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	for _, kv := range [][2]string{{"size", "4k"}, {"nr_inodes", "2"}, {"mode", "0555"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return -1, 0, fmt.Errorf("fsconfig tmpfs %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, 0, fmt.Errorf("fsconfig create tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, 0, fmt.Errorf("fsmount tmpfs: %w", err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(mfd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		unix.Close(mfd)
		return -1, 0, err
	}
	return mfd, inspect.MountID(stx.Mnt_id), nil
}

// Fence puts up the fence (see FenceKind). Under FenceBeneath the sequence
// is: private stash directory (mkdtemp 0700, bind-mounted on itself and
// made MS_PRIVATE so nothing moved into it propagates), an empty read-only
// tmpfs moved beneath the target (MOVE_MOUNT_BENEATH), then the real mount
// moved into the stash: the path now shows the empty fence, while the real
// mount keeps its unique ID, its holders and its ability to be unmounted
// cleanly. Any failure undoes the steps already done.
func (k *kernel) Fence(target *inspect.Mount, over bool) (*Fence, error) {
	realFD, err := k.openMountRoot(target.Mountpoint, target.ID)
	if err != nil {
		return nil, &Error{Op: "fence: open", Target: target.Mountpoint, Err: err}
	}
	defer unix.Close(realFD)
	fenceFD, fenceID, err := emptyTmpfs()
	if err != nil {
		return nil, &Error{Op: "fence", Target: target.Mountpoint, Err: err}
	}
	defer unix.Close(fenceFD)
	f := &Fence{Target: target.Mountpoint, FenceID: fenceID, RealID: target.ID}
	if over {
		if err := unix.MoveMount(fenceFD, "", realFD, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return nil, &Error{Op: "fence: over-mount", Target: target.Mountpoint, Flags: unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH, Err: err}
		}
		f.Kind, f.RealPath = FenceOver, target.Mountpoint
		return f, nil
	}
	stash, err := k.makeStash(target)
	if err != nil {
		return nil, &Error{Op: "fence: stash", Target: target.Mountpoint, Err: err}
	}
	flags := unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH | mountapi.MoveMountBeneath
	if err := unix.MoveMount(fenceFD, "", realFD, "", flags); err != nil {
		k.removeStash(stash)
		return nil, &Error{Op: "fence: mount beneath", Target: target.Mountpoint, Flags: flags, Err: err}
	}
	f.Kind, f.Stash, f.RealPath = FenceBeneath, stash, filepath.Join(stash, "mnt")
	if err := unix.MoveMount(realFD, "", unix.AT_FDCWD, f.RealPath, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		// The fence now sits beneath the real mount, where no path can
		// name it; it shows only once the mount is gone. Say so.
		k.removeStash(stash)
		return nil, &Error{Op: "fence: move to stash", Target: target.Mountpoint, Flags: unix.MOVE_MOUNT_F_EMPTY_PATH, Err: err,
			Hint: "an empty read-only tmpfs is left beneath the mount; it shows only once the mount is gone"}
	}
	return f, nil
}

// makeStash makes the private directory the real mount is moved into
// during a FenceBeneath: 0700, bind-mounted on itself and MS_PRIVATE, on a
// filesystem that is not the target's. Under a shared parent the bind
// itself propagates (an empty directory) to the peers and goes from them
// when it is unmounted again; what is moved into it does not propagate.
func (k *kernel) makeStash(target *inspect.Mount) (string, error) {
	var roots []string
	if k.stashRoot != "" {
		roots = []string{k.stashRoot}
	} else {
		roots = []string{"/run", os.TempDir(), "/"}
	}
	var lastErr error
	for _, root := range roots {
		if root == target.Mountpoint || isUnder(root, target.Mountpoint) {
			continue
		}
		dir, err := os.MkdirTemp(root, "mounttop-fence-")
		if err != nil {
			lastErr = err
			continue
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			os.Remove(dir)
			lastErr = err
			continue
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			os.Remove(dir)
			lastErr = fmt.Errorf("bind %s: %w", dir, err)
			continue
		}
		if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
			_ = unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
			os.Remove(dir)
			lastErr = fmt.Errorf("make %s private: %w", dir, err)
			continue
		}
		if err := os.Mkdir(filepath.Join(dir, "mnt"), 0o700); err != nil {
			k.removeStash(dir)
			lastErr = err
			continue
		}
		return dir, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no directory off the target to stash the mount in")
	}
	return "", lastErr
}

func (k *kernel) removeStash(dir string) {
	_ = os.Remove(filepath.Join(dir, "mnt"))
	_ = unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
	_ = os.Remove(dir)
}

// OpenRoot opens the mount's root for reading: an O_PATH open checked by
// unique mount ID (openMountRoot, which asks nothing of the filesystem),
// then openat(2) "." through it, so no path is walked again. That second
// open is the one that reaches the server (FUSE OPENDIR).
//
// The engine opens it before the fence: under an over-mount fence the
// path leads to the fence, and a syncfs there would flush the empty tmpfs
// instead (TestSyncfsReachesTheFencedFilesystem).
func (k *kernel) OpenRoot(path string, id inspect.MountID) (*os.File, error) {
	pathFD, err := k.openMountRoot(path, id)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pathFD)
	fd, err := unix.Openat(pathFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Syncfs is syncfs(2) on root: data written by holders reaches the disk
// (or the server) before anything is revoked.
func (k *kernel) Syncfs(root *os.File) error {
	for {
		err := unix.Syncfs(int(root.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// Statfs is the probe's question: fstatfs(2) of an O_PATH fd (allowed
// since Linux 3.12, open(2)) on path, checked by unique mount ID. The
// O_PATH open and the statx check ask nothing of the filesystem
// (AT_STATX_DONT_SYNC); fstatfs does: FUSE sends FUSE_STATFS, NFS a
// FSSTAT call. path may be a /proc magic link (a holder's fd or cwd): it
// leads to the file itself without a lookup.
func (k *kernel) Statfs(path string, id inspect.MountID) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return err
	}
	if inspect.MountID(stx.Mnt_id) != id {
		return ErrChanged
	}
	var st unix.Statfs_t
	for {
		err := unix.Fstatfs(fd, &st)
		if err != unix.EINTR {
			return err
		}
	}
}

// fuseConnections is where fusectl shows one directory per FUSE
// connection, named by the connection's device number.
const fuseConnections = "/sys/fs/fuse/connections"

// FuseWaiting reads /sys/fs/fuse/connections/CONN/waiting: the requests
// sent to the daemon and not answered yet.
func (k *kernel) FuseWaiting(conn uint64) (int, error) {
	b, err := os.ReadFile(filepath.Join(fuseConnections, strconv.FormatUint(conn, 10), "waiting"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// AbortFuse writes to /sys/fs/fuse/connections/CONN/abort (the kernel's
// fuse_conn_abort_write: fuse_abort_conn). Writing does not wait on the
// daemon.
func (k *kernel) AbortFuse(conn uint64) error {
	p := filepath.Join(fuseConnections, strconv.FormatUint(conn, 10), "abort")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("1")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Rollback undoes a fence. FenceBeneath: the real mount is moved from the
// stash back beneath the fence at the target (MOVE_MOUNT_BENEATH again),
// then the fence on top is unmounted: at no moment is the bare directory
// visible. FenceOver: the fence on top is unmounted.
func (k *kernel) Rollback(f *Fence) error {
	if f.Kind == FenceBeneath {
		realFD, err := k.openMountRoot(f.RealPath, f.RealID)
		if err != nil {
			return fmt.Errorf("the mount in the stash: %w", err)
		}
		topFD, err := k.openMountRoot(f.Target, f.FenceID)
		if err != nil {
			unix.Close(realFD)
			return fmt.Errorf("the fence: %w", err)
		}
		flags := unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH | mountapi.MoveMountBeneath
		err = unix.MoveMount(realFD, "", topFD, "", flags)
		unix.Close(realFD)
		unix.Close(topFD)
		if err != nil {
			return fmt.Errorf("moving the mount back beneath the fence: %w", err)
		}
	}
	return k.RemoveFence(f)
}

// RemoveFence unmounts the fence tmpfs at the target (it must be the top
// mount there, checked by unique ID) and the stash. Nobody can hold the
// fence but a process that chdir'd into the empty directory; then it is
// detached (it is empty and read-only, so nothing is lost).
func (k *kernel) RemoveFence(f *Fence) error {
	var err error
	if id, e := k.MountIDAt(f.Target); e != nil || id != f.FenceID {
		err = fmt.Errorf("the fence is no longer the top mount at %s", f.Target)
	} else if e := k.Umount2(f.Target, unix.UMOUNT_NOFOLLOW); e != nil {
		if e2 := k.Umount2(f.Target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); e2 != nil {
			err = fmt.Errorf("unmounting the fence at %s: %w", f.Target, e)
		}
	}
	if f.Stash != "" {
		k.removeStash(f.Stash)
	}
	return err
}

// Revoke hands the holder to the Revoker.
func (k *kernel) Revoke(ctx context.Context, pid int, t RevokeTargets) (string, error) {
	if k.revoker == nil {
		return "", ErrNoRevoker
	}
	return k.revoker.Revoke(ctx, pid, t)
}

// ErrNoRevoker: this build has no ptrace revoker; only signals can move a
// holder.
var ErrNoRevoker = errors.New("revoking by ptrace is not available in this build")

// Signal sends sig through a pidfd (pidfd_open(2), pidfd_send_signal(2)):
// once the pidfd is open, a pid recycled by another process is not hit.
func (k *kernel) Signal(pid int, sig unix.Signal) error {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return unix.PidfdSendSignal(pfd, sig, nil, 0)
}

func isUnder(path, mp string) bool {
	if mp == "/" {
		return true
	}
	return path == mp || len(path) > len(mp) && path[:len(mp)] == mp && path[len(mp)] == '/'
}

// UnmountCopy is release.UnmountInNamespace: setns(2) into the mount
// namespace of pid on a locked thread that is thrown away afterwards, the
// copy's ID re-checked there, umount2 with UMOUNT_NOFOLLOW.
func (k *kernel) UnmountCopy(pid int, mountpoint string, oldID int, flags int) error {
	err := release.UnmountInNamespace(pid, mountpoint, oldID, flags)
	if errors.Is(err, release.ErrChanged) {
		return fmt.Errorf("%w: %w", ErrChanged, err)
	}
	return err
}

// DetachLoop first opens the loop device with O_EXCL: a block device open
// exclusively fails with EBUSY while a filesystem on it is mounted (in any
// namespace, detached or not) or device-mapper/md claims it (open(2)). Such
// a device is refused: LOOP_CLR_FD would only set autoclear and the backing
// file would stay held (loop(4)). The detach itself completes when the
// last opener closes the device, so the mount may stay busy a moment after.
func (k *kernel) DetachLoop(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return &release.Error{Op: "detach loop", Target: dev,
			Err: fmt.Errorf("%w: the loop device is itself mounted or claimed (device-mapper, md, swap); unmount it first", ErrRefused)}
	}
	if err != nil {
		return &release.Error{Op: "detach loop", Target: dev, Err: err}
	}
	defer unix.Close(fd)
	// LOOP_CLR_FD on the exclusive fd: nobody can mount the device between
	// the check and the detach.
	if err := unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0); err != nil {
		return &release.Error{Op: "detach loop", Target: dev, Err: err}
	}
	return nil
}

// Swapoff is swapoff(2) (release.Swapoff).
func (k *kernel) Swapoff(path string) error { return release.Swapoff(path) }
