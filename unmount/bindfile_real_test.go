package unmount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// bindFile bind-mounts a file of one tmpfs ("secret") over a file of
// another ("original"), as a container's resolv.conf or a secret is, with
// one process holding an fd on it and one with it mapped. With shared, the
// file lies on a shared mount (MOVE_MOUNT_BENEATH is refused: the fence
// over-mounts).
func bindFile(t *testing.T, shared bool) (path string, fd, mm *testns.Victim) {
	t.Helper()
	path = filepath.Join(testns.Tmpfs(t, ""), "resolv.conf")
	if shared {
		path = filepath.Join(filepath.Dir(testns.TmpfsUnder(t, true)), "resolv.conf")
	}
	writeFile(t, path, "original")
	secret := filepath.Join(testns.Tmpfs(t, ""), "secret")
	writeFile(t, secret, "secret")
	if err := unix.Mount(secret, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over %s: %v", secret, path, err)
	}
	testns.CleanupMount(t, path)
	return path, testns.StartVictim(t, testns.RoleFD, path, "r"), testns.StartVictim(t, testns.RoleMmap, path)
}

func readsAs(t *testing.T, path, want string) {
	t.Helper()
	if b, err := os.ReadFile(path); err != nil || string(b) != want {
		t.Errorf("%s reads %q (%v), want %q", path, b, err, want)
	}
}

// TestBindFilePlainModes: the plain modes treat a mount of a file as one
// of a directory: held, expire and force (tmpfs ignores MNT_FORCE) get
// EBUSY and leave it; lazy detaches it, the holders keep their file, and
// the original file underneath is visible again.
func TestBindFilePlainModes(t *testing.T) {
	path, fd, mm := bindFile(t, false)
	m := mountAt(t, path)
	ctx := context.Background()
	u := realUnmounter(t)
	if _, err := u.Expire(ctx, &m); !errors.Is(err, unix.EBUSY) {
		t.Errorf("expire of a held mount of a file: %v, want EBUSY", err)
	}
	if err := u.Force(ctx, &m); !errors.Is(err, unix.EBUSY) {
		t.Errorf("force of a held mount of a file on tmpfs: %v, want EBUSY", err)
	}
	readsAs(t, path, "secret")
	n, ok := fdOn(fd.PID, path)
	if !ok {
		t.Fatalf("victim %d has no fd on %s", fd.PID, path)
	}
	if err := u.Lazy(ctx, &m); err != nil {
		t.Fatalf("lazy: %v", err)
	}
	readsAs(t, path, "original")
	// The holder's fd still leads to the detached file.
	readsAs(t, "/proc/"+itoa(fd.PID)+"/fd/"+itoa(n), "secret")
	if !mm.Alive() {
		t.Error("the mapping holder died")
	}
}

// TestBindFileStaged: the staged run fences a mount of a file with an
// empty read-only file (a new open reads nothing, a write gets EROFS, not
// the secret), revokes the fd and the mapping, unmounts, and the original
// file underneath is visible again; no stash is left.
func TestBindFileStaged(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "beneath-swap"
		if shared {
			name = "over-mount under a shared parent"
		}
		t.Run(name, func(t *testing.T) { bindFileStaged(t, shared) })
	}
}

func bindFileStaged(t *testing.T, shared bool) {
	path, fd, mm := bindFile(t, shared)
	var fenced []byte
	var readErr, writeErr error
	sys := &fenceHook{System: realSystem(t), hook: func() {
		fenced, readErr = os.ReadFile(path)
		_, writeErr = os.OpenFile(path, os.O_WRONLY, 0)
	}}
	evs := staged(t, New(sys), path, Plan{})
	res, err := result(t, evs)
	if err != nil || !res.Gone {
		t.Fatalf("not gone: %v (%s)", err, summaryOf(res))
	}
	if readErr != nil || len(fenced) != 0 {
		t.Errorf("under the fence %s reads %q (%v), want the empty file", path, fenced, readErr)
	}
	if !errors.Is(writeErr, unix.EROFS) {
		t.Errorf("open for writing under the fence: %v, want EROFS", writeErr)
	}
	readsAs(t, path, "original")
	if !containsEvent(evs, StageFence, "an empty read-only file") || !shared && !containsEvent(evs, StageUnmount, "is the file underneath again") {
		t.Errorf("the events do not say the fence is a file")
	}
	if ids := mountIDs(t, path); len(ids) != 0 {
		t.Errorf("mounts left at %s: %v", path, ids)
	}
	requireNoStash(t)
	if _, ok := fdOn(fd.PID, path); ok || !fd.Alive() || !mm.Alive() {
		t.Errorf("after the run: fd holder keeps the file %v, alive %v/%v; want revoked and alive", ok, fd.Alive(), mm.Alive())
	}
}

// TestBindFileCancel: cancelling under the fence rolls it back: the same
// mount of the file is back, its holders untouched, no stash left.
func TestBindFileCancel(t *testing.T) {
	path, fd, _ := bindFile(t, false)
	before := mountAt(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sys := &fenceHook{System: realSystem(t), hook: cancel}
	u := New(sys)
	p, err := u.Prepare(ctx, Plan{Target: before, Mode: ModeStaged, Interval: 50 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(u.Run(ctx, p))
	t.Logf("events:\n%s", dumpEvents(evs))
	res, runErr := result(t, evs)
	if !errors.Is(runErr, ErrCancelled) || res.Gone {
		t.Fatalf("want a rollback after cancel: %v %+v", runErr, res)
	}
	if ids := mountIDs(t, path); len(ids) != 1 || ids[0] != before.ID {
		t.Fatalf("after rollback %s has mounts %v, want just %d", path, ids, before.ID)
	}
	readsAs(t, path, "secret")
	requireNoStash(t)
	if _, ok := fdOn(fd.PID, path); !ok {
		t.Errorf("the holder's fd no longer reads %s after the rollback", path)
	}
}
