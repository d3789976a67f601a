package testns

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a fresh tmpfs on a new directory under t.TempDir and returns
// its path; it is unmounted (lazily, so a leftover holder cannot fail the
// cleanup) when the test ends.
func Tmpfs(t testing.TB, opts string) string {
	t.Helper()
	Require(t, Namespace)
	dir := mkdir(t, "tmpfs")
	if err := unix.Mount("mounttop-test", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	cleanupMount(t, dir)
	return dir
}

// TmpfsUnder mounts a tmpfs at PARENT/m inside a fresh tmpfs PARENT and
// returns PARENT/m. With shared, PARENT is made MS_SHARED first, so a copy
// of this namespace made afterwards holds a peer of PARENT and umount2 of
// PARENT/m propagates there (a busy copy then gives EBUSY); a
// MOVE_MOUNT_BENEATH fence is refused under it.
func TmpfsUnder(t testing.TB, shared bool) string {
	t.Helper()
	parent := Tmpfs(t, "")
	if shared {
		if err := unix.Mount("", parent, "", unix.MS_SHARED, ""); err != nil {
			t.Fatalf("making %s shared: %v", parent, err)
		}
	}
	dir := filepath.Join(parent, "m")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("target", dir, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	cleanupMount(t, dir)
	return dir
}

// Bind bind-mounts src on a new directory and returns its path.
func Bind(t testing.TB, src string) string {
	t.Helper()
	Require(t, Namespace)
	dir := mkdir(t, "bind")
	if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on %s: %v", src, dir, err)
	}
	cleanupMount(t, dir)
	return dir
}

// Loop is a loop-mounted ext4 image.
type Loop struct {
	Image, Device, Dir string
}

// LoopExt4 makes an ext4 image of sizeMiB in the test's temp dir, attaches
// it to a loop device and mounts it. Needs real root and mkfs.ext4.
func LoopExt4(t testing.TB, sizeMiB int) Loop {
	t.Helper()
	Require(t, RealRoot)
	mkfs := RequireTool(t, "mkfs.ext4")
	losetup := RequireTool(t, "losetup")
	img := filepath.Join(t.TempDir(), "disk.img")
	makeFile(t, img, sizeMiB)
	if out, err := exec.Command(mkfs, "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	dev := attachLoop(t, losetup, img)
	dir := mkdir(t, "ext4")
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
	cleanupMount(t, dir)
	return Loop{Image: img, Device: dev, Dir: dir}
}

// LoopFile makes a file of sizeMiB at path and attaches a loop device to it
// (losetup --find --show); the device, which it returns, is detached when
// the test ends. Needs real root.
func LoopFile(t testing.TB, path string, sizeMiB int) string {
	t.Helper()
	Require(t, RealRoot)
	losetup := RequireTool(t, "losetup")
	makeFile(t, path, sizeMiB)
	return attachLoop(t, losetup, path)
}

// AttachLoop attaches a loop device to an existing file (an image made by
// the test) and returns the device; it is detached when the test ends.
func AttachLoop(t testing.TB, file string) string {
	t.Helper()
	Require(t, RealRoot)
	return attachLoop(t, RequireTool(t, "losetup"), file)
}

// SwapFile makes a swap file of sizeMiB at path (mkswap) and swaps on it at
// the lowest priority, so the machine never prefers it; it is swapped off
// when the test ends. Swap is machine-wide: keep it small. Needs real root.
func SwapFile(t testing.TB, path string, sizeMiB int) {
	t.Helper()
	Require(t, RealRoot)
	mkswap := RequireTool(t, "mkswap")
	makeFile(t, path, sizeMiB)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkswap, path).CombinedOutput(); err != nil {
		t.Fatalf("mkswap: %v %s", err, out)
	}
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		t.Fatal(err)
	}
	const swapFlagPrefer = 0x8000 // with priority 0: the lowest
	if _, _, errno := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), swapFlagPrefer, 0); errno != 0 {
		t.Fatalf("swapon %s: %v", path, errno)
	}
	t.Cleanup(func() {
		// The test may have swapped it off already (EINVAL then).
		_, _, _ = unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0)
	})
}

func makeFile(t testing.TB, path string, sizeMiB int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Written, not sparse: swapon refuses files with holes.
	if _, err := f.Write(make([]byte, sizeMiB<<20)); err != nil {
		t.Fatal(err)
	}
}

