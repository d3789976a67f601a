package unmount

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/testns"
)

// reuseSystem is the real System, except that right after the umount2
// that takes the target away (statmount: ENOENT) it mounts a new tmpfs
// elsewhere, which the kernel gives the lowest free anonymous device
// number: the one the target's superblock just freed, unless something
// else on the machine took it first. noWatch makes WatchRoot fail as it
// would without read permission on the root (inotify_add_watch: EACCES).
type reuseSystem struct {
	System
	t       *testing.T
	target  inspect.MountID
	noWatch bool

	mu  sync.Mutex
	dir string // the new tmpfs, once mounted
	dev uint64 // its st_dev
}

func (s *reuseSystem) Umount2(a *Anchor, flags int) error {
	err := s.System.Umount2(a, flags)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || s.dir != "" {
		return err
	}
	if _, serr := s.System.StatMount(s.target); !errors.Is(serr, unix.ENOENT) {
		return err
	}
	dir := testns.MountDir(s.t, "reuse")
	if merr := unix.Mount("mounttop-reuse", dir, "tmpfs", 0, ""); merr != nil {
		s.t.Errorf("mount the new tmpfs: %v", merr)
		return err
	}
	testns.CleanupMount(s.t, dir)
	var st unix.Stat_t
	if serr := unix.Stat(dir, &st); serr != nil {
		s.t.Errorf("stat %s: %v", dir, serr)
	}
	s.dir, s.dev = dir, st.Dev
	return err
}

func (s *reuseSystem) WatchRoot(m *inspect.Mount) (RootWatch, error) {
	if s.noWatch {
		return nil, fmt.Errorf("inotify_add_watch: %w", unix.EACCES)
	}
	return s.System.WatchRoot(m)
}

// reuseRun unmounts a fresh idle tmpfs in mode through a reuseSystem and
// returns the result and whether the new tmpfs got the freed device
// number.
func reuseRun(t *testing.T, mode Mode, noWatch bool) (*Result, *reuseSystem, bool) {
	t.Helper()
	dir := testns.Tmpfs(t, "")
	m := mountAt(t, dir)
	sys := &reuseSystem{System: realSystem(t), t: t, target: m.ID, noWatch: noWatch}
	u := New(sys)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := u.Prepare(ctx, Plan{Target: m, Mode: mode, Interval: 50 * time.Millisecond, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Filesystem.Released {
		t.Fatalf("plan: %+v, want released", p.Filesystem)
	}
	evs := collect(u.Run(ctx, p))
	res, err := result(t, evs)
	if err != nil || !res.Gone || res.Filesystem == nil {
		t.Fatalf("%s unmount of %s: %v (%s)", mode, dir, err, summaryOf(res))
	}
	if sys.dir == "" {
		t.Fatalf("no new tmpfs was mounted after the unmount:\n%s", dumpEvents(evs))
	}
	reused := sys.dev == unix.Mkdev(uint32(m.Major), uint32(m.Minor))
	t.Logf("target %s, new tmpfs %d:%d (reused: %v): %s", m.Device(), unix.Major(sys.dev), unix.Minor(sys.dev), reused, summaryOf(res))
	return res, sys, reused
}

// TestFilesystemReleasedDeviceReused: a tmpfs unmounted (force, lazy,
// staged) whose anonymous device number 0:N is handed at once to a new,
// unrelated tmpfs is reported released: the inotify watch on its root
// got IN_UNMOUNT when its superblock went, so the new mount with the same
// number is not its use. The kernel gives the lowest free number; another
// test on the machine may take it first, so each mode tries a few times
// until the number is reused.
func TestFilesystemReleasedDeviceReused(t *testing.T) {
	for _, mode := range []Mode{ModeForce, ModeLazy, ModeStaged} {
		t.Run(mode.String(), func(t *testing.T) {
			for try := 1; try <= 5; try++ {
				res, _, reused := reuseRun(t, mode, false)
				if f := res.Filesystem; !f.Released || len(f.InUseBy) != 0 || f.Doubt.Kind != DoubtNone {
					t.Fatalf("try %d (reused %v): %+v, want released: %s", try, reused, f, summaryOf(res))
				}
				if !strings.HasSuffix(summaryOf(res), "; filesystem released") {
					t.Errorf("summary %q", summaryOf(res))
				}
				if reused {
					return
				}
			}
			t.Skip("the freed device number was never given to the new tmpfs (others took it first); released was still said each time")
		})
	}
}

// TestFilesystemReuseNoWatch: without the watch (inotify_add_watch
// refused) the check falls back to device numbers, but a mount made after
// the plan (unique ID above all the plan saw) with the same number is not
// counted as a use: the answer is "uncertain", not "still in use by" it.
func TestFilesystemReuseNoWatch(t *testing.T) {
	for try := 1; try <= 5; try++ {
		res, sys, reused := reuseRun(t, ModeForce, true)
		f := res.Filesystem
		if len(f.InUseBy) != 0 {
			t.Fatalf("try %d: still in use by %q, want no use (the new tmpfs is not one)", try, usesText(f))
		}
		if !reused {
			if !f.Released {
				t.Fatalf("try %d: number not reused, yet %+v", try, f)
			}
			continue
		}
		text := FilesystemText(f)
		if f.Released || f.Doubt.Kind != DoubtReused || !strings.Contains(text, "uncertain") || !strings.Contains(text, sys.dir) || !strings.Contains(text, "EACCES") && !strings.Contains(text, "permission denied") {
			t.Fatalf("%+v: want uncertain, naming %s and why there is no watch", f, sys.dir)
		}
		return
	}
	t.Skip("the freed device number was never given to the new tmpfs (others took it first)")
}
