package unmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// runMode prepares and runs an unmount of dir in mode and returns the plan
// and the result.
func runMode(t *testing.T, dir string, mode Mode) (Plan, *Result) {
	t.Helper()
	u := realUnmounter(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := u.Prepare(ctx, Plan{Target: mountAt(t, dir), Mode: mode, Interval: 50 * time.Millisecond, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(u.Run(ctx, p))
	t.Logf("events:\n%s", dumpEvents(evs))
	res, err := result(t, evs)
	if err != nil || !res.Gone {
		t.Fatalf("%s unmount of %s: %v (%s)", mode, dir, err, summaryOf(res))
	}
	if res.Filesystem == nil || !res.Filesystem.Checked {
		t.Fatalf("result has no filesystem check: %+v", res.Filesystem)
	}
	return p, res
}

// usesText is the uses in operator words, for assertions.
func usesText(f *Filesystem) string {
	var s []string
	for _, u := range f.InUseBy {
		s = append(s, FilesystemUseWords(u))
	}
	return strings.Join(s, "; ")
}

// TestFilesystemLazyHeld: a lazy unmount of a tmpfs whose file a process
// holds leaves the filesystem alive detached; plan and result say so,
// naming the pid.
func TestFilesystemLazyHeld(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	writeFile(t, filepath.Join(dir, "f"), "x")
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
	p, res := runMode(t, dir, ModeLazy)
	want := fmt.Sprintf("a detached mount held by pid %d", v.PID)
	if p.Filesystem.Released || usesText(&p.Filesystem) != want {
		t.Errorf("plan: %+v, want still in use by %q", p.Filesystem, want)
	}
	if !strings.Contains(PlanWords(&p), "after this unmount the filesystem stays in use by: "+want) {
		t.Errorf("plan text does not forecast it: %s", PlanWords(&p))
	}
	if res.Filesystem.Released || usesText(res.Filesystem) != want {
		t.Errorf("result: %+v, want still in use by %q", res.Filesystem, want)
	}
	if !strings.HasSuffix(summaryOf(res), "filesystem still in use by: "+want) {
		t.Errorf("summary %q does not say it", summaryOf(res))
	}
}

// TestFilesystemBindElsewhere: every mode (lazy, force, expire twice,
// staged) unmounts one mount of a tmpfs and says the filesystem stays in
// use by its bind mount elsewhere.
func TestFilesystemBindElsewhere(t *testing.T) {
	for _, mode := range []Mode{ModeLazy, ModeForce, ModeExpire, ModeStaged} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := testns.Tmpfs(t, "")
			bind := testns.Bind(t, dir)
			u := realUnmounter(t)
			if mode == ModeExpire {
				// The first call marks it; the run's call unmounts it.
				m := mountAt(t, dir)
				if res, err := u.Expire(context.Background(), &m); err != nil || !res.Marked {
					t.Fatalf("first expire: %+v %v", res, err)
				}
			}
			want := "the mount " + bind
			p, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: mode, Interval: 50 * time.Millisecond, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if p.Filesystem.Released || usesText(&p.Filesystem) != want {
				t.Errorf("plan: %+v, want in use by %q", p.Filesystem, want)
			}
			evs := collect(u.Run(context.Background(), p))
			res, err := result(t, evs)
			if err != nil || !res.Gone {
				t.Fatalf("%v (%s)", err, summaryOf(res))
			}
			if res.Filesystem == nil || res.Filesystem.Released || usesText(res.Filesystem) != want {
				t.Errorf("result: %+v, want in use by %q", res.Filesystem, want)
			}
		})
	}
}

// TestFilesystemOverlayLayer: an overlay with its layers on tmpfs T keeps
// T's filesystem alive after T's unmount succeeds; plan and result name
// the overlay.
func TestFilesystemOverlayLayer(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ov := testns.MountDir(t, "ov")
	if err := unix.Mount("ov", ov, "overlay", 0, fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir)); err != nil {
		t.Skipf("overlay cannot be mounted here: %v", err)
	}
	testns.CleanupMount(t, ov)
	p, res := runMode(t, dir, ModeStaged)
	want := "the overlay " + ov
	if p.Filesystem.Released || usesText(&p.Filesystem) != want {
		t.Errorf("plan: %+v, want in use by %q", p.Filesystem, want)
	}
	if res.Filesystem.Released || usesText(res.Filesystem) != want {
		t.Errorf("result: %+v, want in use by %q", res.Filesystem, want)
	}
}

// TestFilesystemExt4Released: ext4 on a loop device unmounted cleanly is
// released: the loop device opens O_EXCL, mounts again and can be
// detached.
func TestFilesystemExt4Released(t *testing.T) {
	l := testns.LoopExt4(t, 16)
	p, res := runMode(t, l.Dir, ModeStaged)
	if !p.Filesystem.Released {
		t.Errorf("plan: %+v, want released", p.Filesystem)
	}
	f := res.Filesystem
	if !f.Released || !f.Exclusive || f.DeviceName != l.Device {
		t.Fatalf("result: %+v, want released with %s opened exclusively", f, l.Device)
	}
	if !strings.HasSuffix(summaryOf(res), "filesystem released (the block device "+l.Device+" opens exclusively)") {
		t.Errorf("summary %q", summaryOf(res))
	}
	fd, err := unix.Open(l.Device, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s O_EXCL after the check: %v", l.Device, err)
	}
	unix.Close(fd)
	// Mounted again, unmounted, then detached (not re-attached: a new
	// loop number could be another test's by the time the cleanups run).
	if err := unix.Mount(l.Device, l.Dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s again: %v", l.Device, err)
	}
	if err := unix.Unmount(l.Dir, 0); err != nil {
		t.Fatalf("umount %s: %v", l.Dir, err)
	}
	if out, err := exec.Command(testns.RequireTool(t, "losetup"), "-d", l.Device).CombinedOutput(); err != nil {
		t.Fatalf("losetup -d %s: %v: %s", l.Device, err, out)
	}
}