func attachLoop(t testing.TB, losetup, file string) string {
	t.Helper()
	out, err := exec.Command(losetup, "--find", "--show", file).Output()
	if err != nil {
		t.Fatalf("losetup %s: %v", file, err)
	}
	dev := strings.TrimSpace(string(out))
	CleanupLoop(t, dev, file)
	return dev
}

// Loop devices are machine-wide, not per mount namespace: once a test's
// loop device is detached (by the test, or by mounttop under test), the
// same number may be handed to another test's file at any moment (losetup
// --find takes the first free one; packages' tests run in parallel). A
// test therefore tells its own attachment by the backing file, never by
// the device number alone.

// CleanupLoop arranges for loop device dev to be detached when the test
// ends if it is then still attached to one of files (the files the test
// attached to it; each identified now by device and inode). The check and
// the detach go through one fd of the device: LOOP_GET_STATUS64 gives the
// backing file's device and inode, LOOP_CLR_FD detaches (loop(4)). A
// device attached to anything else by then is another test's and is left
// alone.
func CleanupLoop(t testing.TB, dev string, files ...string) {
	t.Helper()
	type fileID struct{ dev, ino uint64 }
	var ours []fileID
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil {
			t.Fatalf("stat %s: %v", f, err)
		}
		ours = append(ours, fileID{uint64(st.Dev), st.Ino})
	}
	t.Cleanup(func() {
		fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		info, err := unix.IoctlLoopGetStatus64(fd)
		if err != nil {
			return // ENXIO: nothing attached any more
		}
		for _, id := range ours {
			if info.Device == id.dev && info.Inode == id.ino {
				// With the device still mounted or open elsewhere
				// this only sets autoclear; the last close detaches.
				_ = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
				return
			}
		}
	})
}

// LoopAttachedTo reports whether loop device dev is attached to the file
// at path, as /sys/block/loopN/loop/backing_file names it (the path in
// this namespace; " (deleted)" appended once it is unlinked). It opens
// nothing: an open of the device would itself defer a detach that waits
// for the last close. Poll this, not the mere existence of backing_file,
// to see a test's own device let go: the number may already back another
// test's file.
func LoopAttachedTo(dev, path string) bool {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
	if err != nil {
		return false
	}
	s := strings.TrimSuffix(string(b), "\n")
	return s == path || s == path+" (deleted)"
}

// Fuse is a bindfs mount and its daemon.
type Fuse struct {
	Dir    string
	Daemon *os.Process
}

// Bindfs mounts src through bindfs (a FUSE filesystem) in the foreground so
// the test owns the daemon's pid; Stop/Cont freeze and thaw the daemon to
// play a dead server.
func Bindfs(t testing.TB, src string) *Fuse {
	t.Helper()
	Require(t, Namespace)
	bin := RequireTool(t, "bindfs")
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		skipOrFail(t, "FUSE needs read-write access to /dev/fuse: "+err.Error())
	}
	dir := mkdir(t, "fuse")
	cmd := exec.Command(bin, "-f", "--no-allow-other", src, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("bindfs: %v", err)
	}
	fs := &Fuse{Dir: dir, Daemon: cmd.Process}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGCONT)
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for !IsMountPoint(dir) {
		if time.Now().After(deadline) {
			t.Fatalf("bindfs did not mount %s: %s", dir, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fs
}

// Stop freezes the FUSE daemon (SIGSTOP): requests to it now hang.
func (f *Fuse) Stop(t testing.TB) {
	t.Helper()
	if err := f.Daemon.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Cont thaws the daemon.
func (f *Fuse) Cont(t testing.TB) {
	t.Helper()
	if err := f.Daemon.Signal(unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// IsMountPoint reports whether path is a mount point in this namespace,
// reading /proc/self/mountinfo only (no path walk below it).
func IsMountPoint(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeOctal(fields[4]) == path {
			return true
		}
	}
	return false
}

// MountDir makes a fresh empty directory under the test's temp dir, for a
// test that mounts something of its own.
func MountDir(t testing.TB, name string) string { t.Helper(); return mkdir(t, name) }

// CleanupMount arranges for dir to be detached when the test ends.
func CleanupMount(t testing.TB, dir string) { cleanupMount(t, dir) }

func mkdir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func cleanupMount(t testing.TB, dir string) {
	t.Cleanup(func() {
		// Detach repeatedly: a test may have stacked mounts on dir.
		for i := 0; i < 8 && IsMountPoint(dir); i++ {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "testns: detaching %s: %v\n", dir, err)
				return
			}
		}
	})
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
