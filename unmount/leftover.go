package unmount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	// termsafe only for errors and the call names bounded puts in its
	// errors (an error is text: its names are escaped as it is built),
	// and the uses that say why.
	"mounttop/internal/termsafe"
)

// fenceMarker starts the source name of every fence tmpfs (fsconfig(2)
// "source"). mountinfo shows it, so a fence left up by a mounttop that was
// killed mid-run can be found again: by this marker together with the
// fence's shape (fenceShape) and, for a beneath-swap fence, the origin
// record in its stash; never by a name alone.
const fenceMarker = "mounttop-fence"

// stashPrefix starts the name of a beneath-swap fence's stash directory
// (makeStash); originName is the record in it.
const (
	stashPrefix = "mounttop-fence-"
	originName  = "origin.json"
)

// fenceSource is the source of the fences this process puts up:
// "mounttop-fence:PID:START", START being the process's start time in
// clock ticks after boot (proc(5), /proc/PID/stat field 22). The pair
// names this very process even after its pid is reused, so a fence whose
// maker still runs is never taken for a leftover.
func fenceSource() string {
	start, _ := processStartTicks(os.Getpid())
	return fmt.Sprintf("%s:%d:%d", fenceMarker, os.Getpid(), start)
}

// parseFenceSource reads the pid and start time out of a fence's source.
func parseFenceSource(src string) (pid int, start uint64, ok bool) {
	f := strings.Split(src, ":")
	if len(f) != 3 || f[0] != fenceMarker {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[2], 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

// running: the process that made a fence is alive (same pid, same start).
func running(pid int, start uint64) bool {
	s, err := processStartTicks(pid)
	return err == nil && s == start
}

// fenceOrigin is the record a beneath-swap fence leaves in its stash: what
// was fenced, so that a later mounttop can put it back even though no name
// in the mount table links the fence at the target to the real mount in
// the stash.
type fenceOrigin struct {
	Target  termsafe.Name   `json:"target"` // exact bytes in JSON (termsafe.JSON), not for a terminal
	FenceID inspect.MountID `json:"fence_id"`
	RealID  inspect.MountID `json:"real_id"`
	PID     int             `json:"pid"`
}

// writeOrigin writes the origin record into a fresh stash directory,
// given by its fd (stash names it in messages): O_CREAT|O_EXCL|O_NOFOLLOW
// relative to it, which must be ours and 0700 like any directory mounttop
// writes in; the file and the directory are synced.
func writeOrigin(dirfd int, stash string, o fenceOrigin) error {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return err
	}
	if !trustedOwner(st.Uid) || st.Mode&0o077 != 0 {
		return fmt.Errorf("%w: the stash %s is not a 0700 directory of ours", ErrUnsafeStateDir, termsafe.Quote(stash))
	}
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, originName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("origin record: %w", err)
	}
	f := os.NewFile(uintptr(fd), originName)
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("origin record: %w", err)
	}
	// dirfd may be O_PATH, which fsync(2) refuses: sync through "." .
	dfd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return unix.Fsync(dfd)
}

// originWait bounds reading a stash's record (the stash may lie under
// $TMPDIR on any filesystem).
const originWait = 2 * time.Second

// readOrigin reads the origin record of the stash mounted at stash.
// The directory must be the stash mount itself (unique ID), owned by root
// or us with mode 0700, and the record a regular file of ours: a look-alike
// made by someone else is not believed.
func readOrigin(ctx context.Context, stash *inspect.Mount) (fenceOrigin, error) {
	return bounded.Value(ctx, nil, originWait, "reading "+termsafe.Quote(filepath.Join(stash.Mountpoint, originName)), bounded.AnyThread,
		func() (fenceOrigin, error) {
			var o fenceOrigin
			dfd, err := unix.Open(stash.Mountpoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return o, err
			}
			defer unix.Close(dfd)
			var stx unix.Statx_t
			if err := unix.Statx(dfd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE|unix.STATX_MODE|unix.STATX_UID, &stx); err != nil {
				return o, err
			}
			if inspect.MountID(stx.Mnt_id) != stash.ID || !trustedOwner(stx.Uid) || stx.Mode&0o077 != 0 {
				return o, errors.New("not a stash of ours")
			}
			fd, err := unix.Openat(dfd, originName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return o, err
			}
			f := os.NewFile(uintptr(fd), originName)
			defer f.Close()
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || !trustedOwner(st.Uid) {
				return o, errors.New("the origin record is not a regular file of ours")
			}
			data, err := io.ReadAll(io.LimitReader(f, 64<<10))
			if err != nil {
				return o, err
			}
			return o, json.Unmarshal(data, &o)
		}, nil)
}

