package inspect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func TestMain(m *testing.M) { testns.Main(m) }

func init() {
	// thread-cwd DIR: one thread unshare(CLONE_FS)s and sits with its own
	// cwd in DIR while the process's cwd stays where it was.
	testns.RegisterRole("thread-cwd", 1, func(args []string) error {
		runtime.LockOSThread() // keep the leader thread for main, so the unsharing goroutine cannot land on it
		errc := make(chan error)
		go func() {
			runtime.LockOSThread() // the thread dies with its private fs_struct
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				errc <- err
				return
			}
			errc <- unix.Chdir(args[0])
			select {}
		}()
		if err := <-errc; err != nil {
			return err
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

func scan(t *testing.T, opts ...Option) *Snapshot {
	t.Helper()
	in, err := New("/proc", opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := in.Scan(ctx)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return snap
}

func mountAt(t *testing.T, s *Snapshot, dir string) *Mount {
	t.Helper()
	m, ok := s.MountAt(dir)
	if !ok {
		t.Fatalf("no mount at %s in the snapshot", dir)
	}
	return m
}

func holder(s *Snapshot, id MountID, pid int) *Holder {
	for _, h := range s.HoldersOf(id) {
		if h.PID == pid {
			return &h
		}
	}
	return nil
}

func findUse(h *Holder, kind UseKind) *Use {
	if h == nil {
		return nil
	}
	for i := range h.Uses {
		if h.Uses[i].Kind == kind {
			return &h.Uses[i]
		}
	}
	return nil
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEveryUseKind starts one real victim per kind of use on a tmpfs and
// checks that one scan attributes each to that mount, with its details.
func TestEveryUseKind(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	for _, n := range []string{"r", "w", "rw", "map", "flock", "posix", "ofd"} {
		writeFile(t, filepath.Join(dir, n))
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	fdR := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "r"), "r")
	fdW := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "w"), "w")
	fdRW := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "rw"), "rw")
	cwd := testns.StartVictim(t, testns.RoleCwd, sub)
	root := testns.StartVictim(t, testns.RoleRoot, sub)
	mm := testns.StartVictim(t, testns.RoleMmap, filepath.Join(dir, "map"))
	flk := testns.StartVictim(t, testns.RoleLock, filepath.Join(dir, "flock"), "flock", "w")
	psx := testns.StartVictim(t, testns.RoleLock, filepath.Join(dir, "posix"), "posix", "w")
	ofd := testns.StartVictim(t, testns.RoleLock, filepath.Join(dir, "ofd"), "ofd", "r")
	exe := testns.StartVictimExe(t, testns.CopySelf(t, dir), testns.RoleSleep)
	thr := testns.StartVictim(t, "thread-cwd", sub)

	snap := scan(t)
	m := mountAt(t, snap, dir)
	if !snap.UniqueIDs || uint64(m.ID)&standInBit != 0 {
		t.Errorf("expected unique mount IDs on this kernel, got %d (UniqueIDs=%v)", m.ID, snap.UniqueIDs)
	}

	for _, c := range []struct {
		v    *testns.Victim
		file string
		acc  Access
	}{{fdR, "r", AccessRead}, {fdW, "w", AccessWrite}, {fdRW, "rw", AccessReadWrite}} {
		u := findUse(holder(snap, m.ID, c.v.PID), UseFD)
		if u == nil {
			t.Errorf("fd victim %d (%s) not attributed to %s", c.v.PID, c.file, dir)
			continue
		}
		if u.Path != filepath.Join(dir, c.file) || u.Access != c.acc || u.FD < 3 || u.Deleted {
			t.Errorf("fd use of %d = %+v, want path %s access %v", c.v.PID, *u, c.file, c.acc)
		}
	}
	if u := findUse(holder(snap, m.ID, cwd.PID), UseCwd); u == nil || u.Path != sub || u.TID != 0 {
		t.Errorf("cwd use = %+v, want %s", u, sub)
	}
	if u := findUse(holder(snap, m.ID, root.PID), UseRoot); u == nil || u.Path != sub {
		t.Errorf("root use = %+v, want %s", u, sub)
	}
	if u := findUse(holder(snap, m.ID, mm.PID), UseMmap); u == nil || u.Path != filepath.Join(dir, "map") || u.End-u.Start != 4096 {
		t.Errorf("mmap use = %+v, want one page of %s/map", u, dir)
	}
	if u := findUse(holder(snap, m.ID, exe.PID), UseExe); u == nil || u.Path != filepath.Join(dir, "victim.test") {
		t.Errorf("exe use = %+v", u)
	}
	for _, c := range []struct {
		v    *testns.Victim
		typ  LockType
		mode LockMode
	}{{flk, "FLOCK", "WRITE"}, {psx, "POSIX", "WRITE"}, {ofd, "OFDLCK", "READ"}} {
		u := findUse(holder(snap, m.ID, c.v.PID), UseLock)
		if u == nil || u.Lock == nil || u.Lock.Type != c.typ || u.Lock.Mode != c.mode || u.FD < 3 {
			t.Errorf("lock use of %d = %+v, want %s %s", c.v.PID, u, c.typ, c.mode)
		}
	}
	h := holder(snap, m.ID, thr.PID)
	if u := findUse(h, UseCwd); u == nil || u.TID == 0 || u.TID == thr.PID || u.Path != sub {
		t.Errorf("per-thread cwd use = %+v, want a thread (not %d) with cwd %s", u, thr.PID, sub)
	}
	if h != nil && (h.Comm == "" || len(h.Cmdline) == 0 || h.Started.IsZero() || h.User == "") {
		t.Errorf("holder identity incomplete: %+v", *h)
	}
	if n := len(snap.HoldersOf(m.ID)); n != 11 {
		t.Errorf("%d holders of %s, want exactly the 11 victims", n, dir)
	}
}

