package release

import (
	"errors"
	"fmt"
	"mounttop/inspect"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func TestMain(m *testing.M) {
	testns.Main(m) // a victim's main goroutine is locked to the main thread by testns's init

}

func init() {
	// ns-hold PATH: in a private copy of our namespace, hold PATH open
	// (or, with "idle", just live there).
	testns.RegisterRole("ns-hold", 2, func(args []string) error {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if args[1] == "hold" {
			if _, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
				return err
			}
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

func mountedIn(t *testing.T, pid int, dir string) int {
	t.Helper()
	id, _ := copyAt(t, pid, dir)
	return id
}

// copyAt is the topmost mount at mountpoint in pid's mountinfo (proc(5)),
// with its parent's ID; 0, 0 if there is none.
func copyAt(t *testing.T, pid int, mountpoint string) (id, parent int) {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	type ent struct{ id, parent int }
	var at []ent
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 || inspect.UnescapeSeqPath(fields[4]) != mountpoint {
			continue
		}
		var e ent
		fmt.Sscan(fields[0], &e.id)
		fmt.Sscan(fields[1], &e.parent)
		at = append(at, e)
	}
	if len(at) == 0 {
		return 0, 0
	}
	top := at[0]
	for _, e := range at[1:] {
		if e.parent == top.id {
			top = e
		}
	}
	return top.id, top.parent
}

// copyOf is the Copy of the mount at dir in pid's namespace, as a scan
// would identify it.
func copyOf(t *testing.T, pid int, dir string) Copy {
	t.Helper()
	id, parent := copyAt(t, pid, dir)
	if id == 0 {
		t.Fatalf("no copy of %s in the namespace of pid %d", dir, pid)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/mnt", &st); err != nil {
		t.Fatal(err)
	}
	var fs unix.Stat_t
	if err := unix.Stat(dir, &fs); err != nil {
		t.Fatal(err)
	}
	return Copy{PID: pid, Namespace: st.Ino, Mountpoint: dir, OldID: id, ParentOldID: parent, Dev: fs.Dev}
}

// TestUnmountInNamespace: a copy of our mount in another namespace is
// unmounted there, plainly when idle, lazily when busy; a wrong expected ID
// is refused.
func TestUnmountInNamespace(t *testing.T) {
	testns.Require(t, testns.Namespace)
	dir := testns.Tmpfs(t, "")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	idle := testns.StartVictim(t, "ns-hold", filepath.Join(dir, "f"), "idle")
	busy := testns.StartVictim(t, "ns-hold", filepath.Join(dir, "f"), "hold")

	c := copyOf(t, idle.PID, dir)
	wrong := c
	wrong.OldID += 1000
	if err := UnmountInNamespace(wrong, 0); !errors.Is(err, ErrChanged) {
		t.Errorf("wrong expected ID: %v, want ErrChanged", err)
	}
	wrong = c
	wrong.Namespace++
	if err := UnmountInNamespace(wrong, 0); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "mount namespace") {
		t.Errorf("wrong namespace inode: %v, want ErrChanged", err)
	}
	if err := UnmountInNamespace(c, 0); err != nil {
		t.Fatalf("plain unmount of an idle copy: %v", err)
	}
	if mountedIn(t, idle.PID, dir) != 0 {
		t.Error("the idle copy is still mounted")
	}
	bc := copyOf(t, busy.PID, dir)
	if err := UnmountInNamespace(bc, 0); !errors.Is(err, unix.EBUSY) {
		t.Errorf("plain unmount of a busy copy: %v, want EBUSY", err)
	}
	if err := UnmountInNamespace(bc, unix.MNT_DETACH); err != nil {
		t.Fatalf("lazy unmount of a busy copy: %v", err)
	}
	if mountedIn(t, busy.PID, dir) != 0 {
		t.Error("the busy copy is still attached")
	}
	// Our own namespace, and this thread, are untouched.
	if !testns.IsMountPoint(dir) {
		t.Error("our mount went away")
	}
	for i := 0; i < 20; i++ { // goroutines on other threads still see our namespace
		if !testns.IsMountPoint(dir) {
			t.Fatal("a thread moved namespace")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDetachLoopFreesTheMount: a loop device backed by a file on a tmpfs
// keeps the tmpfs busy; detaching it lets the tmpfs go.
func TestDetachLoopFreesTheMount(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	dev := testns.LoopFile(t, filepath.Join(dir, "img"), 1)
	if err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("umount with a loop device over a file on it: %v, want EBUSY", err)
	}
	if err := DetachLoop(dev, backingOf(t, dev)); err != nil {
		t.Fatal(err)
	}
	// LOOP_CLR_FD releases the file once the device is closed: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("umount after detaching the loop device: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSwapoffFreesTheMount: a swap file on an ext4 image keeps it busy;
// swapoff lets it go.
func TestSwapoffFreesTheMount(t *testing.T) {
	loop := testns.LoopExt4(t, 16)
	sw := filepath.Join(loop.Dir, "swapfile")
	testns.SwapFile(t, sw, 4)
	if err := unix.Unmount(loop.Dir, unix.UMOUNT_NOFOLLOW); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("umount with a swap file on it: %v, want EBUSY", err)
	}
	if err := Swapoff(sw, fileID(t, sw)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(loop.Dir, unix.UMOUNT_NOFOLLOW); err != nil {
		t.Fatalf("umount after swapoff: %v", err)
	}
}

func init() {
	// main-thread-setns PID: from the main goroutine, locked to the main
	// thread by TestMain, run a setns into PID's mount namespace the way
	// UnmountInNamespace does; report the thread it ran on and whether
	// the process (as /proc/self shows it) stayed in its namespace.
	testns.RegisterRole("main-thread-setns", 1, func(args []string) error {
		if unix.Gettid() != unix.Getpid() {
			return errors.New("the role does not run on the main thread")
		}
		before, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			return err
		}
		nsfd, err := unix.Open("/proc/"+args[0]+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		var tid int
		done := make(chan error, 1)
		lockedRun(func() error {
			tid = unix.Gettid()
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return err
			}
			return unix.Setns(nsfd, unix.CLONE_NEWNS)
		}, done)
		if err := <-done; err != nil {
			return err
		}
		after, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			return err
		}
		testns.Say("ran on %d, main %d, namespace %s -> %s", tid, unix.Getpid(), before, after)
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

// TestNeverOnTheMainThread: started from a goroutine on the main thread,
// the setns work runs on another thread, and the process stays in its
// namespace (/proc/self follows the main thread).
func TestNeverOnTheMainThread(t *testing.T) {
	testns.Require(t, testns.Namespace)
	other := testns.StartVictim(t, "ns-hold", "/", "idle")
	v := testns.StartVictim(t, "main-thread-setns", strconv.Itoa(other.PID))
	var tid, pid int
	var before, after string
	line := v.WaitLine(t, "ran on", time.Second)
	if _, err := fmt.Sscanf(line, "ran on %d, main %d, namespace %s -> %s", &tid, &pid, &before, &after); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if tid == pid || before != after {
		t.Fatalf("%s", line)
	}
}

// backingOf is the device and inode of the file behind loop device dev
// (LOOP_GET_STATUS64), as the scan records them.
func backingOf(t *testing.T, dev string) FileID {
	t.Helper()
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	st, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		t.Fatal(err)
	}
	return FileID{Dev: st.Device, Ino: st.Inode}
}

// fileID is the device and inode of the file at p (not following a last
// link), as the scan records a swap file's.
func fileID(t *testing.T, p string) FileID {
	t.Helper()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO, &stx); err != nil {
		t.Fatal(err)
	}
	return FileID{Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}
}

func init() {
	// ns-mask HOW P Q: in a private copy of our namespace, play a
	// container's root that redirects P/x/m (the copy of our mount there)
	// to a masking tmpfs of its own (runc masks paths with such mounts):
	// with HOW "symlink", Q/m gets the masking tmpfs and P is over-mounted
	// by a tmpfs in which x is a symbolic link to Q; with HOW "overmount",
	// P/x is over-mounted by a tmpfs whose directory m gets the masking
	// tmpfs. Either way the path P/x/m now leads to the masking mount,
	// while mountinfo still lists the copy at P/x/m. With HOW "replace",
	// the copy at P/x/m is unmounted there and the masking tmpfs mounted
	// in its place.
	testns.RegisterRole("ns-mask", 3, func(args []string) error {
		how, p, q := args[0], args[1], args[2]
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		mask := func(dir string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return unix.Mount("masking", dir, "tmpfs", unix.MS_RDONLY, "size=4k")
		}
		switch how {
		case "symlink":
			if err := mask(filepath.Join(q, "m")); err != nil {
				return err
			}
			if err := unix.Mount("redirect", p, "tmpfs", 0, ""); err != nil {
				return err
			}
			if err := os.Symlink(q, filepath.Join(p, "x")); err != nil {
				return err
			}
		case "overmount":
			x := filepath.Join(p, "x")
			if err := unix.Mount("redirect", x, "tmpfs", 0, ""); err != nil {
				return err
			}
			if err := mask(filepath.Join(x, "m")); err != nil {
				return err
			}
		case "replace":
			m := filepath.Join(p, "x", "m")
			if err := unix.Unmount(m, unix.UMOUNT_NOFOLLOW); err != nil {
				return err
			}
			if err := mask(m); err != nil {
				return err
			}
		default:
			return fmt.Errorf("ns-mask: HOW is symlink, overmount or replace, not %q", how)
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

// TestUnmountInNamespaceRefusesARedirect: the container attack.
// Inside another mount namespace, whose directories its root controls, the
// path of the copy of our mount is redirected to a masking mount of the
// container's (a symbolic link in the middle of the path, or an over-mount
// of its parent directory); mountinfo still lists the copy at that path,
// so a check of the table and umount2(path) removed the masking mount.
// The release now refuses, and both the masking mount and the copy stay.
func TestUnmountInNamespaceRefusesARedirect(t *testing.T) {
	testns.Require(t, testns.Namespace)
	for _, how := range []string{"symlink", "overmount"} {
		t.Run(how, func(t *testing.T) {
			p := testns.Tmpfs(t, "")
			q := testns.Tmpfs(t, "")
			target := filepath.Join(p, "x", "m")
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("target", target, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			testns.CleanupMount(t, target)
			v := testns.StartVictim(t, "ns-mask", how, p, q)
			c := copyOf(t, v.PID, target)
			maskAt := filepath.Join(q, "m")
			if how == "overmount" {
				maskAt = target
			}
			maskID := maskIn(t, v.PID, maskAt)
			err := UnmountInNamespace(c, 0)
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("release through a redirected path: %v, want ErrChanged", err)
			}
			if maskIn(t, v.PID, maskAt) != maskID {
				t.Fatal("the container's masking mount was unmounted")
			}
			if id, _ := copyAt(t, v.PID, target); id != c.OldID && how == "symlink" {
				t.Fatalf("the copy changed: %d, was %d", id, c.OldID)
			}
			if !testns.IsMountPoint(target) {
				t.Fatal("our own mount went away")
			}
		})
	}
}

// TestUnmountInNamespaceRefusesAReusedID: the container unmounted the copy
// after the scan and mounted its masking tmpfs in its place, and the
// masking mount got the copy's 32-bit mount ID (the kernel hands out the
// lowest free one again). Which ID the kernel picks cannot be arranged on
// a machine shared with other tests, so the reuse is played by taking the
// masking mount's ID (and parent) as what the scan saw: the mount at the
// copy's place then carries the inspected IDs, and only its filesystem
// tells it apart. The release refuses; the masking mount stays.
func TestUnmountInNamespaceRefusesAReusedID(t *testing.T) {
	testns.Require(t, testns.Namespace)
	p := testns.Tmpfs(t, "")
	q := testns.Tmpfs(t, "")
	target := filepath.Join(p, "x", "m")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("target", target, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, target)
	v := testns.StartVictim(t, "ns-mask", "replace", p, q)
	maskID := maskIn(t, v.PID, target)
	c := copyOf(t, v.PID, target) // the IDs at the copy's place, our filesystem
	if maskID == 0 || c.OldID != maskID {
		t.Fatalf("the masking mount (%d) is not in the copy's place (%d)", maskID, c.OldID)
	}
	err := UnmountInNamespace(c, 0)
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "reused") {
		t.Fatalf("release of a mount that carries the copy's ID: %v, want ErrChanged (another filesystem)", err)
	}
	if maskIn(t, v.PID, target) != maskID {
		t.Fatal("the container's masking mount was unmounted")
	}
}

// maskIn is the ID of the masking tmpfs ("masking") at dir in pid's
// mountinfo, 0 if there is none.
func maskIn(t *testing.T, pid int, dir string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && inspect.UnescapeSeqPath(f[4]) == dir && f[len(f)-2] == "masking" {
			id, _ := strconv.Atoi(f[0])
			return id
		}
	}
	return 0
}

// TestDetachLoopRefusesAnotherBackingFile: after the scan, the file at the
// loop device's backing path was replaced by another (renamed over it) and
// the device switched to it (LOOP_CHANGE_FD, allowed on a read-only loop
// device): same device, same path, another file. The detach refuses, and
// the device stays attached; with the file it now has, it detaches.
func TestDetachLoopRefusesAnotherBackingFile(t *testing.T) {
	testns.Require(t, testns.RealRoot)
	losetup := testns.RequireTool(t, "losetup")
	dir := testns.Tmpfs(t, "")
	img := filepath.Join(dir, "img")
	for _, p := range []string{img, img + ".new"} {
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(losetup, "--find", "--show", "--read-only", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	// Detached at the end only if still attached to one of our two files
	// (the test detaches it itself; the number may be another's by then).
	testns.CleanupLoop(t, dev, img, img+".new")
	scanned := backingOf(t, dev)

	if err := os.Rename(img+".new", img); err != nil {
		t.Fatal(err)
	}
	nf, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	const loopChangeFD = 0x4C06 // loop(4) LOOP_CHANGE_FD
	err = unix.IoctlSetInt(fd, loopChangeFD, int(nf.Fd()))
	unix.Close(fd)
	if err != nil {
		t.Fatalf("LOOP_CHANGE_FD: %v", err)
	}
	now := backingOf(t, dev)
	if now == scanned {
		t.Fatal("the backing file did not change")
	}

	err = DetachLoop(dev, scanned)
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "another file") {
		t.Fatalf("detach with the scanned backing file: %v, want ErrChanged", err)
	}
	bf, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
	if err != nil || strings.TrimSpace(string(bf)) != img {
		t.Fatalf("the loop device lost its backing file: %q %v", bf, err)
	}
	if err := DetachLoop(dev, now); err != nil {
		t.Fatalf("detach with the current backing file: %v", err)
	}
}

// TestSwapoffRefusesAnotherFile: two swap files, ours at L/d/swapfile
// and another at L/v/swapfile. After the scan, L/d is moved away and the
// path redirected to the other one: by a symbolic link (L/d -> L/v) or by
// moving L/v to L/d. swapoff(path) would have swapped off the other file;
// the release refuses both ways, and both stay swapped on.
func TestSwapoffRefusesAnotherFile(t *testing.T) {
	loop := testns.LoopExt4(t, 32)
	for _, how := range []string{"symlink", "rename"} {
		t.Run(how, func(t *testing.T) {
			base := filepath.Join(loop.Dir, how)
			d, v := filepath.Join(base, "d"), filepath.Join(base, "v")
			for _, dir := range []string{d, v} {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			ours, other := filepath.Join(d, "swapfile"), filepath.Join(v, "swapfile")
			testns.SwapFile(t, ours, 4)
			testns.SwapFile(t, other, 4)
			scanned := fileID(t, ours)
			// Put the paths back before SwapFile's clean-ups swap off
			// by them (t.Cleanup runs last-registered first): swap is
			// machine-wide, and a file left swapped on keeps the
			// filesystem alive after the test.
			t.Cleanup(func() {
				if fi, err := os.Lstat(d); err == nil && fi.Mode()&os.ModeSymlink != 0 {
					_ = os.Remove(d)
				} else if err == nil {
					_ = os.Rename(d, v)
				}
				_ = os.Rename(filepath.Join(base, "d.old"), d)
			})
			if err := os.Rename(d, filepath.Join(base, "d.old")); err != nil {
				t.Fatal(err)
			}
			if how == "symlink" {
				if err := os.Symlink(v, d); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Rename(v, d); err != nil {
				t.Fatal(err)
			}
			err := Swapoff(ours, scanned)
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("swapoff of a redirected path: %v, want ErrChanged", err)
			}
			b, err := os.ReadFile("/proc/swaps")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{filepath.Join(base, "d.old", "swapfile")} {
				if !listedSwap(string(b), want) {
					t.Errorf("%s is no longer swapped on:\n%s", want, b)
				}
			}
			if n := strings.Count(string(b), base+"/"); n != 2 {
				t.Errorf("%d of our 2 swap files are swapped on:\n%s", n, b)
			}
		})
	}
}
