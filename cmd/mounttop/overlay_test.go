package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
	"mounttop/unmount/release"
)

// TestOverlayHoldsExt4: an overlay whose layers lie on an ext4 filesystem
// on a loop device, mounted elsewhere, keeps that filesystem alive after
// its own mount is gone (umount of it succeeds: the overlay has private
// clones of its layers). `holders` names the overlay as a kernel holder
// with its action; once the overlay is unmounted too, the loop device can
// be opened exclusively, detached, and its image mounted again.
func TestOverlayHoldsExt4(t *testing.T) {
	l := testns.LoopExt4(t, 16)
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(l.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ov := testns.MountDir(t, "ov")
	if err := unix.Mount("ov", ov, "overlay", 0, fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", l.Dir, l.Dir, l.Dir)); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	testns.CleanupMount(t, ov)

	r := runMounttop(t, "", nil, "holders", "--json", l.Dir)
	if r.code != 0 {
		t.Fatalf("holders: exit %d: %s", r.code, r.stderr)
	}
	var out struct {
		Holders       []json.RawMessage `json:"holders"`
		KernelHolders []struct {
			Kind, Name, Action string
			Layers             []string
		} `json:"kernel_holders"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	wantLayers := fmt.Sprintf("[lowerdir=%s/lower upperdir=%s/upper workdir=%s/work]", l.Dir, l.Dir, l.Dir)
	if len(out.Holders) != 0 || len(out.KernelHolders) != 1 || out.KernelHolders[0].Kind != "overlay" || out.KernelHolders[0].Name != ov ||
		fmt.Sprint(out.KernelHolders[0].Layers) != wantLayers || out.KernelHolders[0].Action != "unmount the overlay at "+ov+" first" {
		t.Errorf("holders --json %s = %s, want just the overlay at %s with layers %s", l.Dir, r.stdout, ov, wantLayers)
	}
	if r := runMounttop(t, "", nil, "holders", l.Dir); !strings.Contains(r.stdout, "held by the kernel:\n  overlay "+ov+"  layers lowerdir=") {
		t.Errorf("holders text does not name the overlay:\n%s", r.stdout)
	}
	if r := runMounttop(t, "", nil, "umount", "--staged", "--dry-run", l.Dir); !strings.Contains(r.stdout, "held by overlay "+ov) ||
		!strings.Contains(r.stdout, "unmount the overlay at "+ov+" first") {
		t.Errorf("the staged plan does not name the overlay:\n%s%s", r.stdout, r.stderr)
	}

	if err := unix.Unmount(l.Dir, 0); err != nil {
		t.Fatalf("umount %s (the overlay keeps its own clones, so this succeeds): %v", l.Dir, err)
	}
	if fd, err := unix.Open(l.Device, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
		t.Fatalf("%s opened exclusively while the overlay still uses the ext4 on it", l.Device)
	} else if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("open %s O_EXCL: %v, want EBUSY", l.Device, err)
	}
	if err := unix.Unmount(ov, 0); err != nil {
		t.Fatalf("umount the overlay: %v", err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, l.Image, 0, unix.STATX_INO, &stx); err != nil {
		t.Fatal(err)
	}
	if err := release.DetachLoop(l.Device, release.FileID{Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}); err != nil {
		t.Fatalf("detaching %s after the overlay went: %v", l.Device, err)
	}
	again := testns.MountDir(t, "again")
	dev := testns.AttachLoop(t, l.Image)
	if err := unix.Mount(dev, again, "ext4", 0, ""); err != nil {
		t.Fatalf("mounting the image again (%s): %v", dev, err)
	}
	testns.CleanupMount(t, again)
	if _, err := os.Stat(filepath.Join(again, "upper")); err != nil {
		t.Errorf("the image mounted again lacks the overlay's upper dir: %v", err)
	}
}
