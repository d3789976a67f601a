package unmount

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/termsafe"
)

// Anchor is the directory a mount sits on, opened once, with the unique ID
// of the mount that directory lies on (checked against the mount table
// before acting, see Unmounter.recheck); Name is the mount point's last
// component there. Every unmount works from an Anchor, never from a
// path string walked again (issue 9):
//
//   - umount2(2) has no by-fd form, and UMOUNT_NOFOLLOW covers only the last
//     component: a path re-walked after a check can be led elsewhere by an
//     over-mount of a middle directory holding a symbolic link (DESIGN.md).
//   - An fd or a cwd on the mount itself would make a plain umount2 EBUSY
//     (do_umount checks the mount's reference count) and, once dropped,
//     clear an expiry mark (mntput).
//
// So the directory is opened with openat2(2) RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS (and RESOLVE_BENEATH when opened relative to
// another Anchor), its mount read with statx(AT_EMPTY_PATH,
// STATX_MNT_ID_UNIQUE), and the unmount runs on a locked thread that
// unshared CLONE_FS: fchdir to the directory, umount2(Name,
// UMOUNT_NOFOLLOW). The directory fd pins that very directory: whatever
// happens to the path later, Name is looked up there.
type Anchor struct {
	Dir  string // the directory as named when it was opened (messages only)
	Name string // the mount point's last component in Dir
	// On is the mount Dir lies on: the mount's parent, or for a mount
	// stacked on others at the same mount point, the parent of the
	// lowest of them.
	On inspect.MountID
	fd int // O_PATH fd of Dir; -1 in a fake or once closed
}

// Path is where the anchored mount point was, for messages.
func (a *Anchor) Path() string { return path.Join(a.Dir, a.Name) }

// Close lets go of the directory (it pins the parent mount).
func (a *Anchor) Close() {
	if a != nil && a.fd >= 0 {
		unix.Close(a.fd)
		a.fd = -1
	}
}

// callLimit bounds every call of the anchored acts that can reach a
// filesystem's server: the open of a directory (a lookup on a FUSE or NFS
// parent), the statx of the mount point, umount2 itself (a plain unmount
// of a filesystem whose server is gone may wait for it). Past it the call
// is abandoned (internal/bounded) and the act fails with
// bounded.ErrAbandoned instead of hanging the program.
const callLimit = 10 * time.Second

// splitMountPath splits a mount point into its directory and last
// component, refusing what cannot be anchored: no last component ("/"),
// ".", "..".
func splitMountPath(p string) (dir, name string, err error) {
	dir, name = path.Split(p)
	if name == "" || name == "." || name == ".." || path.Clean(p) != p {
		return "", "", fmt.Errorf("%w: %s has no last component to unmount by", ErrRefused, termsafe.Quote(p))
	}
	if dir == "" {
		dir = "."
	} else if dir != "/" {
		dir = strings.TrimSuffix(dir, "/")
	}
	return dir, name, nil
}

// Anchor opens the directory of rel and finds the mount it lies on. With
// base nil, rel is an absolute mount point, resolved from our root;
// otherwise rel is relative to base's directory (the fence's stash, or the
// target's parent) and may not leave it (RESOLVE_BENEATH). A symbolic link
// anywhere on the way (ELOOP) or a missing directory is ErrChanged.
func (k *kernel) Anchor(base *Anchor, rel string) (*Anchor, error) {
	dir, name, err := splitMountPath(rel)
	if err != nil {
		return nil, err
	}
	dirfd := unix.AT_FDCWD
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	shown := dir
	if base != nil {
		if base.fd < 0 {
			return nil, errors.New("anchor: the base directory is closed")
		}
		if path.IsAbs(rel) {
			return nil, fmt.Errorf("anchor: %s is not relative to %s", termsafe.Quote(rel), termsafe.Quote(base.Dir))
		}
		dirfd = base.fd
		how.Resolve |= unix.RESOLVE_BENEATH
		shown = path.Join(base.Dir, dir)
	} else if !path.IsAbs(rel) {
		return nil, fmt.Errorf("anchor: %s is not an absolute path", termsafe.Quote(rel))
	}
	fd, err := bounded.Value(context.Background(), k.calls, callLimit, "opening "+termsafe.Quote(shown), bounded.AnyThread,
		func() (int, error) { return openat2(dirfd, dir, &how) }, func(fd int) { unix.Close(fd) })
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("%w: a component of %s is a symbolic link now (ELOOP)", ErrChanged, termsafe.Quote(shown))
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("%w: %s: %w", ErrChanged, termsafe.Quote(shown), err)
	case err != nil:
		return nil, fmt.Errorf("opening %s: %w", termsafe.Quote(shown), err)
	}
	on, err := fdMount(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("statx of %s: %w", termsafe.Quote(shown), err)
	}
	return &Anchor{Dir: shown, Name: name, On: on, fd: fd}, nil
}

// openat2 is openat2(2), retried on EINTR and EAGAIN (RESOLVE_* lookups
// racing a rename or mount may ask to be retried).
func openat2(dirfd int, p string, how *unix.OpenHow) (int, error) {
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, p, how)
		if (err == unix.EINTR || err == unix.EAGAIN) && i < 16 {
			continue
		}
		return fd, err
	}
}

// fdMount is the unique ID of the mount fd lies on (statx AT_EMPTY_PATH:
// no lookup; AT_STATX_DONT_SYNC: no server is asked).
func fdMount(fd int) (inspect.MountID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		return 0, errors.New("no unique mount ID from statx (needs Linux 6.8+)")
	}
	return inspect.MountID(stx.Mnt_id), nil
}

// MountIDAt is the unique ID of the top mount at a.Name in a's directory:
// statx(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_DONT_SYNC,
// STATX_MNT_ID_UNIQUE). The lookup crosses into that mount and so clears
// an expiry mark: never on the expire path.
func (k *kernel) MountIDAt(a *Anchor) (inspect.MountID, error) {
	if a.fd < 0 {
		return 0, errors.New("the anchor is closed")
	}
	return bounded.Value(context.Background(), k.calls, callLimit, "statx of "+termsafe.Quote(a.Path()), bounded.AnyThread, func() (inspect.MountID, error) {
		var stx unix.Statx_t
		flags := unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT | unix.AT_STATX_DONT_SYNC
		if err := unix.Statx(a.fd, a.Name, flags, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
			return 0, err
		}
		if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
			return 0, errors.New("no unique mount ID from statx (needs Linux 6.8+)")
		}
		return inspect.MountID(stx.Mnt_id), nil
	}, nil)
}

// Umount2 is umount2(a.Name, flags|UMOUNT_NOFOLLOW) from a's directory: on
// a goroutine locked to a thread that unshared CLONE_FS (so the fchdir
// moves no other thread), bounded by callLimit.
func (k *kernel) Umount2(a *Anchor, flags int) error {
	if a.fd < 0 {
		return errors.New("the anchor is closed")
	}
	return k.calls.Do(context.Background(), callLimit, "umount2 of "+termsafe.Quote(a.Path()), bounded.OwnFS, func() error {
		if err := unix.Fchdir(a.fd); err != nil {
			return fmt.Errorf("fchdir to %s: %w", termsafe.Quote(a.Dir), err)
		}
		for {
			err := unix.Unmount(a.Name, flags|unix.UMOUNT_NOFOLLOW)
			if err != unix.EINTR {
				return err
			}
		}
	})
}
