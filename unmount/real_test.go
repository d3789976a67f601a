package unmount

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/testns"
	"mounttop/unmount/revoke"
)

func TestMain(m *testing.M) {
	revoke.TracerMain()
	testns.Main(m)
}

// realSystem is the real System for a test: the live /proc, the test's
// revoker, the stash under the test's temp dir (detached at the end, even
// when the test fails half way through a fence).
func realSystem(t *testing.T) System {
	t.Helper()
	in, err := inspect.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	stash := t.TempDir()
	t.Cleanup(func() { detachUnder(stash) })
	return NewSystem(in, testRevoker(t), StashIn(stash))
}

func realUnmounter(t *testing.T, opts ...Option) *Unmounter {
	t.Helper()
	return New(realSystem(t), opts...)
}

// detachUnder lazily unmounts everything mounted at or below dir, deepest
// first (mountinfo lists parents before children).
func detachUnder(dir string) {
	for _, mp := range mountsUnder(dir) {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mps = append([]string{fields[4]}, mps...)
		}
	}
	return mps
}

// mountAt is the inspected mount at path (table only: no path walk).
func mountAt(t *testing.T, path string) inspect.Mount { return mountAtTB(t, path) }

func mustInspector(t testing.TB) *inspect.Inspector {
	t.Helper()
	in, err := inspect.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func mountAtTB(t testing.TB, path string) inspect.Mount {
	t.Helper()
	snap, err := mustInspector(t).Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, ok := snap.MountAt(path)
	if !ok {
		t.Fatalf("%s is not a mount point", path)
	}
	return *m
}

// mountIDs returns the unique IDs of the mounts stacked at path, bottom first.
func mountIDs(t *testing.T, path string) []inspect.MountID {
	t.Helper()
	in, _ := inspect.New("/proc")
	snap, err := in.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []inspect.MountID
	for _, m := range snap.Mounts {
		if m.Mountpoint == path {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func TestLazyReal(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	writeFile(t, filepath.Join(dir, "f"), "x")
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
	m := mountAt(t, dir)
	if err := realUnmounter(t).Lazy(context.Background(), &m); err != nil {
		t.Fatal(err)
	}
	if testns.IsMountPoint(dir) {
		t.Fatal("still mounted after Lazy")
	}
	if !v.Alive() {
		t.Fatal("lazy unmount killed the holder")
	}
}

func TestForceRealTmpfs(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	writeFile(t, filepath.Join(dir, "f"), "x")
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
	m := mountAt(t, dir)
	u := realUnmounter(t)
	err := u.Force(context.Background(), &m)
	if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("force on a busy tmpfs: %v, want EBUSY", err)
	}
	msg := err.Error()
	for _, want := range []string{"busy", "pid " + itoa(v.PID), "MNT_FORCE is ignored by tmpfs", "--staged"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if !testns.IsMountPoint(dir) {
		t.Fatal("a refused force unmounted it")
	}
	// Idle, force is just an unmount.
	idle := testns.Tmpfs(t, "")
	im := mountAt(t, idle)
	if err := u.Force(context.Background(), &im); err != nil {
		t.Fatal(err)
	}
	if testns.IsMountPoint(idle) {
		t.Fatal("idle force left the mount")
	}
}

func TestExpireReal(t *testing.T) {
	t.Run("two-step", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		m := mountAt(t, dir)
		u := realUnmounter(t)
		res, err := u.Expire(context.Background(), &m)
		if err != nil || !res.Marked {
			t.Fatalf("first attempt: %+v %v", res, err)
		}
		if !testns.IsMountPoint(dir) {
			t.Fatal("the first MNT_EXPIRE attempt unmounted it")
		}
		res, err = u.Expire(context.Background(), &m)
		if err != nil || !res.Gone {
			t.Fatalf("second attempt: %+v %v (the expire path must not touch the mount point)", res, err)
		}
		if testns.IsMountPoint(dir) {
			t.Fatal("still mounted")
		}
	})
	t.Run("a stat between the steps clears the mark", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		m := mountAt(t, dir)
		u := realUnmounter(t)
		if res, err := u.Expire(context.Background(), &m); err != nil || !res.Marked {
			t.Fatalf("first attempt: %+v %v", res, err)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		}
		res, err := u.Expire(context.Background(), &m)
		if err != nil || !res.Marked || !res.Cleared || res.Mark.Cleared != 1 {
			t.Fatalf("after a stat: %+v %v, want marked again and cleared noted", res, err)
		}
		if !testns.IsMountPoint(dir) {
			t.Fatal("unmounted although the mark was cleared")
		}
		res, err = u.Expire(context.Background(), &m)
		if err != nil || !res.Gone {
			t.Fatalf("third attempt: %+v %v", res, err)
		}
	})
	t.Run("busy names the holder", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		v := testns.StartVictim(t, testns.RoleCwd, dir)
		m := mountAt(t, dir)
		_, err := realUnmounter(t).Expire(context.Background(), &m)
		if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "pid "+itoa(v.PID)) {
			t.Fatalf("expire of a busy mount: %v", err)
		}
	})
	t.Run("the book carries the mark to the next invocation", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		m := mountAt(t, dir)
		state := filepath.Join(t.TempDir(), "expire.json")
		first := realUnmounter(t, WithExpiryBook(OpenExpiryBook(state)))
		if res, err := first.Expire(context.Background(), &m); err != nil || !res.Marked {
			t.Fatalf("first: %+v %v", res, err)
		}
		second := realUnmounter(t, WithExpiryBook(OpenExpiryBook(state)))
		if all := OpenExpiryBook(state).All(); len(all) != 1 || all[m.ID].Attempts != 1 {
			t.Fatalf("All: %v", all)
		}
		if mk, ok := OpenExpiryBook(state).Get(m.ID); !ok || mk.Attempts != 1 || string(mk.Mountpoint) != dir {
			t.Fatalf("book on disk: %+v %v", mk, ok)
		}
		if res, err := second.Expire(context.Background(), &m); err != nil || !res.Gone {
			t.Fatalf("second: %+v %v", res, err)
		}
		if _, ok := OpenExpiryBook(state).Get(m.ID); ok {
			t.Fatal("mark kept after the mount went")
		}
		if all := OpenExpiryBook(state).All(); len(all) != 0 {
			t.Fatalf("book not empty: %v", all)
		}
	})
	t.Run("when idle: re-armed until the holder leaves", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		v := testns.StartVictim(t, testns.RoleCwd, dir)
		m := mountAt(t, dir)
		u := realUnmounter(t)
		p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeExpire, ExpireWhenIdle: true, Interval: 50 * time.Millisecond, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ch := u.Run(context.Background(), p)
		var evs []Event
		for ev := range ch {
			evs = append(evs, ev)
			if ev.Stage == StageExpire && strings.Contains(whatOf(ev), "busy") && v.Alive() {
				_ = unix.Kill(v.PID, unix.SIGKILL)
				v.Wait(5 * time.Second)
			}
		}
		last := evs[len(evs)-1]
		if !last.Result.Gone {
			t.Fatalf("not gone:\n%s", dumpEvents(evs))
		}
		var busy, marked bool
		for _, ev := range evs {
			busy = busy || strings.Contains(whatOf(ev), "busy")
			marked = marked || strings.Contains(whatOf(ev), "marked for expiry")
		}
		if !busy || !marked {
			t.Fatalf("want a busy attempt, a marking attempt, then gone:\n%s", dumpEvents(evs))
		}
	})
}

