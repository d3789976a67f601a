package inspect

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestTableFromFixture reads a mountinfo dump with octal escapes, stacked
// mounts and every propagation field, through a fixture /proc root (so the
// IDs are stand-ins: no listmount on a fixture).
func TestTableFromFixture(t *testing.T) {
	in, err := New("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := in.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.UniqueIDs || len(snap.Warnings) == 0 {
		t.Errorf("a fixture has no unique IDs and should say so: %v", snap.Warnings)
	}
	if len(snap.Mounts) != 7 {
		t.Fatalf("%d mounts, want 7", len(snap.Mounts))
	}
	top, ok := snap.MountAt("/mnt/with space")
	if !ok || top.OldID != 33 || top.Source != "over" {
		t.Errorf("MountAt(stacked) = %+v, want the over-mount 33", top)
	}
	under := mountByOld(t, snap, 30)
	if under.Source != `tm\pfs` || under.Propagation.Shared != 5 || under.Propagation.String() != "shared" {
		t.Errorf("escaped source or propagation wrong: %+v", under)
	}
	sub := mountByOld(t, snap, 31)
	if !sub.ReadOnly() || sub.Propagation.Master != 5 || sub.Propagation.String() != "slave" {
		t.Errorf("sub: %+v", sub)
	}
	bind := mountByOld(t, snap, 32)
	if bind.Root != "/dir" || !bind.Propagation.Unbindable || bind.Propagation.PropagateFrom != 5 {
		t.Errorf("bind: %+v", bind)
	}
	if same := snap.SameFilesystem(under.ID); len(same) != 1 || same[0].OldID != 32 {
		t.Errorf("SameFilesystem = %v", same)
	}
	if nl := mountByOld(t, snap, 34); nl.Mountpoint != "/mnt/new\nline" {
		t.Errorf("newline escape: %q", nl.Mountpoint)
	}
	root := mountByOld(t, snap, 27)
	if roots := snap.Roots(); len(roots) != 1 || roots[0] != root.ID {
		t.Errorf("Roots = %v, want just /", roots)
	}
	// Descendants deepest first: sub (31) and the over-mount (33) under 30.
	d := snap.Descendants(root.ID)
	if len(d) != 6 {
		t.Fatalf("Descendants(/) = %v", d)
	}
	depth1 := map[MountID]bool{mountByOld(t, snap, 22).ID: true, under.ID: true, bind.ID: true, mountByOld(t, snap, 34).ID: true}
	for i, id := range d {
		if depth1[id] && i < 2 {
			t.Errorf("a depth-1 mount came before the depth-2 ones: %v", d)
		}
	}
	// 33 is mounted over 30, so the path walk crosses into 33 at
	// /mnt/with space and never meets 31, 30's submount: 30 and 31 are
	// hidden, and a path below leads onto 33.
	if m, ok := snap.MountContaining("/mnt/with space/sub/x"); !ok || m.OldID != 33 {
		t.Errorf("MountContaining = %+v, want the over-mount 33", m)
	}
	for old, hidden := range map[int]bool{27: false, 22: false, 30: true, 31: true, 32: false, 33: false, 34: false} {
		if m := mountByOld(t, snap, old); m.Hidden != hidden {
			t.Errorf("mount %d at %q: Hidden = %v, want %v", old, m.Mountpoint, m.Hidden, hidden)
		}
	}
	if m, ok := snap.MountContaining("/etc/passwd"); !ok || m.OldID != 27 {
		t.Errorf("MountContaining(/etc/passwd) = %+v", m)
	}
}

func mountByOld(t *testing.T, s *Snapshot, old int) *Mount {
	t.Helper()
	for i := range s.Mounts {
		if s.Mounts[i].OldID == old {
			return &s.Mounts[i]
		}
	}
	t.Fatalf("no mount %d", old)
	return nil
}

func TestResolveRefusesWithoutWalkingMountPoints(t *testing.T) {
	dir := t.TempDir()
	s := NewSnapshot([]Mount{
		{ID: 1, ParentID: 1, Mountpoint: "/"},
		{ID: 2, ParentID: 1, Mountpoint: dir + "/m"}, // not even a directory on disk: Resolve must not look
	}, nil, nil)
	if m, err := s.Resolve(dir + "/m"); err != nil || m.ID != 2 {
		t.Errorf("Resolve(mount point) = %v, %v", m, err)
	}
	if m, err := s.Resolve(dir + "/./m/"); err != nil || m.ID != 2 {
		t.Errorf("Resolve with ./ and trailing slash = %v, %v", m, err)
	}
	_, err := s.Resolve(dir)
	var pe *PathError
	if !errors.As(err, &pe) || !errors.Is(err, ErrNotMountPoint) || pe.On.ID != 1 {
		t.Errorf("Resolve(non-mount) = %v", err)
	}
	if _, err := s.Resolve(dir + "/missing/m"); err == nil {
		t.Error("a missing parent should be refused")
	}
	if m, err := s.Resolve("/"); err != nil || m.ID != 1 {
		t.Errorf("Resolve(/) = %v, %v", m, err)
	}
	// A mount point on the way is not looked at either: dir/m/n exists
	// only in the table, below the mount at dir/m.
	s = NewSnapshot([]Mount{
		{ID: 1, ParentID: 1, Mountpoint: "/"},
		{ID: 2, ParentID: 1, Mountpoint: dir + "/m"},
		{ID: 3, ParentID: 2, Mountpoint: dir + "/m/n"},
		{ID: 4, ParentID: 1, Mountpoint: dir + "/m/n/o"}, // shadowed by 2: never what the path leads to
		{ID: 5, ParentID: 3, Mountpoint: dir + "/m/n/o"},
	}, nil, nil)
	if m, err := s.Resolve(dir + "/m/n/o"); err != nil || m.ID != 5 {
		t.Errorf("Resolve through mount points = %v, %v; want the visible mount 5", m, err)
	}
}

