package unmount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mounttop/internal/testns"
	"mounttop/unmount/release"
)

// copyMountedIn reports whether dir is a mount point in pid's namespace.
func copyMountedIn(t *testing.T, pid int, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestReleaseCopyNow: Unmounter.Release, the TUI's per-holder action,
// unmounts a private idle copy inside its namespace (setns on a thread
// thrown away afterwards: the test process's own threads and victims are
// untouched) and journals it; a refused release changes nothing.
func TestReleaseCopyNow(t *testing.T) {
	testns.Require(t, testns.Namespace)
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictimInNewNS(t, testns.RoleSleep)
	u := realUnmounter(t)
	p, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: ModeStaged})
	if err != nil {
		t.Fatal(err)
	}
	var rel *Release
	for i := range p.Releases {
		if r := &p.Releases[i]; r.Kind == "copy" && r.PID == v.PID {
			rel = r
		}
	}
	if rel == nil || rel.Lazy || rel.Propagates || rel.Mountpoint != dir || rel.OldID == 0 {
		t.Fatalf("releases %+v: want a plain, private copy at %s in pid %d's namespace", p.Releases, dir, v.PID)
	}

	refused := *rel
	refused.Refusal = ReleaseNoEntry
	if err := u.Release(context.Background(), refused); !errors.Is(err, ErrRefused) || !copyMountedIn(t, v.PID, dir) {
		t.Fatalf("refused release: %v", err)
	}
	changed := *rel
	changed.OldID += 100000
	if err := u.Release(context.Background(), changed); !errors.Is(err, ErrChanged) || !copyMountedIn(t, v.PID, dir) {
		t.Fatalf("release with a stale mount ID: %v, want ErrChanged", err)
	}

	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := OpenJournal(jpath, testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	u = realUnmounter(t, WithJournal(j))
	if err := u.Release(context.Background(), *rel); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if copyMountedIn(t, v.PID, dir) {
		t.Fatal("the copy is still mounted in the other namespace")
	}
	if !testns.IsMountPoint(dir) || !v.Alive() {
		t.Fatal("our mount or the process there is gone")
	}
	data, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if line := string(data); !strings.Contains(line, `"mode":"release"`) || !strings.Contains(line, `"stage":"release"`) ||
		!strings.Contains(line, "done: unmount its copy at "+dir) {
		t.Fatalf("journal: %s", line)
	}
}

// TestDetachLoopRefusesMounted: the real DetachLoop opens the device with
// O_EXCL first; a loop device with a mounted filesystem on it is refused
// (LOOP_CLR_FD would only set autoclear) and keeps its backing file.
func TestDetachLoopRefusesMounted(t *testing.T) {
	loop := testns.LoopExt4(t, 16)
	err := realSystem(t).DetachLoop(loop.Device, release.FileID{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "itself mounted") {
		t.Fatalf("DetachLoop of a mounted loop device: %v, want ErrRefused", err)
	}
	if !testns.LoopAttachedTo(loop.Device, loop.Image) {
		t.Fatalf("%s lost its backing file %s", loop.Device, loop.Image)
	}
	if !testns.IsMountPoint(loop.Dir) {
		t.Fatal("the filesystem on it went away")
	}
}

// TestReleaseRefusalsKeepTheirMeaning: the real System's releases say
// ErrChanged when what they would act on is not what the scan found (a
// swap path through a symbolic link, a copy behind a pid now in another
// namespace), in release's own words.
func TestReleaseRefusalsKeepTheirMeaning(t *testing.T) {
	testns.Require(t, testns.Namespace)
	dir := testns.Tmpfs(t, "")
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	sys := realSystem(t)
	err := sys.Swapoff(filepath.Join(dir, "link", "swapfile"), release.FileID{Dev: 1, Ino: 1})
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("swapoff through a link: %v, want ErrChanged", err)
	}
	v := testns.StartVictimInNewNS(t, testns.RoleSleep)
	err = sys.UnmountCopy(release.Copy{PID: v.PID, Namespace: 1, Mountpoint: dir, OldID: 1, ParentOldID: 1, Dev: 1}, 0)
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "mount namespace") {
		t.Errorf("a copy in another namespace than inspected: %v, want ErrChanged", err)
	}
	if !copyMountedIn(t, v.PID, dir) {
		t.Error("the copy was unmounted")
	}
}