// TestFilesystemExt4OtherNamespace: the same ext4 mounted in another mount
// namespace (a child made with CLONE_NEWNS, holding a private copy) keeps
// the filesystem and its loop device in use after our clean unmount.
func TestFilesystemExt4OtherNamespace(t *testing.T) {
	l := testns.LoopExt4(t, 16)
	v := testns.StartVictimInNewNS(t, testns.RoleSleep)
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", v.PID), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("the mount %s in mount namespace mnt:[%d]", l.Dir, st.Ino)
	p, res := runMode(t, l.Dir, ModeStaged)
	if p.Filesystem.Released || usesText(&p.Filesystem) != want {
		t.Errorf("plan: %+v, want in use by %q", p.Filesystem, want)
	}
	if res.Filesystem.Released || usesText(res.Filesystem) != want || res.Filesystem.Exclusive {
		t.Errorf("result: %+v, want in use by %q", res.Filesystem, want)
	}
	fd, err := unix.Open(l.Device, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		t.Fatalf("%s opened exclusively while the other namespace mounts it", l.Device)
	} else if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("open O_EXCL: %v, want EBUSY", err)
	}
}

// overlayOn mounts an overlay elsewhere with its lower, upper and work
// directories on dir, and returns its mount point.
func overlayOn(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "lower", "f"), "x")
	ov := testns.MountDir(t, "ov")
	if err := unix.Mount("ov", ov, "overlay", 0, fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir)); err != nil {
		t.Skipf("overlay cannot be mounted here: %v", err)
	}
	testns.CleanupMount(t, ov)
	return ov
}

// TestStagedRecursiveOverlay: with Recursive, a staged run takes an
// overlay that uses tmpfs T as a layer like a submount: the plan lists it
// and its holder, the run revokes the holder (a file open in the overlay),
// unmounts the overlay first, then T; the filesystem is released. Without
// Recursive the plan only names it, with the flag that takes it.
func TestStagedRecursiveOverlay(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	ov := overlayOn(t, dir)
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(ov, "f"), "r")
	u := realUnmounter(t)

	p, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: ModeStaged})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stacked) != 0 || len(p.Holders) != 0 || !strings.Contains(warningsWords(&p), "--recursive unmounts first what uses it as a layer: "+ov) {
		t.Errorf("plan without Recursive: stacked %v, holders %v, warnings %+v", p.Stacked, p.Holders, p.Warnings)
	}

	evs := staged(t, u, dir, Plan{Recursive: true})
	plan := evs[0]
	if plan.Stage != StagePlan || !strings.Contains(EventWords(plan), "before it, unmount what uses it as a layer: "+ov) ||
		len(plan.Holders) != 1 || plan.Holders[0].PID != v.PID {
		t.Errorf("plan event: %s, holders %v", EventWords(plan), plan.Holders)
	}
	requireGone(t, evs, dir)
	if testns.IsMountPoint(ov) {
		t.Errorf("the overlay at %s is still mounted", ov)
	}
	order := []string{}
	for _, ev := range evs {
		if ev.Stage == StageUnmount && ev.Err == nil {
			order = append(order, EventWords(ev))
		}
	}
	if len(order) < 2 || !strings.Contains(order[0], "the overlay at "+ov+" (it uses the mount as a layer) unmounted first") {
		t.Errorf("unmount events %q: want the overlay first", order)
	}
	res, _ := result(t, evs)
	if res.Filesystem == nil || !res.Filesystem.Released {
		t.Errorf("filesystem after the run: %+v, want released", res.Filesystem)
	}
	if !v.Alive() {
		t.Error("the holder was killed; it should have been revoked")
	}
}

// TestFilesystemPlanLoop: a loop device backed by a file on tmpfs T keeps
// T's filesystem in use; the plan names it, except in a staged run with
// Release, which detaches it.
func TestFilesystemPlanLoop(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	dev := testns.LoopFile(t, filepath.Join(dir, "img"), 1)
	u := realUnmounter(t)
	for _, tc := range []struct {
		mode    Mode
		release bool
		want    string
	}{
		{ModeLazy, false, "the loop device " + dev},
		{ModeStaged, false, "the loop device " + dev},
		{ModeStaged, true, ""},
	} {
		p, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: tc.mode, Release: tc.release})
		if err != nil {
			t.Fatal(err)
		}
		if got := usesText(&p.Filesystem); got != tc.want || p.Filesystem.Released != (tc.want == "") {
			t.Errorf("%s release=%v: forecast %+v (%q), want %q", tc.mode, tc.release, p.Filesystem, got, tc.want)
		}
	}
}
