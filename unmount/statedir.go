package unmount

import (
	"context"
	"errors"
	"fmt"
	"mounttop/internal/kindname"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/termsafe"
)

// ErrUnsafeStateDir: the directory mounttop would write its journal or
// expiry state in is one that somebody else could plant files in (a
// symbolic link on the way, owned by another user, writable by group or
// others). Nothing is written there; `mounttop` maps it to exit 2.
var ErrUnsafeStateDir = errors.New("unsafe state directory")

// stateDirWait bounds the walk to a state directory: it may lie on a
// network or FUSE filesystem whose server does not answer.
const stateDirWait = 5 * time.Second

// StateDir is the directory mounttop writes its files in as root (the
// journal, expire.json and its lock), opened once and checked, so that
// every file is then created relative to that fd (openat, renameat) and
// never by a path another user could redirect meanwhile.
//
// The check (OpenStateDir) walks the path one component at a time with
// O_NOFOLLOW, so no symbolic link on the way is followed (a planted link
// is what redirects a root process into a file of the attacker's choice),
// creates missing components with mkdirat(2) 0700, and then requires the
// directory itself to be owned by root or by the user mounttop runs as and
// to be writable by nobody else (mode & 022 == 0): only then can no one
// else create, replace or link files inside it.
type StateDir struct {
	f     *os.File // O_RDONLY|O_DIRECTORY: openat and fsync(2) go through it
	path  string
	mount inspect.MountID // the mount it lies on (statx STATX_MNT_ID_UNIQUE)
}

// OpenStateDir opens and checks the state directory at path (absolute),
// creating it (0700) if it is missing. The walk is bounded (stateDirWait):
// a directory on a dead server is reported, not waited for.
func OpenStateDir(ctx context.Context, path string) (*StateDir, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("state directory %s: not an absolute path", termsafe.Quote(path))
	}
	path = filepath.Clean(path)
	return bounded.Value(ctx, nil, stateDirWait, "opening the state directory "+termsafe.Quote(path), bounded.AnyThread,
		func() (*StateDir, error) { return openStateDir(path) },
		func(d *StateDir) { d.Close() })
}

func openStateDir(path string) (*StateDir, error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("state directory: open /: %w", err)
	}
	walked := "/"
	for _, name := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if name == "" {
			continue
		}
		walked = filepath.Join(walked, name)
		next, err := openDirAt(fd, name)
		if errors.Is(err, unix.ENOTDIR) {
			// O_NOFOLLOW|O_DIRECTORY on a link gives ENOTDIR: say which.
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, name, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openDirAt(fd, name)
			}
		}
		unix.Close(fd)
		if err != nil {
			return nil, stateDirError(walked, err)
		}
		fd = next
	}
	d := &StateDir{f: os.NewFile(uintptr(fd), path), path: path}
	if err := d.check(); err != nil {
		d.Close()
		return nil, err
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		d.Close()
		return nil, fmt.Errorf("state directory %s: statx: %w", termsafe.Quote(path), err)
	}
	d.mount = inspect.MountID(stx.Mnt_id)
	return d, nil
}

// openDirAt opens one component below dirfd, never following a symbolic
// link (O_NOFOLLOW gives ELOOP on one; O_DIRECTORY ENOTDIR on a file).
func openDirAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func stateDirError(path string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%w: %s is a symbolic link (mounttop follows none where it writes as root; give the real path)", ErrUnsafeStateDir, termsafe.Quote(path))
	}
	return fmt.Errorf("state directory %s: %w", termsafe.Quote(path), err)
}

// check refuses a directory that anyone but root and the user mounttop
// runs as could write in.
func (d *StateDir) check() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.f.Fd()), &st); err != nil {
		return fmt.Errorf("state directory %s: %w", termsafe.Quote(d.path), err)
	}
	if !trustedOwner(st.Uid) {
		return fmt.Errorf("%w: %s is owned by uid %d, not by root or uid %d; refusing to write there", ErrUnsafeStateDir, termsafe.Quote(d.path), st.Uid, os.Geteuid())
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o); refusing to write there", ErrUnsafeStateDir, termsafe.Quote(d.path), st.Mode&0o7777)
	}
	return nil
}