// TestDeletedFile: a holder of an unlinked file is shown as such.
func TestDeletedFile(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	f := filepath.Join(dir, "gone")
	writeFile(t, f)
	v := testns.StartVictim(t, testns.RoleFD, f, "r")
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	snap := scan(t)
	u := findUse(holder(snap, mountAt(t, snap, dir).ID, v.PID), UseFD)
	if u == nil || !u.Deleted || u.Path != f {
		t.Errorf("use = %+v, want deleted %s", u, f)
	}
}

// TestBindMountsAreDifferentMounts: a holder of one bind mount is not a
// holder of the other, although both show the same filesystem.
func TestBindMountsAreDifferentMounts(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	writeFile(t, filepath.Join(dir, "f"))
	bind := testns.Bind(t, dir)
	viaBind := testns.StartVictim(t, testns.RoleFD, filepath.Join(bind, "f"), "r")
	mapBind := testns.StartVictim(t, testns.RoleMmap, filepath.Join(bind, "f"))
	viaOrig := testns.StartVictim(t, testns.RoleCwd, dir)

	snap := scan(t)
	orig, b := mountAt(t, snap, dir), mountAt(t, snap, bind)
	if orig.ID == b.ID || orig.Device() != b.Device() {
		t.Fatalf("bind mount should be a different mount of the same device: %+v %+v", orig, b)
	}
	if holder(snap, b.ID, viaBind.PID) == nil || holder(snap, orig.ID, viaBind.PID) != nil {
		t.Errorf("fd via the bind mount attributed wrongly")
	}
	if findUse(holder(snap, b.ID, mapBind.PID), UseMmap) == nil || holder(snap, orig.ID, mapBind.PID) != nil {
		t.Errorf("mapping via the bind mount attributed wrongly")
	}
	if holder(snap, orig.ID, viaOrig.PID) == nil || holder(snap, b.ID, viaOrig.PID) != nil {
		t.Errorf("cwd in the original attributed wrongly")
	}
	same := snap.SameFilesystem(b.ID)
	if len(same) != 1 || same[0].ID != orig.ID {
		t.Errorf("SameFilesystem(bind) = %v, want the original", same)
	}
}

// TestScanKeepsExpiryMark: umount2(MNT_EXPIRE) marks an idle mount; a scan
// must not clear the mark (any path walk into the mount would), so the
// second MNT_EXPIRE unmounts. The control shows the test can tell: a stat
// of the mount point between the two calls does clear it.
func TestScanKeepsExpiryMark(t *testing.T) {
	expire := func(dir string) error {
		return unix.Unmount(dir, unix.MNT_EXPIRE|unix.UMOUNT_NOFOLLOW)
	}
	t.Run("control: stat clears the mark", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		if err := expire(dir); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("first MNT_EXPIRE: %v, want EAGAIN", err)
		}
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if err := expire(dir); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("MNT_EXPIRE after stat: %v, want EAGAIN (mark cleared)", err)
		}
	})
	t.Run("scan keeps the mark", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		writeFile(t, filepath.Join(dir, "f"))
		other := testns.Bind(t, dir)
		testns.StartVictim(t, testns.RoleFD, filepath.Join(other, "f"), "r") // busy bind: same device
		if err := expire(dir); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("first MNT_EXPIRE: %v, want EAGAIN", err)
		}
		snap := scan(t)
		if _, err := snap.Resolve(dir); err != nil {
			t.Fatal(err)
		}
		if err := expire(dir); err != nil {
			t.Fatalf("second MNT_EXPIRE after a scan: %v, want the mount gone", err)
		}
		if testns.IsMountPoint(dir) {
			t.Fatal("still mounted")
		}
	})
}

