package unmount

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/mountapi"
	"mounttop/internal/termsafe"
)

// Unmounter does the unmounting: the plain modes and the staged engine. Its
// System is the kernel (NewSystem) or a fake; its ExpiryBook remembers the
// MNT_EXPIRE marks it set; its Journal, if any, gets one line per action.
type Unmounter struct {
	sys     System
	expiry  *ExpiryBook
	journal *Journal
	now     func() time.Time
	// calls runs what can wait on a filesystem's server and remembers
	// what was abandoned (Pending).
	calls    *bounded.Calls
	revoking revoking
}

// Option configures an Unmounter.
type Option func(*Unmounter)

// WithExpiryBook keeps expiry marks in b (default: in memory).
func WithExpiryBook(b *ExpiryBook) Option { return func(u *Unmounter) { u.expiry = b } }

// WithJournal appends every action to j.
func WithJournal(j *Journal) Option { return func(u *Unmounter) { u.journal = j } }

// New returns an Unmounter acting through sys.
func New(sys System, opts ...Option) *Unmounter {
	u := &Unmounter{sys: sys, expiry: OpenExpiryBook(""), now: time.Now, calls: &bounded.Calls{}}
	for _, o := range opts {
		o(u)
	}
	return u
}

// forceHonoured lists the filesystems with an umount_begin operation, the
// only ones for which umount2(2) MNT_FORCE does anything: it aborts pending
// requests to a server. Everywhere else (tmpfs, ext4, xfs, btrfs, ...) a
// busy mount stays busy (verified, DESIGN.md).
var forceHonoured = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "9p": true,
	"ceph": true, "fuse": true, "fuseblk": true, "lustre": true,
}

// ForceIgnored reports whether MNT_FORCE does nothing for this filesystem
// type (fuse.* subtypes are FUSE and honour it).
func ForceIgnored(fstype string) bool {
	return !forceHonoured[fstype] && !strings.HasPrefix(fstype, "fuse.")
}

// ForceIgnoredNote is the plain statement shown before a force on such a
// filesystem.
func ForceIgnoredNote(fstype string) string {
	return fmt.Sprintf("MNT_FORCE is ignored by %s: a busy mount stays busy; --staged revokes its holders instead", termsafe.Text(fstype))
}

// Lazy detaches the mount (umount2(2) MNT_DETACH): it is gone from the
// namespace at once, and the filesystem lives on, with no error reporting,
// until its last holder leaves. Submounts go with it.
func (u *Unmounter) Lazy(ctx context.Context, m *inspect.Mount) error {
	return u.umount(ctx, "umount --lazy", m, unix.MNT_DETACH, true)
}

// Force unmounts with umount2(2) MNT_FORCE. Only network and FUSE
// filesystems honour the flag (ForceIgnored); elsewhere it is a plain
// unmount, and EBUSY comes with the hint to use the staged mode.
func (u *Unmounter) Force(ctx context.Context, m *inspect.Mount) error {
	err := u.umount(ctx, "umount --force", m, unix.MNT_FORCE, true)
	var e *Error
	if errors.As(err, &e) && errors.Is(err, unix.EBUSY) && ForceIgnored(m.FSType) {
		if e.Hint != "" {
			e.Hint = e.Hint + "; " + ForceIgnoredNote(m.FSType)
		} else {
			e.Hint = ForceIgnoredNote(m.FSType)
		}
	}
	return err
}

// ExpireResult is the outcome of one MNT_EXPIRE attempt that did not fail.
type ExpireResult struct {
	Gone    bool       // the attempt unmounted it (it was still marked)
	Marked  bool       // EAGAIN: it was idle and is marked now
	Cleared bool       // mounttop had marked it before and an access cleared that mark
	Mark    ExpiryMark // the book's record after this attempt

	PrevMarkedAt time.Time // when mounttop had set the mark found (Gone) or found cleared (Cleared)
}

