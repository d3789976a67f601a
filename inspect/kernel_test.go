package inspect

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func init() {
	// unshare-fd PATH [private]: the leader thread moves to a new mount
	// namespace (a copy of ours: shared mounts become peers) and holds
	// PATH open there; "private" first makes every copy private.
	testns.RegisterRole("unshare-fd", 1, func(args []string) error {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if len(args) > 1 && args[1] == "private" {
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
		}
		if _, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
	// uring PATH: registers PATH with an io_uring (IORING_REGISTER_FILES)
	// and closes its own fd: only the ring holds the file.
	testns.RegisterRole("uring", 1, func(args []string) error {
		var params [120]byte // struct io_uring_params
		ring, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
		if errno != 0 {
			return errno
		}
		fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fds := []int32{int32(fd)}
		const ioringRegisterFiles = 2
		if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, ring, ioringRegisterFiles, uintptr(unsafe.Pointer(&fds[0])), 1, 0, 0); errno != 0 {
			return errno
		}
		unix.Close(fd)
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

func init() {
	// ns-mount-hold DIR: mounts a tmpfs on DIR in a new private namespace,
	// leaves a child living there to keep it, opens a file on it, then
	// returns to the original namespace holding that fd. Prints
	// "child PID" before "ready".
	testns.RegisterRole("ns-mount-hold", 1, func(args []string) error {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := unix.Mount("elsewhere", args[0], "tmpfs", 0, ""); err != nil {
			return err
		}
		fd, err := unix.Open(args[0]+"/f", unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		_ = fd
		exe, _ := os.Executable()
		child := exec.Command(exe) // starts on this locked thread, so in the new namespace
		child.Env = append(os.Environ(), "MOUNTTOP_TEST_VICTIM=sleep")
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
		if err := child.Start(); err != nil {
			return err
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNS); err != nil {
			return err
		}
		testns.Say("child %d", child.Process.Pid)
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

// TestHeldMountOfAnotherNamespace: a process of our namespace holding an
// fd on a mount that exists only in another namespace (opened before it
// moved) is a holder of that namespace's mount, not of a "detached" one.
func TestHeldMountOfAnotherNamespace(t *testing.T) {
	dir := testns.MountDir(t, "elsewhere")
	v := testns.StartVictim(t, "ns-mount-hold", dir)
	var child int
	fmt.Sscanf(v.WaitLine(t, "child", time.Second), "child %d", &child)
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) })
	snap := scan(t)
	for _, m := range snap.Detached() {
		for _, h := range snap.HoldersOf(m.ID) {
			for _, u := range h.Uses {
				if h.PID == v.PID && strings.HasSuffix(u.Path, "/f") {
					t.Fatalf("the other namespace's tmpfs was reported as detached: %+v", m)
				}
			}
		}
	}
	found := false
	for _, ns := range snap.Namespaces {
		for _, m := range ns.Mounts {
			if m.Mountpoint != dir {
				continue
			}
			for _, h := range ns.Holders[m.OldID] {
				found = found || h.PID == v.PID
			}
		}
	}
	if !found {
		t.Errorf("pid %d not listed as a holder of the tmpfs in the other namespace", v.PID)
	}
}

// TestOtherNamespaceCopies: a process in its own mount namespace holding a
// file in its copy of our mount is found, with why it matters: a private
// copy keeps the filesystem alive; a shared peer makes our umount EBUSY.
func TestOtherNamespaceCopies(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "private copy"
		if shared {
			name = "shared peer"
		}
		t.Run(name, func(t *testing.T) {
			// With a shared parent, unshare copies both and the copy of
			// the parent is a peer of ours.
			dir := testns.TmpfsUnder(t, shared)
			writeFile(t, filepath.Join(dir, "f"))
			args := []string{filepath.Join(dir, "f"), "private"}
			if shared {
				args = args[:1]
			}
			v := testns.StartVictim(t, "unshare-fd", args...)
			snap := scan(t)
			m := mountAt(t, snap, dir)
			if holder(snap, m.ID, v.PID) != nil {
				t.Errorf("the copy's holder is attributed to our mount")
			}
			var found *Copy
			for _, c := range snap.Copies(m.ID) {
				for _, h := range c.Holders {
					if h.PID == v.PID && findUse(&h, UseFD) != nil && findUse(&h, UseFD).Path == filepath.Join(dir, "f") {
						c := c
						found = &c
					}
				}
			}
			if found == nil {
				t.Fatalf("no copy held by pid %d among %+v", v.PID, snap.Copies(m.ID))
			}
			if found.Propagates != shared {
				t.Errorf("Propagates = %v, want %v", found.Propagates, shared)
			}
			pidListed := false
			for _, p := range found.Namespace.PIDs {
				pidListed = pidListed || p == v.PID
			}
			if !pidListed {
				t.Errorf("victim not listed among the namespace's processes %v", found.Namespace.PIDs)
			}
			err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
			if shared && !errors.Is(err, unix.EBUSY) {
				t.Errorf("umount with a busy shared peer: %v, want EBUSY", err)
			}
			if !shared && err != nil {
				t.Errorf("umount with a private copy: %v, want success", err)
			}
		})
	}
}

// TestDetachedMount: after a lazy unmount, a mount kept alive by a holder
// is listed as detached, with that holder.
func TestDetachedMount(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	writeFile(t, filepath.Join(dir, "f"))
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
	c := testns.StartVictim(t, testns.RoleCwd, dir)
	before := mountAt(t, scan(t), dir)
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	snap := scan(t)
	var det *Mount
	for _, m := range snap.Detached() {
		if m.ID == before.ID {
			det = m
		}
	}
	if det == nil {
		t.Fatalf("detached mount %d not found: %+v", before.ID, snap.Detached())
	}
	if det.Major != before.Major || det.Minor != before.Minor {
		t.Errorf("detached device %s, want %s", det.Device(), before.Device())
	}
	if u := findUse(holder(snap, det.ID, v.PID), UseFD); u == nil || u.Path != "/f" {
		t.Errorf("fd holder of the detached mount: %+v (paths read relative to the detached root)", u)
	}
	if findUse(holder(snap, det.ID, c.PID), UseCwd) == nil {
		t.Errorf("cwd holder of the detached mount missing")
	}
}

// TestKernelHolders: submounts, io_uring registered files, loop devices and
// swap files pin a mount with no process fd to show for it.
func TestKernelHolders(t *testing.T) {
	kernel := func(s *Snapshot, id MountID, kind KernelKind) *KernelHolder {
		for _, k := range s.Kernel[id] {
			if k.Kind == kind {
				return &k
			}
		}
		return nil
	}
	t.Run("submount", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("x", sub, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		snap := scan(t)
		if k := kernel(snap, mountAt(t, snap, dir).ID, "submount"); k == nil || k.Path != sub {
			t.Errorf("submount: %+v", k)
		}
	})
	t.Run("io_uring", func(t *testing.T) {
		dir := testns.Tmpfs(t, "")
		f := filepath.Join(dir, "ring file")
		writeFile(t, f)
		v := testns.StartVictim(t, "uring", f)
		snap := scan(t)
		m := mountAt(t, snap, dir)
		if k := kernel(snap, m.ID, "io_uring"); k == nil || k.PID != v.PID || k.Path != f {
			t.Errorf("io_uring holder: %+v", snap.Kernel[m.ID])
		}
	})
	t.Run("loop", func(t *testing.T) {
		testns.Require(t, testns.RealRoot)
		dir := testns.Tmpfs(t, "")
		img := filepath.Join(dir, "img")
		dev := testns.LoopFile(t, img, 1)
		snap := scan(t)
		k := kernel(snap, mountAt(t, snap, dir).ID, "loop")
		if k == nil || k.Name != dev || k.Path != img || k.MountedAt != "" {
			t.Errorf("loop holder: %+v", k)
		}
	})
	t.Run("swap", func(t *testing.T) {
		loop := testns.LoopExt4(t, 16)
		sw := filepath.Join(loop.Dir, "swapfile")
		testns.SwapFile(t, sw, 4)
		snap := scan(t)
		if k := kernel(snap, mountAt(t, snap, loop.Dir).ID, "swap"); k == nil || k.Path != sw {
			t.Errorf("swap holder: %+v", snap.Kernel[mountAt(t, snap, loop.Dir).ID])
		}
	})
}

func TestUnitOf(t *testing.T) {
	for _, c := range []struct{ in, unit, ctr string }{
		{"/system.slice/nginx.service", "nginx.service", ""},
		{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope", ""},
		{"/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope", "docker-" + strings.Repeat("ab", 32) + ".scope", strings.Repeat("ab", 32)},
		{"/kubepods/besteffort/pod1/" + strings.Repeat("0f", 32), "", strings.Repeat("0f", 32)},
		{"/", "", ""},
	} {
		if u, c2 := unitOf(c.in); u != c.unit || c2 != c.ctr {
			t.Errorf("unitOf(%q) = %q, %q", c.in, u, c2)
		}
	}
}