// TestHungFuseServer: with the FUSE daemon stopped, a scan still returns
// promptly and still lists the holders of the FUSE mount.
func TestHungFuseServer(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"))
	fs := testns.Bindfs(t, src)
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(fs.Dir, "f"), "r")
	c := testns.StartVictim(t, testns.RoleCwd, fs.Dir)
	fs.Stop(t)
	t.Cleanup(func() { fs.Cont(t) })

	done := make(chan *Snapshot, 1)
	go func() {
		in, _ := New("/proc", withProcessTimeout(2*time.Second))
		snap, err := in.Scan(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- snap
	}()
	var snap *Snapshot
	select {
	case snap = <-done:
	case <-time.After(60 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("scan hung on a stopped FUSE server")
	}
	m := mountAt(t, snap, fs.Dir)
	if u := findUse(holder(snap, m.ID, v.PID), UseFD); u == nil || u.Path != filepath.Join(fs.Dir, "f") {
		t.Errorf("fd holder on the hung FUSE mount: %+v", u)
	}
	if findUse(holder(snap, m.ID, c.PID), UseCwd) == nil {
		t.Errorf("cwd holder on the hung FUSE mount not found")
	}
}

// TestVanishingProcesses: processes that exit while the scan runs are
// normal: no error.
func TestVanishingProcesses(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	for i := 0; i < 5; i++ {
		var vs []*testns.Victim
		for j := 0; j < 8; j++ {
			vs = append(vs, testns.StartVictim(t, testns.RoleCwd, dir))
		}
		go func() {
			for _, v := range vs {
				_ = unix.Kill(v.PID, unix.SIGKILL)
			}
		}()
		scan(t)
	}
}

// TestCountsDetail: a count-only scan sees the same holders, without paths.
func TestCountsDetail(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	writeFile(t, filepath.Join(dir, "f"))
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
	snap := scan(t, WithDetail(DetailCounts))
	u := findUse(holder(snap, mountAt(t, snap, dir).ID, v.PID), UseFD)
	if u == nil || u.Count != 1 || u.Path != "" {
		t.Errorf("count-only use = %+v", u)
	}
}

// TestProcessDeadline: with a per-process deadline shorter than reading
// most processes takes, the watchdog abandons workers and starts new ones;
// the scan still ends, and each abandoned pid is named in a warning rather
// than counted as scanned.
func TestProcessDeadline(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	for i := 0; i < 8; i++ {
		testns.StartVictim(t, testns.RoleCwd, dir)
	}
	in, err := New("/proc", withProcessTimeout(time.Microsecond), withWorkers(2))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Snapshot, 1)
	go func() {
		snap, err := in.Scan(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- snap
	}()
	select {
	case snap := <-done:
		if snap == nil {
			return
		}
		gaveUp := false
		for _, w := range snap.Warnings {
			gaveUp = gaveUp || w.Kind == WarnGaveUp
		}
		t.Logf("%d processes scanned; abandoned some: %v", snap.Processes, gaveUp)
	case <-time.After(60 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("scan with abandoned workers never ended")
	}
}

// TestScanFocus: ScanFocus records the focused mount's uses in full (the
// fd's path) and only counts on the others (the victim's executable on
// its own mount), from an Inspector made for full detail.
func TestScanFocus(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "r")
	writeFile(t, file)
	other := testns.Tmpfs(t, "")
	v := testns.StartVictimExe(t, testns.CopySelf(t, other), testns.RoleFD, file, "r")
	in, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	table, err := in.Mounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	focus, exeMount := mountAt(t, table, dir), mountAt(t, table, other)
	snap, err := in.ScanFocus(ctx, focus.ID)
	if err != nil {
		t.Fatal(err)
	}
	var fd, exe *Use
	for _, h := range snap.HoldersOf(focus.ID) {
		for i, u := range h.Uses {
			if h.PID == v.PID && u.Kind == UseFD {
				fd = &h.Uses[i]
			}
		}
	}
	for _, h := range snap.HoldersOf(exeMount.ID) {
		for i, u := range h.Uses {
			if h.PID == v.PID && u.Kind == UseExe {
				exe = &h.Uses[i]
			}
		}
	}
	if fd == nil || fd.Path != file || fd.Access != AccessRead {
		t.Errorf("focused mount: fd use %+v, want %s read-only with its path", fd, file)
	}
	if exe == nil || exe.Path != "" || exe.Count != 1 {
		t.Errorf("other mount: exe use %+v, want counted only (no path, count 1)", exe)
	}
}
