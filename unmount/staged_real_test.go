package unmount

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// staged prepares and runs a staged unmount of dir on the real system and
// returns its events; fast intervals keep the tests short.
func staged(t *testing.T, u *Unmounter, dir string, p Plan) []Event {
	t.Helper()
	p.Target = mountAt(t, dir)
	p.Mode = ModeStaged
	if p.Interval == 0 {
		p.Interval = 50 * time.Millisecond
	}
	if p.Timeout == 0 {
		p.Timeout = 10 * time.Second
	}
	if p.Grace == 0 {
		p.Grace = 300 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := u.Prepare(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(u.Run(ctx, p))
	t.Logf("events:\n%s", dumpEvents(evs))
	return evs
}

func result(t *testing.T, evs []Event) (*Result, error) {
	t.Helper()
	last := evs[len(evs)-1]
	if last.Stage != StageDone || last.Result == nil {
		t.Fatalf("last event is %s without a result", last.Stage)
	}
	return last.Result, last.Err
}

// requireGone checks the staged unmount left nothing behind: dir is a plain
// directory again, and no fence or stash is mounted anywhere under the
// test's dirs.
func requireGone(t *testing.T, evs []Event, dir string) {
	t.Helper()
	res, err := result(t, evs)
	if err != nil || !res.Gone {
		t.Fatalf("not gone: %v (%s)", err, summaryOf(res))
	}
	if testns.IsMountPoint(dir) {
		t.Fatalf("%s is still a mount point (the fence?)", dir)
	}
	if left := mountsUnder(dir); len(left) > 0 {
		t.Fatalf("mounts left behind: %v", left)
	}
	requireNoStash(t)
}

// requireNoStash checks that no fence stash is mounted anywhere.
func requireNoStash(t *testing.T) {
	t.Helper()
	for _, mp := range mountsUnder("/") {
		if strings.Contains(mp, "mounttop-fence-") {
			t.Fatalf("a stash is left mounted: %s", mp)
		}
	}
}

// fdOn finds pid's fd whose link reads path.
func fdOn(pid int, path string) (int, bool) {
	ents, _ := os.ReadDir("/proc/" + itoa(pid) + "/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/" + itoa(pid) + "/fd/" + e.Name()); err == nil && l == path {
			n, _ := strconv.Atoi(e.Name())
			return n, true
		}
	}
	return -1, false
}

func TestStagedIdle(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	evs := staged(t, realUnmounter(t), dir, Plan{})
	requireGone(t, evs, dir)
	if got := stages(evs); !strings.HasPrefix(got, "plan fence fence revoke drain unmount unmount done") {
		t.Fatalf("stages %q", got)
	}
}

// fenceHook is the real System with a hook run right after syncfs, while
// the fence is up and nothing has been revoked yet.
type fenceHook struct {
	System
	hook func()
}

func (f *fenceHook) Syncfs(root *os.File) error {
	err := f.System.Syncfs(root)
	f.hook()
	return err
}

// TestStagedFenceAndCancel: under the fence, new opens by path get ENOENT
// and creates EROFS while a holder's relative reopen still works;
// cancelling before revoke rolls the fence back: the same mount (same
// unique ID) is back at its path, its holders untouched.
func TestStagedFenceAndCancel(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "beneath-swap"
		if shared {
			name = "over-mount under a shared parent"
		}
		t.Run(name, func(t *testing.T) {
			dir := targetDir(t, shared)
			writeFile(t, filepath.Join(dir, "f"), "data")
			fd := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
			reopen := testns.StartVictim(t, testns.RoleReopen, dir, "f")
			before := mountAt(t, dir)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var openErr, createErr error
			sys := &fenceHook{System: realSystem(t), hook: func() {
				_, openErr = os.Open(filepath.Join(dir, "f"))
				_, createErr = os.Create(filepath.Join(dir, "new"))
				time.Sleep(150 * time.Millisecond) // the reopen loop runs under the fence
				cancel()
			}}
			u := New(sys)
			p, err := u.Prepare(ctx, Plan{Target: before, Mode: ModeStaged, Interval: 50 * time.Millisecond, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			evs := collect(u.Run(ctx, p))
			t.Logf("events:\n%s", dumpEvents(evs))
			if !errors.Is(openErr, unix.ENOENT) {
				t.Errorf("open by path under the fence: %v, want ENOENT", openErr)
			}
			if !errors.Is(createErr, unix.EROFS) {
				t.Errorf("create under the fence: %v, want EROFS", createErr)
			}
			res, runErr := result(t, evs)
			if !errors.Is(runErr, ErrCancelled) || res.Gone || !strings.Contains(stages(evs), "rollback") {
				t.Fatalf("want a rollback after cancel: %v %+v", runErr, res)
			}
			if ids := mountIDs(t, dir); len(ids) != 1 || ids[0] != before.ID {
				t.Fatalf("after rollback %s has mounts %v, want just %d", dir, ids, before.ID)
			}
			if left := mountsUnder(dir); len(left) != 1 {
				t.Fatalf("mounts after rollback: %v", left)
			}
			requireNoStash(t)
			if !fd.Alive() || !reopen.Alive() {
				t.Fatal("a holder died")
			}
			if _, ok := fdOn(fd.PID, filepath.Join(dir, "f")); !ok {
				t.Errorf("the holder's fd no longer reads %s after the rollback", filepath.Join(dir, "f"))
			}
			for _, l := range reopen.Seen() {
				if strings.HasPrefix(l, "open: ") && l != "open: ok" {
					t.Errorf("the relative reopen failed under the fence: %s", l)
				}
			}
		})
	}
}

// targetDir makes a tmpfs to unmount; with shared, its parent is a shared
// tmpfs (so MOVE_MOUNT_BENEATH is refused and the fence over-mounts).
func targetDir(t *testing.T, shared bool) string {
	t.Helper()
	if !shared {
		return testns.Tmpfs(t, "")
	}
	return testns.TmpfsUnder(t, true)
}

func TestStagedSharedParent(t *testing.T) {
	dir := targetDir(t, true)
	testns.StartVictim(t, testns.RoleCwd, dir)
	evs := staged(t, realUnmounter(t), dir, Plan{Policy: PolicySignal})
	requireGone(t, evs, dir)
	if !strings.Contains(dumpEvents(evs), "over-mount") {
		t.Fatal("a shared parent must get the over-mount fence")
	}
}

// TestStagedSignalPolicy: SIGTERM, then SIGKILL after the grace for a
// holder that ignores SIGTERM; an executable on the mount is signalled too.
func TestStagedSignalPolicy(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	exe := testns.CopySelf(t, dir)
	fromMount := testns.StartVictimExe(t, exe, testns.RoleSleep)
	stubborn := testns.StartVictim(t, testns.RoleIgnoreTerm, dir)
	start := time.Now()
	evs := staged(t, realUnmounter(t), dir, Plan{Policy: PolicySignal, Grace: 300 * time.Millisecond})
	requireGone(t, evs, dir)
	st, ok := fromMount.Wait(5 * time.Second)
	if !ok || st.Sys().(interface{ Signal() unix.Signal }).Signal() != unix.SIGTERM {
		t.Errorf("exe-on-mount holder: %v, want killed by SIGTERM", st)
	}
	st, ok = stubborn.Wait(5 * time.Second)
	if !ok || st.Sys().(interface{ Signal() unix.Signal }).Signal() != unix.SIGKILL {
		t.Errorf("holder ignoring SIGTERM: %v, want killed by SIGKILL", st)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("SIGKILL came before the grace: %v", d)
	}
	text := dumpEvents(evs)
	for _, want := range []string{"sent SIGTERM (its executable is on the mount", "sent SIGKILL"} {
		if !strings.Contains(text, want) {
			t.Errorf("events lack %q", want)
		}
	}
}

// TestStagedExeOnMountClose: under the close policy a holder whose
// executable is on the mount is reported with the reason and never
// signalled; the drain times out and the fence is rolled back.
func TestStagedExeOnMountClose(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	exe := testns.CopySelf(t, dir)
	v := testns.StartVictimExe(t, exe, testns.RoleSleep)
	before := mountAt(t, dir)
	evs := staged(t, realUnmounter(t), dir, Plan{Policy: PolicyClose, Timeout: 400 * time.Millisecond})
	res, err := result(t, evs)
	if !errors.Is(err, ErrTimeout) || res.Gone {
		t.Fatalf("want a timeout: %v %+v", err, res)
	}
	if len(res.Remaining) != 1 || res.Remaining[0].PID != v.PID {
		t.Fatalf("remaining %+v", res.Remaining)
	}
	if !strings.Contains(summaryOf(res), "its executable is on the mount") || !strings.Contains(summaryOf(res), "is back at") {
		t.Fatalf("summary %q", summaryOf(res))
	}
	if !v.Alive() {
		t.Fatal("the close policy signalled an exe-on-mount holder")
	}
	if ids := mountIDs(t, dir); len(ids) != 1 || ids[0] != before.ID {
		t.Fatalf("after the timeout %s has %v, want %d back", dir, ids, before.ID)
	}
	for _, ev := range evs {
		if ev.PID == v.PID && strings.Contains(EventWords(ev), "sent SIG") {
			t.Fatalf("signalled: %s", EventWords(ev))
		}
	}
}

// TestStagedRecursive: submounts go first, deepest first, with their
// holders; without Recursive the plan is refused.
func TestStagedRecursive(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("sub", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, sub)
	testns.StartVictim(t, testns.RoleCwd, sub)
	u := realUnmounter(t)
	if _, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: ModeStaged}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), sub) {
		t.Fatalf("submounts without recursive: %v", err)
	}
	evs := staged(t, u, dir, Plan{Policy: PolicySignal, Recursive: true})
	requireGone(t, evs, dir)
	if testns.IsMountPoint(sub) {
		t.Fatal("the submount is still there")
	}
	if !strings.Contains(dumpEvents(evs), "submount "+sub+" unmounted") {
		t.Fatal("no event for the submount")
	}
}