// trustedOwner: root, or the user mounttop runs as.
func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// Path is the directory's path as given.
func (d *StateDir) Path() string { return d.path }

// Mount is the unique ID of the mount the directory lies on: a run that
// unmounts it moves the state elsewhere first (Unmounter.MoveStateOff).
func (d *StateDir) Mount() inspect.MountID { return d.mount }

// Close closes the directory fd.
func (d *StateDir) Close() error { return d.f.Close() }

// fd is the directory's fd for the *at calls.
func (d *StateDir) fd() int { return int(d.f.Fd()) }

// sync is fsync(2) of the directory, after a file was created or renamed
// in it, so that the new name survives a crash.
func (d *StateDir) sync() error { return unix.Fsync(d.fd()) }

// openFile opens name in the directory with flags|O_NOFOLLOW|O_CLOEXEC
// (and O_NONBLOCK, so a planted FIFO cannot block the open) and requires a
// regular file with one link, owned by root or us: a hard link planted
// before the directory was ours would otherwise lead the write elsewhere.
func (d *StateDir) openFile(name string, flags int) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Openat(d.fd(), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	full := filepath.Join(d.path, name)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symbolic link; not followed", ErrUnsafeStateDir, termsafe.Quote(full))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", termsafe.Quote(full), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", termsafe.Quote(full), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || !trustedOwner(st.Uid) {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s is not a regular file of ours with one link; not used", ErrUnsafeStateDir, termsafe.Quote(full))
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), full), nil
}

// replaceFile writes data to name atomically: a fresh name.new (any file or
// link already there is unlinked, never followed: O_CREAT|O_EXCL), fsync,
// renameat(2) over name, fsync of the directory.
func (d *StateDir) replaceFile(name string, data []byte) error {
	tmp := name + ".new"
	if err := unix.Unlinkat(d.fd(), tmp, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: %w", termsafe.Quote(filepath.Join(d.path, tmp)), err)
	}
	f, err := d.openFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd(), tmp, d.fd(), name)
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd(), tmp, 0)
		return fmt.Errorf("writing %s: %w", termsafe.Quote(filepath.Join(d.path, name)), err)
	}
	return d.sync()
}

// FallbackStateDirs are where the journal and the expiry state go for a
// run that unmounts the mount they lie on: $XDG_RUNTIME_DIR/mounttop if
// set (absolute), and /run/mounttop for root (a tmpfs on every systemd
// machine, gone at reboot, and the place for runtime state per the FHS).
// getenv is os.Getenv.
func FallbackStateDirs(euid int, getenv func(string) string) []string {
	var out []string
	if d := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		out = append(out, filepath.Join(d, "mounttop"))
	}
	if euid == 0 {
		out = append(out, "/run/mounttop")
	}
	return out
}

// WithStateFallback names the directories MoveStateOff may move the
// journal and the expiry state to (FallbackStateDirs), in order.
func WithStateFallback(dirs ...string) Option {
	return func(u *Unmounter) { u.stateFallback = append([]string(nil), dirs...) }
}

// StateMoveKind says what became of the journal and the expiry state of a
// run whose state directory lies on its target (StateMove).
type StateMoveKind int

const (
	StateStays      StateMoveKind = iota // nothing had to move
	StateMoved                           // the journal and the expiry state go to To instead of From
	StateNoPlace                         // From lies on the target and no other place is left: no journal
	StateCannotMove                      // the journal in From cannot move to To (ErrText): no journal
	StateUnknown                         // where the journal lies could not be checked (ErrText)
)

// StateMove is what became of the journal and the expiry state of a run,
// whose directory From lies on the mount to unmount (they would keep it
// busy, and a write into it would clear an expiry mark): the paths raw,
// ErrText an error's text (its names escaped once already).
// internal/present (StateMoveText) words it.
type StateMove struct {
	Kind     StateMoveKind
	From, To string
	ErrText  string
}

