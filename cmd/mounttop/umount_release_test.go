package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// mountedIn reports whether dir is a mount point in the mount namespace of
// pid (its /proc/PID/mountinfo, proc(5)).
func mountedIn(t *testing.T, pid int, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatalf("mountinfo of pid %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// holdsFile reports whether pid has an fd whose link reads path.
func holdsFile(pid int, path string) bool {
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name()); err == nil && l == path {
			return true
		}
	}
	return false
}

// sharedParentTarget makes a tmpfs under a shared parent: umount2 of it
// propagates to copies of our namespace made afterwards.
func sharedParentTarget(t *testing.T) string { return testns.TmpfsUnder(t, true) }

func writeTestFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUmountReleasePropagatingCopy: a process in another mount namespace
// holds a file in its copy of our mount, and the copy is a peer (shared
// parent), so our umount2 fails with EBUSY (propagate_mount_busy). Without
// --release the staged run names it and times out, the mount back in
// place; with --release the holder there is revoked (it lives on) and our
// unmount goes, taking the copy along.
func TestUmountReleasePropagatingCopy(t *testing.T) {
	testns.Require(t, testns.Namespace)
	dir := sharedParentTarget(t)
	f := filepath.Join(dir, "f")
	writeTestFile(t, f)
	v := testns.StartVictimInNewNS(t, testns.RoleFD, f, "r")
	if !mountedIn(t, v.PID, dir) {
		t.Fatalf("no copy of %s in the victim's namespace", dir)
	}
	args := []string{"umount", "--staged", "--interval", "50ms", "--yes"}

	// The run cannot succeed without --release: it drains until its
	// --timeout, then rolls back. 3s leaves its calls (each bounded by what
	// is left of it) time on a loaded machine.
	r := runMounttop(t, "", nil, append(append(args, "--timeout", "3s", dir), journalArgs(t)...)...)
	t.Logf("without --release:\n%s%s", r.stdout, r.stderr)
	if r.code != exitFailed || !testns.IsMountPoint(dir) {
		t.Fatalf("without --release: exit %d, mounted %v\n%s%s", r.code, testns.IsMountPoint(dir), r.stdout, r.stderr)
	}
	for _, want := range []string{"its copy in mount namespace mnt:[", fmt.Sprintf("held there by pid %d", v.PID), "is back at " + dir} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("without --release, stderr %q lacks %q", r.stderr, want)
		}
	}
	if !holdsFile(v.PID, f) {
		t.Fatal("without --release the holder in the other namespace was touched")
	}

	r = runMounttop(t, "", nil, "umount", "--staged", "--release", "--dry-run", dir)
	if want := fmt.Sprintf("pid %-7d", v.PID); r.code != 0 || !strings.Contains(r.stdout, want) ||
		!strings.Contains(r.stdout, "in mount namespace mnt:[") || !strings.Contains(r.stdout, "holding its copy at "+dir+": put a placeholder on fd") {
		t.Fatalf("the --release plan does not list the holder in the other namespace:\n%s%s", r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, append(append(args, "--release", dir), journalArgs(t)...)...)
	t.Logf("with --release:\n%s%s", r.stdout, r.stderr)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("with --release: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := fmt.Sprintf("pid %d (", v.PID); !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, ") in mount namespace mnt:[") ||
		!strings.Contains(r.stdout, "put a placeholder on fd") {
		t.Errorf("no revoke line for the holder in the other namespace:\n%s", r.stdout)
	}
	if holdsFile(v.PID, f) {
		t.Error("the holder still has the file open")
	}
	if mountedIn(t, v.PID, dir) {
		t.Error("the copy is still mounted in the other namespace")
	}
	time.Sleep(50 * time.Millisecond)
	if !v.Alive() {
		t.Fatal("the holder in the other namespace died")
	}
}

// TestUmountReleasePrivateCopy: a copy in another namespace that our
// unmount does not reach (private) keeps the filesystem alive. The dry run
// lists it "(with --release)"; --release unmounts it there, plainly when
// idle, lazily when a process there holds it (which lives on).
func TestUmountReleasePrivateCopy(t *testing.T) {
	testns.Require(t, testns.Namespace)
	for _, held := range []bool{false, true} {
		name := "idle"
		if held {
			name = "held"
		}
		t.Run(name, func(t *testing.T) {
			dir := testns.Tmpfs(t, "")
			f := filepath.Join(dir, "f")
			writeTestFile(t, f)
			var v *testns.Victim
			if held {
				v = testns.StartVictimInNewNS(t, testns.RoleFD, f, "r")
			} else {
				v = testns.StartVictimInNewNS(t, testns.RoleSleep)
			}
			if !mountedIn(t, v.PID, dir) {
				t.Fatalf("no copy of %s in the victim's namespace", dir)
			}
			r := runMounttop(t, "", nil, "umount", "--staged", "--dry-run", dir)
			want := fmt.Sprintf("release copy  unmount its copy at %s in mount namespace mnt:[", dir)
			if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, fmt.Sprintf("(pid %d)", v.PID)) ||
				!strings.Contains(r.stdout, "(with --release)") || strings.Contains(r.stdout, "lazily") != held {
				t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			r = runMounttop(t, "", nil, "umount", "--staged", "--dry-run", "--json", dir)
			var plan struct {
				Stage    string
				Release  bool
				Releases []struct {
					Kind, Mountpoint string
					PID              int
					Lazy             bool
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || plan.Stage != "plan" || plan.Release || len(plan.Releases) != 1 ||
				plan.Releases[0].Kind != "copy" || plan.Releases[0].PID != v.PID || plan.Releases[0].Mountpoint != dir || plan.Releases[0].Lazy != held {
				t.Fatalf("--json dry run: %v %+v\n%s", err, plan, r.stdout)
			}
			r = runMounttop(t, "", nil, append([]string{"umount", "--staged", "--release", "--interval", "50ms", "--yes", "--json", dir}, journalArgs(t)...)...)
			evs := jsonEvents(t, r.stdout)
			if r.code != 0 || testns.IsMountPoint(dir) {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(stagesOf(evs), "release") {
				t.Errorf("no release event: %s", stagesOf(evs))
			}
			if mountedIn(t, v.PID, dir) {
				t.Errorf("the copy is still mounted in pid %d's namespace", v.PID)
			}
			if !v.Alive() {
				t.Fatal("the process in the other namespace died")
			}
			// Detached there, the holder's fd reads relative to the
			// detached root.
			if held && !holdsFile(v.PID, "/f") {
				t.Error("a lazy unmount there should leave its holder's file open")
			}
		})
	}
}

// TestUmountReleaseLoop: a loop device backed by a file on a tmpfs keeps
// it busy with no process holding it; --release detaches the loop device
// and the tmpfs goes.
func TestUmountReleaseLoop(t *testing.T) {
	testns.Require(t, testns.RealRoot)
	dir := testns.Tmpfs(t, "")
	img := filepath.Join(dir, "img")
	dev := testns.LoopFile(t, img, 1)
	r := runMounttop(t, "", nil, "umount", "--staged", "--dry-run", dir)
	if !strings.Contains(r.stdout, "release loop  detach loop device "+dev) || !strings.Contains(r.stdout, "(with --release)") {
		t.Fatalf("dry run:\n%s%s", r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, append([]string{"umount", "--staged", "--release", "--interval", "50ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "done: detach loop device "+dev) {
		t.Errorf("no release line:\n%s", r.stdout)
	}
	// LOOP_CLR_FD completes when the device's last opener closes it: any
	// scan running meanwhile (every scan opens each loop device for
	// LOOP_GET_STATUS64, and other tests scan on this machine) defers it
	// a moment. Once free, the number may back another test's image at
	// once: what must go is our file.
	deadline := time.Now().Add(10 * time.Second)
	for testns.LoopAttachedTo(dev, img) {
		if time.Now().After(deadline) {
			t.Errorf("%s is still attached to %s", dev, img)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUmountReleaseLoopMounted: a loop device over a file on the target
// that is itself mounted cannot be detached (it would only turn into
// autoclear): the plan says so, and the run leaves it alone.
func TestUmountReleaseLoopMounted(t *testing.T) {
	loop := testns.LoopExt4(t, 16)
	// The image lies in t.TempDir(); put a tmpfs under it instead: the
	// ext4 image on a tmpfs, mounted from a loop device.
	dir := testns.Tmpfs(t, "")
	img := filepath.Join(dir, "disk.img")
	data, err := os.ReadFile(loop.Image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dev := testns.AttachLoop(t, img)
	mnt := testns.MountDir(t, "loopmnt")
	if err := unix.Mount(dev, mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, mnt)
	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--release", "--interval", "50ms", "--timeout", "400ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != exitFailed || !testns.IsMountPoint(dir) || !testns.IsMountPoint(mnt) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "REFUSED: detach loop device "+dev) || !strings.Contains(r.stdout, "itself mounted (at "+mnt+")") {
		t.Errorf("the plan does not refuse the mounted loop device:\n%s", r.stdout)
	}
	if !testns.LoopAttachedTo(dev, img) {
		t.Errorf("the mounted loop device %s was detached from %s", dev, img)
	}
}

// TestUmountReleaseSwap: a swap file on an ext4 image keeps the mount it
// was opened through busy; --release swaps it off and the mount goes. Under
// a shared parent the fence over-mounts the target and no path leads to the
// file any more, so it is swapped off before the fence.
func TestUmountReleaseSwap(t *testing.T) {
	t.Run("beneath-swap fence", func(t *testing.T) {
		loop := testns.LoopExt4(t, 16)
		releaseSwap(t, loop.Dir, "done: swapoff "+filepath.Join(loop.Dir, "swapfile"))
	})
	t.Run("over-mount fence", func(t *testing.T) {
		loop := testns.LoopExt4(t, 16)
		dir := sharedParentTarget(t)
		// The ext4 filesystem mounted a second time, under the shared
		// parent: the swap file is opened through this mount.
		if err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(loop.Device, dir, "ext4", 0, ""); err != nil {
			t.Fatal(err)
		}
		releaseSwap(t, dir, "(before the fence")
	})
}

func releaseSwap(t *testing.T, dir, want string) {
	t.Helper()
	sw := filepath.Join(dir, "swapfile")
	testns.SwapFile(t, sw, 4)
	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--release", "--interval", "50ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "done: swapoff "+sw) || !strings.Contains(r.stdout, want) {
		t.Errorf("no swapoff line with %q:\n%s", want, r.stdout)
	}
	swaps, err := os.ReadFile("/proc/swaps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(swaps), sw) {
		t.Errorf("the swap file is still in use:\n%s", swaps)
	}
}

// detachedID lazily unmounts dir and returns the unique ID that `list
// --json` gives the detached mount its holders keep alive.
func detachedID(t *testing.T, dir string, holders int) uint64 {
	t.Helper()
	// The mount's own unique ID, taken before it is detached: other tests
	// (and other work on the machine) may hold detached mounts of their
	// own, with as many holders.
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		t.Fatal(err)
	}
	if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		t.Skip("no unique mount IDs (Linux 6.8+)")
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	r := runMounttop(t, "", nil, "list", "--json")
	var out struct {
		Mounts []struct {
			UniqueID uint64 `json:"unique_id"`
			Detached bool   `json:"detached"`
			Holders  int    `json:"holders"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	for _, m := range out.Mounts {
		if m.UniqueID == stx.Mnt_id {
			if !m.Detached || m.Holders != holders {
				t.Fatalf("mount %d: detached %v with %d holders, want detached with %d", m.UniqueID, m.Detached, m.Holders, holders)
			}
			return m.UniqueID
		}
	}
	t.Fatalf("detached mount %d not listed in %s", stx.Mnt_id, r.stdout)
	return 0
}

// TestUmountDetachedByID: a lazily unmounted mount kept alive by an fd
// holder and a cwd holder is finished by --staged --id: both are revoked
// (and live on), and no scan finds the mount any more. The plain modes
// refuse it.
func TestUmountDetachedByID(t *testing.T) {
	testns.Require(t, testns.Namespace)
	dir := testns.Tmpfs(t, "")
	f := filepath.Join(dir, "f")
	writeTestFile(t, f)
	fd := testns.StartVictim(t, testns.RoleFD, f, "r")
	cwd := testns.StartVictim(t, testns.RoleCwd, dir)
	id := detachedID(t, dir, 2)
	for _, mode := range []string{"--lazy", "--expire", "--force"} {
		r := runMounttop(t, "", nil, append([]string{"umount", mode, "--yes", "--id", fmt.Sprint(id)}, journalArgs(t)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "detached") || !strings.Contains(r.stderr, "--staged") {
			t.Errorf("%s of a detached mount: exit %d %q", mode, r.code, r.stderr)
		}
	}
	r := runMounttop(t, "", nil, "umount", "--staged", "--dry-run", "--id", fmt.Sprint(id))
	if r.code != 0 || !strings.Contains(r.stdout, "no fence and no syncfs") || !strings.Contains(r.stdout, "pid "+strconv.Itoa(fd.PID)) {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, append([]string{"umount", "--staged", "--interval", "50ms", "--yes", "--json", "--id", fmt.Sprint(id)}, journalArgs(t)...)...)
	evs := jsonEvents(t, r.stdout)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	res := evs[len(evs)-1]["result"].(map[string]any)
	if res["gone"] != true || !strings.Contains(res["summary"].(string), fmt.Sprintf("detached mount %d is gone", id)) {
		t.Fatalf("result %v", res)
	}
	if holdsFile(fd.PID, "/f") {
		t.Error("the fd holder still holds the file")
	}
	if l, err := os.Readlink("/proc/" + strconv.Itoa(cwd.PID) + "/cwd"); err != nil || l != "/" {
		t.Errorf("the cwd holder's cwd is %q (%v), want /", l, err)
	}
	time.Sleep(50 * time.Millisecond)
	if !fd.Alive() || !cwd.Alive() {
		t.Fatal("a holder died")
	}
	r = runMounttop(t, "", nil, "holders", "--id", fmt.Sprint(id))
	if r.code != exitUsage {
		t.Errorf("the detached mount is still found: exit %d\n%s", r.code, r.stdout)
	}
}