// TestIdentityRecheck: a mount put on top after inspection is never the
// one unmounted.
func TestIdentityRecheck(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	m := mountAt(t, dir)
	if err := unix.Mount("over", dir, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	before := mountIDs(t, dir)
	u := realUnmounter(t)
	for name, op := range map[string]func() error{
		"lazy":   func() error { return u.Lazy(context.Background(), &m) },
		"force":  func() error { return u.Force(context.Background(), &m) },
		"expire": func() error { _, err := u.Expire(context.Background(), &m); return err },
	} {
		if err := op(); !errors.Is(err, ErrChanged) {
			t.Errorf("%s: %v, want ErrChanged", name, err)
		}
	}
	if after := mountIDs(t, dir); len(after) != 2 || after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("mounts at %s changed: %v -> %v", dir, before, after)
	}
}

// TestErrnoWords: EINVAL from the kernel reads "not a mount point"; EPERM
// (an unprivileged caller, real root only) reads "needs root".
func TestErrnoWords(t *testing.T) {
	testns.Require(t, testns.Namespace)
	plain := t.TempDir()
	k := realSystem(t)
	a, err := k.Anchor(nil, plain)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = k.Umount2(a, 0)
	e := &Error{Op: "umount", Target: plain, Err: err}
	if !errors.Is(e, unix.EINVAL) || !strings.Contains(e.Error(), "not a mount point") {
		t.Fatalf("%v", e)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPlainModes: Lazy, Force and Expire (with an expiry book) act on the
// live system: lazy and force unmount an idle mount, expire marks it and
// a second call unmounts it.
func TestPlainModes(t *testing.T) {
	ctx := context.Background()
	a, b, c := testns.Tmpfs(t, ""), testns.Tmpfs(t, ""), testns.Tmpfs(t, "")
	ma, mb, mc := mountAt(t, a), mountAt(t, b), mountAt(t, c)
	u := realUnmounter(t, WithExpiryBook(OpenExpiryBook("")))
	if err := u.Lazy(ctx, &ma); err != nil || testns.IsMountPoint(a) {
		t.Fatalf("Lazy: %v", err)
	}
	if err := u.Force(ctx, &mb); err != nil || testns.IsMountPoint(b) {
		t.Fatalf("Force: %v", err)
	}
	if res, err := u.Expire(ctx, &mc); err != nil || !res.Marked {
		t.Fatalf("Expire: %+v %v", res, err)
	}
	if res, err := u.Expire(ctx, &mc); err != nil || !res.Gone || res.PrevMarkedAt.IsZero() {
		t.Fatalf("Expire again: %+v %v", res, err)
	}
}

// TestForceFUSE: FUSE honours MNT_FORCE (fuse_umount_begin aborts the
// connection), so no "ignored" note; an idle FUSE mount just goes.
func TestForceFUSE(t *testing.T) {
	fs := testns.Bindfs(t, t.TempDir())
	m := mountAt(t, fs.Dir)
	if ForceIgnored(m.FSType) {
		t.Fatalf("MNT_FORCE reported as ignored by %s", m.FSType)
	}
	u := realUnmounter(t)
	p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeForce})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range p.Warnings {
		if strings.Contains(w, "ignored") {
			t.Errorf("warning %q for %s", w, m.FSType)
		}
	}
	if err := u.Force(context.Background(), &m); err != nil || testns.IsMountPoint(fs.Dir) {
		t.Fatalf("force of an idle FUSE mount: %v", err)
	}
}

// TestKernelHolder: a loop device backed by a file on the mount keeps it
// busy with no process holding it; the failure names the loop device and
// what would release it, the plan warns, the drain says so and times out.
func TestKernelHolder(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	img := filepath.Join(dir, "img")
	dev := testns.LoopFile(t, img, 8)
	m := mountAt(t, dir)
	u := realUnmounter(t)
	err := u.Force(context.Background(), &m)
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "held by loop "+dev) {
		t.Fatalf("force: %v", err)
	}
	p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeStaged, Policy: PolicySignal, Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(p.Warnings, "\n"), "held by loop "+dev) {
		t.Fatalf("plan warnings %q", p.Warnings)
	}
	evs := collect(u.Run(context.Background(), p))
	if !strings.Contains(dumpEvents(evs), "busy, but no process holds it: held by loop "+dev) {
		t.Fatalf("events:\n%s", dumpEvents(evs))
	}
	if last := evs[len(evs)-1]; !errors.Is(last.Err, ErrTimeout) || !testns.IsMountPoint(dir) {
		t.Fatalf("want a timeout and the mount back: %v", last.Err)
	}
}