// StatePlace says where the state of a run on target goes: dir itself, or,
// when dir lies on target or on a mount below it, the first of fallbacks
// that does not; "" when none is left (the run goes without a journal).
// move says what was moved where, for the operator.
//
// It decides by the mount table alone (the mount containing the path),
// walking no path: a walk into the target would clear an MNT_EXPIRE mark
// (DESIGN.md). The table answers truly because OpenStateDir follows no
// symbolic link, so the path's text is where it leads.
func StatePlace(snap *inspect.Snapshot, target *inspect.Mount, dir string, fallbacks []string) (place string, move StateMove) {
	gone := map[inspect.MountID]bool{target.ID: true}
	for _, id := range snap.Descendants(target.ID) {
		gone[id] = true
	}
	on := func(p string) bool {
		m, ok := snap.MountContaining(filepath.Clean(p))
		return ok && gone[m.ID]
	}
	if !on(dir) {
		return dir, StateMove{}
	}
	for _, fb := range fallbacks {
		if !on(fb) {
			return fb, StateMove{Kind: StateMoved, From: dir, To: fb}
		}
	}
	return "", StateMove{Kind: StateNoPlace, From: dir}
}

// MoveStateOff moves the journal and the expiry book off the run's target
// (and the mounts below it) before anything is done to it: an open
// journal keeps a mount busy, and a write into it would clear an expiry
// mark. They go to the first usable directory of WithStateFallback, or are
// disabled. move says what became of them (StateStays: nothing had to
// move). Run calls it first;
// `mounttop umount` picks the place before opening anything (StatePlace).
func (u *Unmounter) MoveStateOff(ctx context.Context, target *inspect.Mount) (move StateMove, err error) {
	jdir, bdir := "", u.expiry.dir()
	if u.journal != nil {
		if p := u.journal.Path(); p != "" {
			jdir = filepath.Dir(p)
		}
	}
	if (jdir == "" && bdir == "") || target.Detached {
		return StateMove{}, nil
	}
	snap, err := u.sys.Mounts(ctx)
	if err != nil {
		return StateMove{}, err
	}
	gone := map[inspect.MountID]bool{target.ID: true}
	for _, id := range snap.Descendants(target.ID) {
		gone[id] = true
	}
	jOn := jdir != "" && (gone[u.journal.Mount()] || isOn(snap, gone, jdir))
	bOn := bdir != "" && isOn(snap, gone, bdir)
	if !jOn && !bOn {
		return StateMove{}, nil
	}
	from := jdir
	if !jOn {
		from = bdir
	}
	place, move := StatePlace(snap, target, from, u.stateFallback)
	for place != "" {
		if !jOn {
			break
		}
		d, err := OpenStateDir(ctx, place)
		if err == nil && gone[d.Mount()] {
			d.Close()
			err = fmt.Errorf("%s lies on the mount to unmount", termsafe.Quote(place))
		}
		if err == nil {
			err = u.journal.moveTo(d)
			if err != nil {
				d.Close()
			}
		}
		if err == nil {
			break
		}
		move = StateMove{Kind: StateCannotMove, From: jdir, To: place, ErrText: err.Error()}
		place = ""
	}
	switch {
	case place == "":
		if jOn {
			u.journal.disable()
		}
		if bOn {
			u.expiry.forgetFile()
		}
	case bOn || bdir == jdir:
		u.expiry.moveTo(place)
	}
	return move, nil
}

// isOn: path lies on one of the mounts in ids, by the table.
func isOn(snap *inspect.Snapshot, ids map[inspect.MountID]bool, path string) bool {
	m, ok := snap.MountContaining(filepath.Clean(path))
	return ok && ids[m.ID]
}

// stateMoveKindNames are the StateMoveKind values' names, for logs and tests (String).
var stateMoveKindNames = [...]string{StateStays: "stays", StateMoved: "moved", StateNoPlace: "no-place", StateCannotMove: "cannot-move", StateUnknown: "unknown"}

// String names the StateMoveKind (kindname.Of).
func (s StateMoveKind) String() string {
	return kindname.Of("StateMoveKind", stateMoveKindNames[:], int(s), 0)
}
