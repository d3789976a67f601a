package unmount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mounttop/inspect"
	"mounttop/internal/testns"
)

// TestLeftoverFencesReal: a fence put up by the real System and then
// abandoned (as by a killed run) is found by the table, its stash's origin
// record and its shape, under both fences; while its maker runs it is not
// a leftover; RollbackLeftover puts the same mount back with its data and
// journals it.
func TestLeftoverFencesReal(t *testing.T) {
	for _, over := range []bool{false, true} {
		name := map[bool]string{false: "beneath", true: "over-mount"}[over]
		t.Run(name, func(t *testing.T) {
			dir := testns.TmpfsUnder(t, over)
			writeFile(t, filepath.Join(dir, "data"), "kept\n")
			target := mountAt(t, dir)
			sys := realSystem(t)
			f, err := sys.Fence(&target, over)
			if err != nil {
				t.Fatal(err)
			}
			f.Close() // a killed run holds nothing
			snap, err := sys.Mounts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := FindLeftovers(context.Background(), snap); len(got) != 0 {
				t.Fatalf("the fence of a running process was taken for a leftover: %+v", got)
			}
			fm, _ := snap.Mount(f.FenceID)
			if !strings.HasPrefix(fm.Source, fenceMarker+":") || !fenceShape(snap, fm) {
				t.Fatalf("the fence does not show its marker and shape: %+v", fm)
			}
			dead := func(int, uint64) bool { return false }
			got := findLeftovers(snap, func(m *inspect.Mount) (fenceOrigin, error) { return readOrigin(context.Background(), m) }, dead)
			if len(got) != 1 {
				t.Fatalf("found %d leftovers, want 1: %+v", len(got), got)
			}
			l := got[0]
			wantKind := map[bool]FenceKind{false: FenceBeneath, true: FenceOver}[over]
			if l.Fence.Kind != wantKind || l.Fence.Target != dir || l.Fence.FenceID != f.FenceID || l.Fence.RealID != target.ID ||
				l.Fence.RealPath != f.RealPath || l.Fence.Stash != f.Stash || l.RealGone || l.Maker != os.Getpid() {
				t.Fatalf("leftover %+v, fence %+v", l, f)
			}
			if d := LeftoverWords(l, "K"); !strings.Contains(d, "a fence left by a killed run covers "+dir) || !strings.Contains(d, "mounttop umount --rollback-fence "+dir) {
				t.Errorf("Describe: %s", d)
			}
			jdir := t.TempDir()
			j, err := OpenJournal(filepath.Join(jdir, "journal.jsonl"), testEncoder)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			u := New(sys, WithJournal(j))
			what, err := u.RollbackLeftover(context.Background(), l)
			if err != nil {
				t.Fatalf("rollback: %v", err)
			}
			t.Log(what)
			if ids := mountIDs(t, dir); len(ids) != 1 || ids[0] != target.ID {
				t.Fatalf("mounts at %s after the rollback: %v, want just %d", dir, ids, target.ID)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "data")); err != nil || string(data) != "kept\n" {
				t.Fatalf("data: %q %v", data, err)
			}
			requireNoStash(t)
			jl, _ := os.ReadFile(filepath.Join(jdir, "journal.jsonl"))
			if n := strings.Count(string(jl), `"mode":"rollback-fence"`); n != 2 {
				t.Errorf("journal: %d rollback lines, want 2:\n%s", n, jl)
			}
			// Done once: the fence is gone, a second rollback is refused.
			if _, err := u.RollbackLeftover(context.Background(), l); !errors.Is(err, ErrRefused) {
				t.Errorf("second rollback: %v", err)
			}
		})
	}
}