// Leftover is a fence left up by a mounttop that was killed mid-run (or
// whose rollback failed): an empty read-only tmpfs covers the mount point,
// and the filesystem is at Fence.RealPath (the stash of a beneath-swap
// fence, or under an over-mount fence), still mounted with its unique ID,
// unreachable by its path until the fence is rolled back.
type Leftover struct {
	// Fence is as the killed run had it (without its fds): Kind, Target,
	// FenceID, RealID, Stash and RealPath.
	Fence Fence
	// Maker is the pid of the mounttop that put the fence up (gone).
	Maker int
	// RealGone: the filesystem is no longer mounted (the run had
	// unmounted it before it was killed); only the fence is left.
	RealGone bool
}

// fenceShape: the mount looks like a fence in the table: a tmpfs with the
// marker as its source, mounted read-only, made with size=4k and
// nr_inodes=2 (room for its root and nothing else), and every mount of
// its superblock read-only, so nothing can have been written into it. It
// is empty by construction; the table alone shows it, without a walk.
func fenceShape(snap *inspect.Snapshot, m *inspect.Mount) bool {
	if m.FSType != "tmpfs" || !strings.HasPrefix(m.Source, fenceMarker) || !m.ReadOnly() {
		return false
	}
	opts := map[string]bool{}
	for _, o := range strings.Split(m.SuperOptions, ",") {
		opts[o] = true
	}
	if !opts["size=4k"] || !opts["nr_inodes=2"] {
		return false
	}
	for _, other := range snap.SameFilesystem(m.ID) {
		if !other.ReadOnly() {
			return false
		}
	}
	return true
}

// FindLeftovers lists the fences in snap's table that were left by a
// mounttop no longer running. It reads the origin records of the stashes
// in the table (bounded) and each fence maker's start time; it walks no
// mount point.
func FindLeftovers(ctx context.Context, snap *inspect.Snapshot) []Leftover {
	return findLeftovers(snap, func(m *inspect.Mount) (fenceOrigin, error) { return readOrigin(ctx, m) }, running)
}

// findLeftovers is FindLeftovers with the record reader and the liveness
// test given (tests use fakes).
func findLeftovers(snap *inspect.Snapshot, origin func(*inspect.Mount) (fenceOrigin, error), alive func(int, uint64) bool) []Leftover {
	type stash struct {
		m *inspect.Mount
		o fenceOrigin
	}
	var stashes []stash
	read := false
	byFence := func(id inspect.MountID, target string) (stash, bool) {
		if !read {
			read = true
			for i := range snap.Mounts {
				m := &snap.Mounts[i]
				if !strings.HasPrefix(filepath.Base(m.Mountpoint), stashPrefix) {
					continue
				}
				if o, err := origin(m); err == nil {
					stashes = append(stashes, stash{m, o})
				}
			}
		}
		for _, s := range stashes {
			if s.o.FenceID == id && string(s.o.Target) == target {
				return s, true
			}
		}
		return stash{}, false
	}
	var out []Leftover
	for i := range snap.Mounts {
		m := &snap.Mounts[i]
		if m.Detached || !fenceShape(snap, m) {
			continue
		}
		pid, start, ok := parseFenceSource(m.Source)
		if ok && alive(pid, start) {
			continue // the fence of a run still going
		}
		l := Leftover{Fence: Fence{Target: m.Mountpoint, FenceID: m.ID}, Maker: pid}
		if top, ok := snap.MountAt(m.Mountpoint); ok && top.ID != m.ID {
			// Something is mounted on the fence: a beneath-swap fence
			// whose run was killed before it moved the real mount away.
			// Nothing is hidden; it shows once that mount goes.
			continue
		}
		parent, _ := snap.Mount(m.ParentID)
		switch s, found := byFence(m.ID, m.Mountpoint); {
		case parent != nil && parent.ID != m.ID && parent.Mountpoint == m.Mountpoint:
			// Over-mount: the filesystem is the mount beneath.
			l.Fence.Kind, l.Fence.RealID, l.Fence.RealPath = FenceOver, parent.ID, m.Mountpoint
		case found:
			l.Fence.Kind, l.Fence.RealID, l.Fence.Stash = FenceBeneath, s.o.RealID, s.m.Mountpoint
			l.Fence.RealPath = filepath.Join(s.m.Mountpoint, "mnt")
			real, ok := snap.Mount(s.o.RealID)
			l.RealGone = !ok || real.Mountpoint != l.Fence.RealPath
		default:
			// A fence with nothing beneath and no record: the filesystem
			// went (and so did the stash), the fence stayed.
			l.Fence.Kind, l.RealGone = FenceOver, true
		}
		out = append(out, l)
	}
	return out
}

