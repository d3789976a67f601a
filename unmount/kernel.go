package unmount

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/mountapi"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
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
	// calls remembers the anchored acts abandoned past callLimit (nil:
	// they are bounded all the same, and remembered nowhere).
	calls *bounded.Calls
}

// Revoker takes a holder's uses away (see System.Revoke). The real one
// injects system calls with ptrace (unmount/revoke).
type Revoker interface {
	Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error)
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

func (k *kernel) Scan(ctx context.Context) (*inspect.Snapshot, error)   { return k.in.Scan(ctx) }
func (k *kernel) Mounts(ctx context.Context) (*inspect.Snapshot, error) { return k.in.Mounts(ctx) }

// ScanFocus (FocusScanner): full detail for the mounts ids, counts for the
// rest.
func (k *kernel) ScanFocus(ctx context.Context, ids ...inspect.MountID) (*inspect.Snapshot, error) {
	return k.in.ScanFocus(ctx, ids...)
}

func (k *kernel) StatMount(id inspect.MountID) (inspect.MountID, error) {
	st, err := mountapi.StatMount(uint64(id))
	if err != nil {
		return 0, err
	}
	return inspect.MountID(st.ParentUnique), nil
}

// Self finds the mounts of mounttop's executable, cwd and /proc (the one
// the scan reads: /proc/self/mountinfo is a file on it).
func (k *kernel) Self() (Own, error) {
	var own Own
	var err error
	if own.Exe, err = k.fdMountID("/proc/self/exe"); err != nil {
		return own, err
	}
	if own.Cwd, err = k.fdMountID("/proc/self/cwd"); err != nil {
		return own, err
	}
	own.Proc, err = k.fdMountID("/proc/self/mountinfo")
	return own, err
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

// openMountRoot opens the root of the top mount at a.Name in a's
// directory (O_PATH, openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS) and checks that it is the mount with the given
// unique ID, so the move_mount(2) calls that follow act on exactly that
// mount whatever happens to any path.
func (k *kernel) openMountRoot(a *Anchor, id inspect.MountID) (int, error) {
	if a == nil || a.fd < 0 {
		return -1, errors.New("no open directory to find the mount in")
	}
	// No O_DIRECTORY: a bind-mounted file (a container's resolv.conf)
	// is a mount whose root is a file.
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := bounded.Value(context.Background(), k.calls, callLimit, "opening "+termsafe.Quote(a.Path()), bounded.AnyThread,
		func() (int, error) { return openat2(a.fd, a.Name, &how) }, func(fd int) { unix.Close(fd) })
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return -1, fmt.Errorf("%w: %w", ErrChanged, err)
	}
	if err != nil {
		return -1, err
	}
	on, err := fdMount(fd)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	if on != id {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: the top mount at %s is mount %d, not %d", ErrChanged, termsafe.Quote(a.Path()), on, id)
	}
	return fd, nil
}

