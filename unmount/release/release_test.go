package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func TestMain(m *testing.M) {
	runtime.LockOSThread() // as cmd/mounttop does: the main thread never moves namespace
	testns.Main(m)
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
	id, ok, err := topMountAt("/proc/"+strconv.Itoa(pid)+"/mountinfo", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0
	}
	return id
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

	id := mountedIn(t, idle.PID, dir)
	if id == 0 {
		t.Fatal("no copy in the idle namespace")
	}
	if err := UnmountInNamespace(idle.PID, dir, id+1000, 0); !errors.Is(err, ErrChanged) {
		t.Errorf("wrong expected ID: %v, want ErrChanged", err)
	}
	if err := UnmountInNamespace(idle.PID, dir, id, 0); err != nil {
		t.Fatalf("plain unmount of an idle copy: %v", err)
	}
	if mountedIn(t, idle.PID, dir) != 0 {
		t.Error("the idle copy is still mounted")
	}
	bid := mountedIn(t, busy.PID, dir)
	if err := UnmountInNamespace(busy.PID, dir, bid, 0); !errors.Is(err, unix.EBUSY) {
		t.Errorf("plain unmount of a busy copy: %v, want EBUSY", err)
	}
	if err := UnmountInNamespace(busy.PID, dir, bid, unix.MNT_DETACH); err != nil {
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
	if err := DetachLoop(dev, true); err == nil {
		t.Error("DetachLoop of a mounted loop device should refuse")
	}
	if err := DetachLoop(dev, false); err != nil {
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
	if err := Swapoff(sw); err != nil {
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