// RollbackLeftover rolls a leftover fence back through the System, as the
// engine rolls back its own fences: the real mount is moved back beneath
// the fence at the target and the fence unmounted (beneath-swap), or the
// fence unmounted (over-mount, or when the filesystem is gone). It first
// checks the table again: the fence (by unique ID) must still be the top
// mount at the target with its shape, and the real mount (by unique ID)
// where the leftover said. The journal gets the line before the act (a
// journal that cannot take it refuses the rollback) and the outcome after.
func (u *Unmounter) RollbackLeftover(ctx context.Context, l Leftover) (LeftoverRolledBack, error) {
	f := l.Fence
	snap, err := u.sys.Mounts(ctx)
	if err != nil {
		return LeftoverRolledBack{}, err
	}
	fence, ok := snap.Mount(f.FenceID)
	if top, tok := snap.MountAt(f.Target); !ok || !tok || top.ID != f.FenceID || !fenceShape(snap, fence) {
		return LeftoverRolledBack{}, fmt.Errorf("%w: %w: the fence (mount %d) is no longer the top mount at %s", ErrRefused, ErrChanged, f.FenceID, termsafe.Quote(f.Target))
	}
	if !l.RealGone {
		real, ok := snap.Mount(f.RealID)
		if !ok || real.Mountpoint != f.RealPath || (f.Kind == FenceOver && fence.ParentID != f.RealID) {
			return LeftoverRolledBack{}, fmt.Errorf("%w: %w: the filesystem (mount %d) is no longer at %s", ErrRefused, ErrChanged, f.RealID, termsafe.Quote(f.RealPath))
		}
	}
	record := func(ev Event) error {
		ev.At, ev.Mount = u.now(), f.RealID
		if u.journal == nil {
			return nil
		}
		return u.journal.record(f.Target, "rollback-fence", "", ev)
	}
	if err := u.anchorLeftover(&f); err != nil {
		return LeftoverRolledBack{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	defer f.Close()
	if err := record(Event{Stage: StagePlan, Note: LeftoverIntent{Leftover: l}}); err != nil {
		return LeftoverRolledBack{}, fmt.Errorf("%w: the journal cannot be written: %w", ErrRefused, err)
	}
	what := LeftoverRolledBack{Target: f.Target, Stash: f.Stash, FenceID: f.FenceID, RealID: f.RealID, RealGone: l.RealGone}
	if l.RealGone || f.Kind == FenceOver {
		err = u.sys.RemoveFence(&f)
	} else {
		err = u.sys.Rollback(&f)
		what.Moved = true
	}
	if err == nil && !l.RealGone {
		// Verify by the table: the real mount is the top mount again.
		if after, err2 := u.sys.Mounts(ctx); err2 != nil {
			err = err2
		} else if top, ok := after.MountAt(f.Target); !ok || top.ID != f.RealID {
			err = fmt.Errorf("%w: after the rollback %s does not show the filesystem (mount %d)", ErrStillThere, termsafe.Quote(f.Target), f.RealID)
		}
	}
	what.Failed = err != nil
	if jerr := record(Event{Stage: StageRollback, Note: what, Err: err}); jerr != nil && err == nil {
		what.JournalErr = oneLine(jerr.Error())
	}
	return what, err
}

// anchorLeftover opens the directories a leftover fence is acted on from
// (System.Anchor: openat2 without links, kept as fds), as Fence keeps them
// for its own rollback: Top, the target's directory, where the fence is
// the top mount; Real, where the filesystem sits (the stash's root with
// "mnt", or Top under an over-mount fence); and the stash's own mount
// point. Rollback and RemoveFence then check each mount there by unique ID.
func (u *Unmounter) anchorLeftover(f *Fence) error {
	var err error
	if f.Top, err = u.sys.Anchor(nil, f.Target); err != nil {
		return err
	}
	if f.Kind == FenceOver {
		f.Real = f.Top
		return nil
	}
	if f.Stash == "" {
		return nil
	}
	if f.Real, err = u.sys.Anchor(nil, f.RealPath); err != nil {
		f.Close()
		return err
	}
	if f.stashAt, err = u.sys.Anchor(nil, f.Stash); err != nil {
		f.Close()
		return err
	}
	return nil
}