// fenceSuperblock creates the tiny tmpfs of a fence (fsopen(2),
// fsconfig(2)) and returns its fs context for fsmount(2). The source marks
// it as mounttop's fence (fenceSource): a fence left by a killed run is
// found again by it and its shape (FindLeftovers).
func fenceSuperblock() (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	for _, kv := range [][2]string{{"source", fenceSource()}, {"size", "4k"}, {"nr_inodes", "2"}, {"mode", "0555"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			unix.Close(fsfd)
			return -1, fmt.Errorf("fsconfig tmpfs %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		unix.Close(fsfd)
		return -1, fmt.Errorf("fsconfig create tmpfs: %w", err)
	}
	return fsfd, nil
}

// emptyTmpfs makes a detached, empty, read-only tmpfs (fsopen(2),
// fsconfig(2), fsmount(2) with MOUNT_ATTR_RDONLY): the fence. It is never
// visible anywhere until move_mount attaches it.
func emptyTmpfs() (fd int, id inspect.MountID, err error) {
	fsfd, err := fenceSuperblock()
	if err != nil {
		return -1, 0, err
	}
	defer unix.Close(fsfd)
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

// emptyFile is the fence of a bind-mounted file: a detached bind mount
// (open_tree(2) OPEN_TREE_CLONE) of an empty 0444 file on a detached tiny
// tmpfs, made read-only (mount_setattr(2) MOUNT_ATTR_RDONLY). A mount of a
// file can only be stacked with a mount of a file: a new open of the path
// reads the empty file and a write gets EROFS.
func emptyFile() (fd int, id inspect.MountID, err error) {
	fsfd, err := fenceSuperblock()
	if err != nil {
		return -1, 0, err
	}
	defer unix.Close(fsfd)
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, 0, fmt.Errorf("fsmount tmpfs: %w", err)
	}
	defer unix.Close(mfd)
	ffd, err := unix.Openat(mfd, "empty", unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return -1, 0, fmt.Errorf("creating the empty file: %w", err)
	}
	unix.Close(ffd)
	tree, err := unix.OpenTree(mfd, "empty", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, 0, fmt.Errorf("open_tree of the empty file: %w", err)
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		unix.Close(tree)
		return -1, 0, fmt.Errorf("making the empty file read-only: %w", err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(tree, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		unix.Close(tree)
		return -1, 0, err
	}
	return tree, inspect.MountID(stx.Mnt_id), nil
}

// isDir reports whether fd is a directory (fstat(2) of an O_PATH fd asks
// the inode cache only); an error counts as a directory, the usual case.
func isDir(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// Fence puts up the fence (see FenceKind). Under FenceBeneath the sequence
// is: private stash directory (mkdtemp 0700, bind-mounted on itself and
// made MS_PRIVATE so nothing moved into it propagates), an empty read-only
// tmpfs moved beneath the target (MOVE_MOUNT_BENEATH), then the real mount
// moved into the stash: the path now shows the empty fence, while the real
// mount keeps its unique ID, its holders and its ability to be unmounted
// cleanly. Any failure undoes the steps already done.
//
// Every step works from fds: the target's parent directory is opened once
// (Anchor), the target's root is opened from it and checked by unique ID
// (so that directory is the one the target sits on), and the fence keeps the
// directory fds (Fence.Top, Fence.Real) for the final unmount, the
// rollback and its own removal, so none of them walks a path again.
func (k *kernel) Fence(target *inspect.Mount, over bool) (*Fence, error) {
	top, err := k.Anchor(nil, target.Mountpoint)
	if err != nil {
		return nil, &Error{Op: "fence: open", Target: target.Mountpoint, Err: err}
	}
	keep := false
	defer func() {
		if !keep {
			top.Close()
		}
	}()
	realFD, err := k.openMountRoot(top, target.ID)
	if err != nil {
		return nil, &Error{Op: "fence: open", Target: target.Mountpoint, Err: err}
	}
	defer unix.Close(realFD)
	dir := isDir(realFD)
	fence := emptyTmpfs
	if !dir {
		fence = emptyFile
	}
	fenceFD, fenceID, err := fence()
	if err != nil {
		return nil, &Error{Op: "fence", Target: target.Mountpoint, Err: err}
	}
	defer unix.Close(fenceFD)
	f := &Fence{Target: target.Mountpoint, FenceID: fenceID, RealID: target.ID, Top: top, File: !dir}
	if over {
		if err := unix.MoveMount(fenceFD, "", realFD, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return nil, &Error{Op: "fence: over-mount", Target: target.Mountpoint, Flags: unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH, Err: err}
		}
		f.Kind, f.RealPath, f.Real = FenceOver, target.Mountpoint, top
		keep = true
		return f, nil
	}
	st, err := k.makeStash(target, fenceID, dir)
	if err != nil {
		return nil, &Error{Op: "fence: stash", Target: target.Mountpoint, Err: err}
	}
	flags := unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH | mountapi.MoveMountBeneath
	if err := unix.MoveMount(fenceFD, "", realFD, "", flags); err != nil {
		k.removeStash(st)
		return nil, &Error{Op: "fence: mount beneath", Target: target.Mountpoint, Flags: flags, Err: err}
	}
	f.Kind, f.Stash, f.RealPath = FenceBeneath, st.inner.Dir, st.inner.Path()
	if err := unix.MoveMount(realFD, "", st.inner.fd, st.inner.Name, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		// The fence now sits beneath the real mount, where no path can
		// name it; it shows only once the mount is gone. Say so.
		k.removeStash(st)
		return nil, &Error{Op: "fence: move to stash", Target: target.Mountpoint, Flags: unix.MOVE_MOUNT_F_EMPTY_PATH, Err: err,
			Hint: scantext.HintFenceLeftBeneath}
	}
	f.Real, f.stashAt = st.inner, st.at
	keep = true
	return f, nil
}

// stash is the private directory of a FenceBeneath, held by fds: at is its
// mount point in the directory it was made in, inner its own root (where
// the real mount sits, at "mnt").
type stash struct {
	at, inner *Anchor
}

// makeStash makes the private directory the real mount is moved into
// during a FenceBeneath: 0700, bind-mounted on itself and MS_PRIVATE, on a
// filesystem that is not the target's. Under a shared parent the bind
// itself propagates (an empty directory) to the peers and goes from them
// when it is unmounted again; what is moved into it does not propagate.
// It works from a directory fd throughout (mkdirat, open_tree(2) and
// move_mount(2) of the directory onto itself, mount_setattr(2)), so no
// path is walked twice.
//
// It holds the origin record (writeOrigin): the target and the unique IDs
// of the fence and the real mount, for a later mounttop to roll back a
// fence whose run was killed.
func (k *kernel) makeStash(target *inspect.Mount, fenceID inspect.MountID, dir bool) (*stash, error) {
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
		st, err := k.stashIn(root, dir)
		if err != nil {
			lastErr = err
			continue
		}
		if err := writeOrigin(st.inner.fd, st.at.Path(), fenceOrigin{Target: termsafe.Name(target.Mountpoint), FenceID: fenceID, RealID: target.ID, PID: os.Getpid()}); err != nil {
			k.removeStash(st)
			lastErr = err
			continue
		}
		return st, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no directory off the target to stash the mount in")
	}
	return nil, lastErr
}

// stashIn makes the stash in the directory root (see makeStash); its
// "mnt" is a directory, or for a mount of a file (dir false) an empty
// regular file to move it onto.
func (k *kernel) stashIn(root string, dir bool) (*stash, error) {
	rootFD, err := openat2(unix.AT_FDCWD, root, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", termsafe.Quote(root), err)
	}
	rootID, err := fdMount(rootFD)
	if err != nil {
		unix.Close(rootFD)
		return nil, err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		unix.Close(rootFD)
		return nil, err
	}
	at := &Anchor{Dir: root, Name: stashPrefix + hex.EncodeToString(rnd[:]), On: rootID, fd: rootFD}
	if err := unix.Mkdirat(rootFD, at.Name, 0o700); err != nil {
		at.Close()
		return nil, fmt.Errorf("mkdir %s: %w", termsafe.Quote(at.Path()), err)
	}
	fail := func(err error) (*stash, error) {
		_ = unix.Unlinkat(rootFD, at.Name, unix.AT_REMOVEDIR)
		at.Close()
		return nil, err
	}
	// The directory just made: beneath root, on root's mount, no link.
	dirFD, err := openat2(rootFD, at.Name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return fail(fmt.Errorf("opening %s: %w", termsafe.Quote(at.Path()), err))
	}
	defer unix.Close(dirFD)
	if err := unix.Fchmod(dirFD, 0o700); err != nil { // whatever the umask made of it
		return fail(err)
	}
	tree, err := unix.OpenTree(dirFD, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fail(fmt.Errorf("open_tree %s: %w", termsafe.Quote(at.Path()), err))
	}
	if err := unix.MoveMount(tree, "", dirFD, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		unix.Close(tree)
		return fail(fmt.Errorf("bind %s on itself: %w", termsafe.Quote(at.Path()), err))
	}
	inner := &Anchor{Dir: at.Path(), Name: "mnt", fd: tree}
	st := &stash{at: at, inner: inner}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Propagation: unix.MS_PRIVATE}); err != nil {
		k.removeStash(st)
		return nil, fmt.Errorf("make %s private: %w", termsafe.Quote(at.Path()), err)
	}
	if inner.On, err = fdMount(tree); err != nil {
		k.removeStash(st)
		return nil, err
	}
	if !dir {
		fd, err := unix.Openat(tree, inner.Name, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			k.removeStash(st)
			return nil, fmt.Errorf("creating %s: %w", termsafe.Quote(inner.Path()), err)
		}
		unix.Close(fd)
		return st, nil
	}
	if err := unix.Mkdirat(tree, inner.Name, 0o700); err != nil {
		k.removeStash(st)
		return nil, fmt.Errorf("mkdir %s: %w", termsafe.Quote(inner.Path()), err)
	}
	return st, nil
}

// removeStash removes the stash: its "mnt" directory, its bind mount (by
// its directory fd) and the directory itself. The fd on the stash's own
// root is closed first: held, it would keep the bind mount busy.
func (k *kernel) removeStash(st *stash) {
	if st.inner.fd >= 0 {
		_ = unix.Unlinkat(st.inner.fd, originName, 0)
		if unix.Unlinkat(st.inner.fd, st.inner.Name, unix.AT_REMOVEDIR) != nil {
			_ = unix.Unlinkat(st.inner.fd, st.inner.Name, 0) // the stash of a mount of a file
		}
	}
	st.inner.Close()
	if id, err := k.MountIDAt(st.at); err == nil && id != st.at.On {
		_ = k.Umount2(st.at, 0)
	}
	_ = unix.Unlinkat(st.at.fd, st.at.Name, unix.AT_REMOVEDIR)
	st.at.Close()
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
	a, err := k.Anchor(nil, path)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	pathFD, err := k.openMountRoot(a, id)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pathFD)
	var fd int
	if isDir(pathFD) {
		fd, err = unix.Openat(pathFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		// A bind-mounted file: reopen the O_PATH fd itself for reading
		// through its magic link, which leads to that file without a
		// lookup (proc(5) /proc/PID/fd).
		fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", pathFD), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
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
// visible. FenceOver: the fence on top is unmounted. Both mounts are
// opened from the directory fds kept since the fence went up and checked
// by unique ID; no path is walked again.
func (k *kernel) Rollback(f *Fence) error {
	defer f.Close()
	if f.Kind == FenceBeneath {
		realFD, err := k.openMountRoot(f.Real, f.RealID)
		if err != nil {
			return fmt.Errorf("the mount in the stash: %w", err)
		}
		topFD, err := k.openMountRoot(f.Top, f.FenceID)
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
// mount there, checked by unique ID from the directory fd kept since the
// fence went up) and the stash. Nobody can hold the fence but a process
// that chdir'd into the empty directory; then it is detached (it is empty
// and read-only, so nothing is lost). A FenceBeneath is done with then and
// lets go of its fds; a FenceOver keeps them for the unmount of the real
// mount under it (or Rollback's end).
func (k *kernel) RemoveFence(f *Fence) error {
	var err error
	if f.Top == nil {
		err = errors.New("the fence holds no directory fd")
	} else if id, e := k.MountIDAt(f.Top); e != nil || id != f.FenceID {
		err = fmt.Errorf("the fence is no longer the top mount at %s", termsafe.Quote(f.Target))
	} else if e := k.Umount2(f.Top, 0); e != nil {
		if e2 := k.Umount2(f.Top, unix.MNT_DETACH); e2 != nil {
			err = fmt.Errorf("unmounting the fence at %s: %w", termsafe.Quote(f.Target), e)
		}
	}
	if f.stashAt != nil {
		k.removeStash(&stash{at: f.stashAt, inner: f.Real})
	}
	if f.Kind == FenceBeneath {
		f.Close()
	}
	return err
}

// Revoke hands the holder to the Revoker.
func (k *kernel) Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error) {
	if k.revoker == nil {
		return Revoked{}, ErrNoRevoker
	}
	return k.revoker.Revoke(ctx, pid, t)
}

// RevokeWorkers says how many holders the Revoker revokes at once
// (ConcurrentRevoker); 1 for one that does not say.
func (k *kernel) RevokeWorkers() int {
	if c, ok := k.revoker.(ConcurrentRevoker); ok {
		return c.RevokeWorkers()
	}
	return 1
}

// Held says what the Revoker's tracer process still holds (HeldReporter).
func (k *kernel) Held() []Pending {
	if hr, ok := k.revoker.(HeldReporter); ok {
		return hr.Held()
	}
	return nil
}

// Restored takes the word that the Revoker's tracer process restored and
// released pid after an injected syscall that was stuck (RestoreReporter).
func (k *kernel) Restored(pid int) (Restore, bool) {
	if rr, ok := k.revoker.(RestoreReporter); ok {
		return rr.Restored(pid)
	}
	return Restore{}, false
}

// ErrNoRevoker: this build has no ptrace revoker; only signals can move a
// holder.
var ErrNoRevoker = errors.New("revoking by ptrace is not available in this build")

// OpenProcess opens a pidfd on pid and then checks its start time. The
// order makes it exact: if the process the scan saw (started at
// startTicks) is the one that holds pid after pidfd_open(2) returned, the
// pidfd names it, since a process that started later could not have been
// scanned.
func (k *kernel) OpenProcess(pid int, startTicks uint64) (Process, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrHolderGone)
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	p := &pidfdProcess{fd: pfd}
	started, err := processStartTicks(pid)
	switch {
	case errors.Is(err, os.ErrNotExist):
		err = fmt.Errorf("pid %d: %w", pid, ErrHolderGone)
	case err == nil && startTicks != 0 && started != startTicks:
		err = fmt.Errorf("pid %d: %w (it now names a process started at tick %d, not %d: left alone)", pid, ErrHolderGone, started, startTicks)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// pidfdProcess signals through a pidfd (pidfd_send_signal(2)).
type pidfdProcess struct{ fd int }

func (p *pidfdProcess) Signal(sig unix.Signal) error { return unix.PidfdSendSignal(p.fd, sig, nil, 0) }
func (p *pidfdProcess) Close() error                 { return unix.Close(p.fd) }

// processStartTicks is field 22 of /proc/PID/stat (starttime, clock ticks
// after boot, proc(5)), counted after the last ')' since the command name
// may hold anything.
func processStartTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	ticks, err := parseStartTicks(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ticks, nil
}

// parseStartTicks reads starttime from the text of a /proc/PID/stat.
func parseStartTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22-2 {
		return 0, errors.New("malformed: too few fields")
	}
	return strconv.ParseUint(f[22-3], 10, 64)
}

func isUnder(path, mp string) bool {
	if mp == "/" {
		return true
	}
	return path == mp || len(path) > len(mp) && path[:len(mp)] == mp && path[len(mp)] == '/'
}

// UnmountCopy is release.UnmountInNamespace: setns(2) into the mount
// namespace of c.PID (its inode re-checked) on a locked thread that is
// thrown away afterwards, the copy found from its parent directory's fd
// and checked by mount ID, umount2 of the last component from there.
//
// The lookups there can reach the server of a filesystem in that
// namespace: bounded by callLimit like the other acts.
func (k *kernel) UnmountCopy(c release.Copy, flags int) error {
	return releaseErr(k.calls.Do(context.Background(), callLimit, fmt.Sprintf("unmount of the copy at %s in mnt:[%d]", termsafe.Quote(c.Mountpoint), c.Namespace), bounded.AnyThread,
		func() error { return release.UnmountInNamespace(c, flags) }))
}

// DetachLoop is release.DetachLoop: the device opened O_EXCL (a mounted or
// claimed device is refused), its backing file re-identified by
// LOOP_GET_STATUS64, then LOOP_CLR_FD.
//
// LOOP_GET_STATUS64 asks the backing file's filesystem for its attributes
// (vfs_getattr), which can reach its server: bounded by callLimit.
func (k *kernel) DetachLoop(dev string, backing release.FileID) error {
	return releaseErr(k.calls.Do(context.Background(), callLimit, "detach of loop device "+termsafe.Quote(dev), bounded.AnyThread,
		func() error { return release.DetachLoop(dev, backing) }))
}

// Swapoff is release.Swapoff: the file opened without following a link,
// re-identified, and swapped off through its /proc/self/fd link. It can
// take long (the pages come back to memory) and reach the file's server:
// bounded like the other acts, by callLimit.
func (k *kernel) Swapoff(path string, file release.FileID) error {
	return releaseErr(k.calls.Do(context.Background(), callLimit, "swapoff of "+termsafe.Quote(path), bounded.AnyThread,
		func() error { return release.Swapoff(path, file) }))
}

// releaseErr makes release's refusals this package's, in release's words:
// ErrRefused (exit 2, nothing changed) and ErrChanged (not what was
// inspected).
func releaseErr(err error) error {
	switch {
	case errors.Is(err, release.ErrChanged):
		return seenAs{err, ErrChanged}
	case errors.Is(err, release.ErrRefused):
		return seenAs{err, ErrRefused}
	}
	return err
}

// seenAs is err, also matching sentinel with errors.Is.
type seenAs struct{ err, sentinel error }

func (e seenAs) Error() string        { return e.err.Error() }
func (e seenAs) Unwrap() error        { return e.err }
func (e seenAs) Is(target error) bool { return target == e.sentinel }