func TestParsers(t *testing.T) {
	for _, c := range []struct {
		line string
		want Lock
		ok   bool
	}{
		{"1: POSIX  ADVISORY  WRITE 1234 00:2f:12345 0 EOF", Lock{Type: "POSIX", Mode: "WRITE", Start: "0", End: "EOF"}, true},
		{"2: FLOCK  ADVISORY  READ 99 fd:00:77 0 EOF", Lock{Type: "FLOCK", Mode: "READ", Start: "0", End: "EOF"}, true},
		{"3: OFDLCK ADVISORY  READ -1 00:2f:12347 100 199", Lock{Type: "OFDLCK", Mode: "READ", Start: "100", End: "199"}, true},
		{"\t4: -> POSIX  ADVISORY  WRITE 5 00:2f:1 0 EOF", Lock{Type: "POSIX", Mode: "WRITE", Start: "0", End: "EOF", Waiter: true}, true},
		{"garbage", Lock{}, false},
	} {
		got, ok := parseLockLine(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("parseLockLine(%q) = %+v %v", c.line, got, ok)
		}
	}
	if dev, ino, ok := lockFile("1: POSIX  ADVISORY  WRITE 1234 fd:01:12345 0 EOF"); !ok || dev != 0xfd01 || ino != 12345 {
		t.Errorf("lockFile: %x %d %v", dev, ino, ok)
	}
	m, ok := parseMapsLine([]byte("7f0a00000000-7f0a00001000 r--s 00000000 00:2f 42                         /mnt/x y (deleted)"))
	if !ok || m.start != 0x7f0a00000000 || m.end != 0x7f0a00001000 || m.ino != 42 || string(m.path) != "/mnt/x y (deleted)" || m.dev != 0x2f {
		t.Errorf("parseMapsLine = %+v %v", m, ok)
	}
	if _, ok := parseMapsLine([]byte("7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]")); ok {
		t.Error("an anonymous mapping should be skipped")
	}
	swaps := "Filename\tType\tSize\tUsed\tPriority\n/dev/vdb partition 100 0 -2\n/mnt/a\\040b/swapfile file 4092 0 -3\n"
	if got := parseSwaps(swaps); len(got) != 1 || got[0] != "/mnt/a b/swapfile" {
		t.Errorf("parseSwaps = %q", got)
	}
	if got := parseExports("# comment\n/srv/export\t*(rw,no_root_squash)\n"); len(got) != 1 || got[0] != "/srv/export" {
		t.Errorf("parseExports = %q", got)
	}
	if p, ok := binfmtFixed("enabled\ninterpreter /usr/bin/qemu-arm\nflags: POCF\noffset 0\n"); !ok || p != "/usr/bin/qemu-arm" {
		t.Errorf("binfmtFixed = %q %v", p, ok)
	}
	if _, ok := binfmtFixed("enabled\ninterpreter /usr/bin/qemu-arm\nflags: P\n"); ok {
		t.Error("an entry without F holds nothing")
	}
}

// TestUnreadableNamespaceIsNotDetached: a mount in no table we read, whose
// filesystem is mounted here too, is only called detached when every
// namespace could be read; otherwise the scan says it cannot tell.
func TestUnreadableNamespaceIsNotDetached(t *testing.T) {
	for _, hidden := range []bool{false, true} {
		snap := NewSnapshot([]Mount{{ID: 1, ParentID: 1, Mountpoint: "/"}, {ID: 2, ParentID: 1, Mountpoint: "/dev", Major: 0, Minor: 6, FSType: "devtmpfs"}}, nil, nil)
		tbl := &scanTable{}
		tbl.hiddenNS.Store(hidden)
		m := merger{snap: snap, tbl: tbl, nsIndex: map[uint64]int{}, unknown: map[MountID]int{}}
		const gone = MountID(1 << 40) // no such mount: statmount says ENOENT
		m.add(&procResult{pid: 42, holder: Holder{PID: 42}, unknown: map[MountID]*unknownMount{gone: {dev: 6, old: 999, uses: []Use{{Kind: UseFD, FD: 10, Path: "/dev/null"}}}}})
		m.finish()
		det := snap.Detached()
		if hidden && (len(det) != 0 || len(snap.Warnings) != 1) {
			t.Errorf("hidden namespaces: detached %v, warnings %v; want none and one warning", det, snap.Warnings)
		}
		// The advice fits who runs the scan: root is never told to run
		// as root (issue 10).
		if hidden && len(snap.Warnings) == 1 && (os.Geteuid() == 0) == (snap.Warnings[0].Advice == AdviceRoot) {
			t.Errorf("euid %d: warning %+v", os.Geteuid(), snap.Warnings[0])
		}
		if !hidden && (len(det) != 1 || len(snap.HoldersOf(gone)) != 1) {
			t.Errorf("all namespaces read: detached %v; want the mount, with its holder", det)
		}
	}
}