// TestFindLeftoversTable: what the table and the records say, without a
// kernel: a lone fence whose filesystem went is a leftover with RealGone;
// a look-alike tmpfs (no marker, not read-only, another shape) is not; a
// fence with a mount on top of it is not (nothing is hidden); a beneath
// fence with no matching record is not taken for another's.
func TestFindLeftoversTable(t *testing.T) {
	const fenceOpts = "ro,size=4k,nr_inodes=2,mode=555"
	mk := func(id, parent inspect.MountID, mp, src, opts, super string, minor int) inspect.Mount {
		return inspect.Mount{ID: id, ParentID: parent, Mountpoint: mp, FSType: "tmpfs", Source: src, Options: opts, SuperOptions: super, Minor: minor}
	}
	snap := inspect.NewSnapshot([]inspect.Mount{
		{ID: 1, ParentID: 1, Mountpoint: "/", FSType: "ext4", Options: "rw"},
		mk(2, 1, "/lone", "mounttop-fence:99:1", "ro", fenceOpts, 2),
		mk(3, 1, "/rw", "mounttop-fence:99:1", "rw", fenceOpts, 3),
		mk(4, 1, "/plain", "tmpfs", "ro", fenceOpts, 4),
		mk(5, 1, "/big", "mounttop-fence:99:1", "ro", "ro,size=1m", 5),
		mk(6, 1, "/covered", "mounttop-fence:99:1", "ro", fenceOpts, 6),
		mk(7, 6, "/covered", "real", "rw", "rw", 7),
		mk(8, 1, "/live", "mounttop-fence:100:5", "ro", fenceOpts, 8),
		mk(9, 1, "/run/mounttop-fence-x", "tmpfs", "rw", "rw", 9),
		mk(10, 9, "/run/mounttop-fence-x/mnt", "data", "rw", "rw", 10),
		mk(11, 1, "/moved", "mounttop-fence:99:1", "ro", fenceOpts, 11),
	}, nil, nil)
	origin := func(m *inspect.Mount) (fenceOrigin, error) {
		if m.ID == 9 {
			return fenceOrigin{Target: "/moved", FenceID: 11, RealID: 10}, nil
		}
		return fenceOrigin{}, errors.New("no record")
	}
	alive := func(pid int, start uint64) bool { return pid == 100 && start == 5 }
	got := findLeftovers(snap, origin, alive)
	var seen []string
	for _, l := range got {
		seen = append(seen, l.Fence.Target)
		switch l.Fence.Target {
		case "/lone":
			if !l.RealGone || l.Maker != 99 {
				t.Errorf("/lone: %+v", l)
			}
		case "/moved":
			if l.RealGone || l.Fence.Kind != FenceBeneath || l.Fence.RealID != 10 || l.Fence.RealPath != "/run/mounttop-fence-x/mnt" || l.Fence.Stash != "/run/mounttop-fence-x" {
				t.Errorf("/moved: %+v", l)
			}
		}
	}
	if strings.Join(seen, " ") != "/lone /moved" {
		t.Fatalf("leftovers at %v, want /lone /moved", seen)
	}
}

// TestLeftoverFenceRealGone: a run killed after it unmounted the
// filesystem but before it removed its beneath-swap fence leaves the fence
// and the stash: found with RealGone, and the rollback removes both, so
// the mount point is a plain directory again.
func TestLeftoverFenceRealGone(t *testing.T) {
	dir := testns.TmpfsUnder(t, false)
	target := mountAt(t, dir)
	sys := realSystem(t)
	f, err := sys.Fence(&target, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Umount2(f.Real, 0); err != nil {
		t.Fatal(err)
	}
	f.Close() // a killed run holds nothing
	snap, err := sys.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := findLeftovers(snap, func(m *inspect.Mount) (fenceOrigin, error) { return readOrigin(context.Background(), m) },
		func(int, uint64) bool { return false })
	if len(got) != 1 || !got[0].RealGone || got[0].Fence.Stash != f.Stash || got[0].Fence.FenceID != f.FenceID {
		t.Fatalf("leftovers %+v, want the fence with RealGone and its stash %s", got, f.Stash)
	}
	if !strings.Contains(LeftoverWords(got[0], ""), "the filesystem was unmounted already") {
		t.Errorf("What: %s", LeftoverWords(got[0], ""))
	}
	if _, err := New(sys).RollbackLeftover(context.Background(), got[0]); err != nil {
		t.Fatal(err)
	}
	if testns.IsMountPoint(dir) {
		t.Fatalf("%s is still a mount point", dir)
	}
	if _, err := os.Lstat(f.Stash); !os.IsNotExist(err) {
		t.Errorf("the stash %s is left: %v", f.Stash, err)
	}
	requireNoStash(t)
}