// Expire makes one umount2(2) MNT_EXPIRE attempt. On an idle mount the
// first attempt fails with EAGAIN and marks it; a later attempt unmounts it
// if nothing touched it in between; a busy mount gives EBUSY with its
// holders. Nothing on this path walks the mount point: the identity
// re-check uses statmount(2) and the mount table only, because a stat, an
// open or a realpath of the mount point clears the mark (DESIGN.md).
func (u *Unmounter) Expire(ctx context.Context, m *inspect.Mount) (ExpireResult, error) {
	const op = "umount --expire"
	flags := unix.MNT_EXPIRE | unix.UMOUNT_NOFOLLOW
	if err := u.recheck(ctx, m, false); err != nil {
		return ExpireResult{}, &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	prev, _ := u.expiry.Get(m.ID)
	err := u.sys.Umount2(m.Mountpoint, flags)
	at := u.now()
	switch {
	case err == nil:
		_ = u.expiry.Forget(m.ID)
		if err := u.verifyGone(m); err != nil {
			return ExpireResult{}, &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
		}
		return ExpireResult{Gone: true, PrevMarkedAt: prev.MarkedAt}, nil
	case errors.Is(err, unix.EAGAIN):
		mark, cleared, berr := u.expiry.Marked(m, at)
		res := ExpireResult{Marked: true, Cleared: cleared, Mark: mark, PrevMarkedAt: prev.MarkedAt}
		if berr != nil {
			return res, &Error{Op: op + ": recording the mark", Target: m.Mountpoint, Err: berr}
		}
		return res, nil
	}
	_ = u.expiry.Forget(m.ID)
	return ExpireResult{}, u.explainFailure(ctx, op, m, flags, err)
}

// umount is the common path of Lazy and Force (and the staged engine's
// final unmount): re-check identity, umount2 with UMOUNT_NOFOLLOW, verify.
func (u *Unmounter) umount(ctx context.Context, op string, m *inspect.Mount, flags int, walk bool) error {
	flags |= unix.UMOUNT_NOFOLLOW
	if err := u.recheck(ctx, m, walk); err != nil {
		return &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	if err := u.sys.Umount2(m.Mountpoint, flags); err != nil {
		return u.explainFailure(ctx, op, m, flags, err)
	}
	if err := u.verifyGone(m); err != nil {
		return &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	return nil
}

// explainFailure wraps a umount2 errno; for EBUSY it scans for the holders
// and lists the submounts, and when there is neither it says what else can
// hold a mount.
func (u *Unmounter) explainFailure(ctx context.Context, op string, m *inspect.Mount, flags int, err error) error {
	e := &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	if !errors.Is(err, unix.EBUSY) {
		return e
	}
	snap, serr := u.sys.Scan(ctx)
	if serr != nil {
		e.Hint = "could not scan for holders: " + serr.Error()
		return e
	}
	e.Holders = snap.HoldersOf(m.ID)
	for _, id := range snap.Descendants(m.ID) {
		if sub, ok := snap.Mount(id); ok {
			e.Submounts = append(e.Submounts, *sub)
		}
	}
	if r := busyReasons(snap, m.ID); len(r) > 0 {
		e.Hint = "also held by " + strings.Join(r, "; ")
		if len(e.Holders) == 0 {
			e.Hint = "held by " + strings.Join(r, "; ")
		}
	} else if len(e.Holders) == 0 && len(e.Submounts) == 0 {
		e.Hint = noProcessHolder
	}
	return e
}

// noProcessHolder is what EBUSY means when no process holds the mount.
const noProcessHolder = "no process holds it: a kernel holder (loop device or swap file on it, nfsd export, io_uring, fd in flight) or a copy in another mount namespace"

// recheck makes sure the path still names the inspected mount, right before
// acting: statmount(2) by unique ID (ENOENT: gone), then the mount table
// (the topmost mount at the mount point must be this one: a mount put on
// top since, or this one moved away, is refused). With walk it also
// statx()es the path itself (AT_SYMLINK_NOFOLLOW) for its mount ID, which
// catches a swapped parent directory; that walk clears an expiry mark, so
// the expire path passes walk=false.
func (u *Unmounter) recheck(ctx context.Context, m *inspect.Mount, walk bool) error {
	if _, err := u.sys.StatMount(m.ID); err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return ErrGone
		case errors.Is(err, mountapi.ErrUnsupported):
			// Before Linux 6.8: the table check below is all there is.
		default:
			return fmt.Errorf("statmount: %w", err)
		}
	}
	snap, err := u.sys.Mounts(ctx)
	if ctx.Err() != nil {
		// A table read cut short carries stand-in IDs: judge nothing by it.
		return ErrCancelled
	}
	if err != nil {
		return err
	}
	top, ok := snap.MountAt(m.Mountpoint)
	if !ok {
		if _, still := snap.Mount(m.ID); still {
			return fmt.Errorf("%w: the mount moved away from %s", ErrChanged, termsafe.Quote(m.Mountpoint))
		}
		return ErrGone
	}
	if top.ID != m.ID {
		return fmt.Errorf("%w: %s now shows another mount (%s %s) on top", ErrChanged,
			termsafe.Quote(m.Mountpoint), termsafe.Text(top.FSType), termsafe.Text(top.Source))
	}
	if walk {
		id, err := u.sys.MountIDAt(m.Mountpoint)
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
			return fmt.Errorf("%w: %v", ErrChanged, err)
		case err != nil:
			return fmt.Errorf("looking at %s: %w", termsafe.Quote(m.Mountpoint), err)
		}
		if id != m.ID {
			return fmt.Errorf("%w: the path leads to another mount", ErrChanged)
		}
	}
	return nil
}

// verifyGone checks that the unmounted mount is no longer in this
// namespace: statmount(2) by unique ID must say ENOENT (it does not find
// detached mounts either), or, without statmount, the table must not list it.
func (u *Unmounter) verifyGone(m *inspect.Mount) error {
	_, err := u.sys.StatMount(m.ID)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err == nil:
		return ErrStillThere
	case errors.Is(err, mountapi.ErrUnsupported):
		snap, err := u.sys.Mounts(context.Background())
		if err != nil {
			return err
		}
		if _, ok := snap.Mount(m.ID); ok {
			return ErrStillThere
		}
		return nil
	}
	return fmt.Errorf("verifying: %w", err)
}
