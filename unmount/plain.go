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
	"mounttop/internal/present/scantext"
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
	// stateFallback: where MoveStateOff may move the journal and the
	// expiry book (WithStateFallback).
	stateFallback []string
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
		e.ForceIgnored = &ForceIgnoredFS{FSType: m.FSType}
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
// holders. Nothing on this path walks into the mount: mntput() of any
// reference taken on it clears the mark (a stat, an open or a realpath of
// the mount point does; umount2's own lookup does not, DESIGN.md). So the
// anchor is the directory of its mount point only, and the identity
// re-check is statmount(2) and the mount table: the directory lies on the
// mount it sits on, and no mount covers it.
func (u *Unmounter) Expire(ctx context.Context, m *inspect.Mount) (ExpireResult, error) {
	const op = "umount --expire"
	flags := unix.MNT_EXPIRE | unix.UMOUNT_NOFOLLOW
	a, err := u.anchor(m, nil, m.Mountpoint)
	if err != nil {
		return ExpireResult{}, &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	defer a.Close()
	if err := u.recheck(ctx, m, a, false); err != nil {
		return ExpireResult{}, &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	prev, _ := u.expiry.Get(m.ID)
	err = u.sys.Umount2(a, flags)
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

// umount is the common path of Lazy and Force: the parent directory of
// the mount point anchored (Anchor), identity re-checked, umount2 with
// UMOUNT_NOFOLLOW from there, verified.
func (u *Unmounter) umount(ctx context.Context, op string, m *inspect.Mount, flags int, walk bool) error {
	a, err := u.anchor(m, nil, m.Mountpoint)
	if err != nil {
		return &Error{Op: op, Target: m.Mountpoint, Flags: flags | unix.UMOUNT_NOFOLLOW, Err: err}
	}
	defer a.Close()
	return u.umountAt(ctx, op, m, a, flags, walk)
}

// umountAt unmounts m, anchored at a (the directory of its mount point):
// re-check (recheck: the directory lies on the mount m sits on, m is the
// top mount there), umount2(a.Name) from a's directory, verify. The staged engine's final unmount comes here with the fence's
// anchors. The caller closes a.
func (u *Unmounter) umountAt(ctx context.Context, op string, m *inspect.Mount, a *Anchor, flags int, walk bool) error {
	flags |= unix.UMOUNT_NOFOLLOW
	if err := u.recheck(ctx, m, a, walk); err != nil {
		return &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	if err := u.sys.Umount2(a, flags); err != nil {
		return u.explainFailure(ctx, op, m, flags, err)
	}
	if err := u.verifyGone(m); err != nil {
		return &Error{Op: op, Target: m.Mountpoint, Flags: flags, Err: err}
	}
	return nil
}

// check re-checks m from a fresh anchor (see recheck), walking into it
// when walk is set; nothing is kept open.
func (u *Unmounter) check(ctx context.Context, m *inspect.Mount, walk bool) error {
	a, err := u.anchor(m, nil, m.Mountpoint)
	if err != nil {
		return err
	}
	defer a.Close()
	return u.recheck(ctx, m, a, walk)
}

// anchor opens the directory m sits on (System.Anchor). When that fails
// because the mount is gone (statmount: ENOENT), it says ErrGone rather
// than that the path changed.
func (u *Unmounter) anchor(m *inspect.Mount, base *Anchor, rel string) (*Anchor, error) {
	a, err := u.sys.Anchor(base, rel)
	if err == nil {
		return a, nil
	}
	if _, serr := u.sys.StatMount(m.ID); errors.Is(serr, unix.ENOENT) {
		return nil, ErrGone
	}
	return nil, err
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
		e.Hint = scantext.HintScanFailed(serr)
		return e
	}
	e.Holders = snap.HoldersOf(m.ID)
	for _, id := range snap.Descendants(m.ID) {
		if sub, ok := snap.Mount(id); ok {
			e.Submounts = append(e.Submounts, *sub)
		}
	}
	if e.Busy = busyReasons(snap, m.ID); len(e.Busy) == 0 && len(e.Holders) == 0 && len(e.Submounts) == 0 {
		e.Hint = scantext.NoProcessHolder
	}
	return e
}

// recheck makes sure the anchor still leads to the inspected mount, right
// before acting. statmount(2) by unique ID: ENOENT is gone. The mount
// table: m must be the topmost mount at its mount point (a mount put on
// top since is refused), and the anchor's directory must lie on the mount
// m sits on (its parent, from statmount when the kernel has it, or the
// parent of the lowest mount of a stack at that mount point): a directory
// reached through a mount put over the way since is refused. With walk it
// also statx()es the mount point from the anchor (AT_SYMLINK_NOFOLLOW) for
// the top mount's ID, which must be m's; that lookup takes a reference on
// the mount and so clears an expiry mark: the expire path passes
// walk=false.
func (u *Unmounter) recheck(ctx context.Context, m *inspect.Mount, a *Anchor, walk bool) error {
	parent, err := u.sys.StatMount(m.ID)
	switch {
	case errors.Is(err, unix.ENOENT):
		return ErrGone
	case errors.Is(err, mountapi.ErrUnsupported):
		parent = 0 // Before Linux 6.8: the table is all there is.
	case err != nil:
		return fmt.Errorf("statmount: %w", err)
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
	if parent == 0 {
		parent = top.ParentID
	}
	if on := dirMount(snap, parent, m.Mountpoint); on != a.On {
		return fmt.Errorf("%w: %s lies on mount %d now, not on mount %d where %s sits (something was mounted over the way)",
			ErrChanged, termsafe.Quote(a.Dir), a.On, on, termsafe.Quote(m.Mountpoint))
	}
	if walk {
		id, err := u.sys.MountIDAt(a)
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
			return fmt.Errorf("%w: %v", ErrChanged, err)
		case err != nil:
			return fmt.Errorf("looking at %s: %w", termsafe.Quote(a.Path()), err)
		}
		if id != m.ID {
			return fmt.Errorf("%w: %s leads to another mount (%d)", ErrChanged, termsafe.Quote(a.Path()), id)
		}
	}
	return nil
}

// dirMount is the mount the directory of mountpoint lies on, for a mount
// whose parent is parent: the parent itself, or, when the parent is
// mounted at the same mount point (a stack of mounts there), the parent of
// the lowest of the stack.
func dirMount(snap *inspect.Snapshot, parent inspect.MountID, mountpoint string) inspect.MountID {
	for {
		p, ok := snap.Mount(parent)
		if !ok || p.ParentID == p.ID || p.Mountpoint != mountpoint {
			return parent
		}
		parent = p.ParentID
	}
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