// TestStagedRefusesOwnCwd: the mount holding mounttop's own cwd.
func TestStagedRefusesOwnCwd(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	_, err := realUnmounter(t).Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: ModeStaged})
	if err := os.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "own working directory") {
		t.Fatalf("%v", err)
	}
}

// TestStagedDataOnDisk: data written before the staged unmount is on the
// disk afterwards: ext4 on a loop device, a writer holding the file open,
// staged unmount, mount the image again, read back.
func TestStagedDataOnDisk(t *testing.T) {
	loop := testns.LoopExt4(t, 32)
	path := filepath.Join(loop.Dir, "data")
	want := strings.Repeat("mounttop keeps your data\n", 4000)
	writeFile(t, path, want) // no fsync: only the page cache has it
	w := startHolder(t, testns.RoleFD, path, "w")
	evs := staged(t, realUnmounter(t), loop.Dir, Plan{Policy: PolicyClose})
	requireGone(t, evs, loop.Dir)
	if !alive(w.pid) {
		t.Error("the close policy killed the writer")
	}
	again := testns.MountDir(t, "again")
	if err := unix.Mount(loop.Device, again, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, again)
	got, err := os.ReadFile(filepath.Join(again, "data"))
	if err != nil || string(got) != want {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(want))
	}
}

// TestJournal: every event of a run is a JSON line with the target, the
// mode and the stage; the revoke lines name the pid and what was done.
func TestJournal(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleCwd, dir)
	path := filepath.Join(t.TempDir(), "j", "journal.jsonl")
	j, err := OpenJournal(path, testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	evs := staged(t, realUnmounter(t, WithJournal(j)), dir, Plan{Policy: PolicySignal})
	j.Close()
	requireGone(t, evs, dir)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d journal lines for %d events", len(lines), len(evs))
	}
	var sawRevoke, sawResult bool
	for _, l := range lines {
		var e struct {
			Run, Target, Mode, Policy, Stage, What string
			PID                                    int
			Result                                 *struct{ Gone bool }
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if e.Target != dir || e.Mode != "staged" || e.Policy != "signal" || e.Stage == "" || e.Run == "" {
			t.Fatalf("line lacks the run's facts: %s", l)
		}
		if e.Stage == "revoke" && e.PID == v.PID && strings.Contains(e.What, "SIGTERM") {
			sawRevoke = true
		}
		if e.Stage == "done" && e.Result != nil && e.Result.Gone {
			sawResult = true
		}
	}
	if !sawRevoke || !sawResult {
		t.Fatalf("journal lacks the revoke or the result:\n%s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v", st.Mode().Perm())
	}
}

// TestStagedChrootClose: a holder chrooted into the mount cannot be revoked
// by chdir("/") (its "/" is on the mount): reported with the reason, not
// signalled under the close policy; the fence is rolled back.
func TestStagedChrootClose(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleRoot, dir)
	evs := staged(t, realUnmounter(t), dir, Plan{Policy: PolicyClose, Timeout: 300 * time.Millisecond})
	res, err := result(t, evs)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(summaryOf(res), "its root directory (chroot) is on the mount") {
		t.Fatalf("%v %q", err, summaryOf(res))
	}
	if !v.Alive() || !testns.IsMountPoint(dir) {
		t.Fatal("the holder or the mount is gone")
	}
}
