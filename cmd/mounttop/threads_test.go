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

	"mounttop/internal/present"
	"mounttop/internal/testns"
)

// threadHolders runs `holders --json PATH` and returns its holders.
func threadHolders(t *testing.T, path string) []present.HolderJSON {
	t.Helper()
	r := runMounttop(t, "", nil, "holders", "--json", path)
	if r.code != 0 {
		t.Fatalf("holders: exit %d: %s", r.code, r.stderr)
	}
	var out struct {
		Holders []present.HolderJSON `json:"holders"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return out.Holders
}

// listHolders is the holder count `list --json` gives the mount at path.
func listHolders(t *testing.T, path string) int {
	t.Helper()
	r := runMounttop(t, "", nil, "list", "--json")
	var out struct {
		Mounts []present.MountJSON `json:"mounts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("list --json: exit %d: %v: %s", r.code, err, r.stderr)
	}
	for _, m := range out.Mounts {
		if string(m.Mountpoint) == path && m.Holders != nil {
			return *m.Holders
		}
	}
	return 0
}

// lineInt is the number after prefix in the victim's line.
func lineInt(t *testing.T, v *testns.Victim, prefix string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(v.WaitLine(t, prefix, 10*time.Second), prefix))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hasUse reports whether h has a use of kind through thread tid (any
// thread but the leader for -1), and fd for an fd.
func hasUse(h present.HolderJSON, kind string, tid, fd int) bool {
	for _, u := range h.Uses {
		byThread := u.TID == tid || tid < 0 && u.TID != 0 && u.TID != h.PID
		if u.Kind == kind && byThread && (fd < 0 || u.FD != nil && *u.FD == fd) {
			return true
		}
	}
	return false
}

// TestThreadOwnFDTable: a thread that did unshare(CLONE_FILES) and then
// opened a file on the mount holds it in a table of its own (the leader
// holds nothing, /proc/PID/fd does not show it): `holders` names the
// process with the thread id, `list` counts it, and the staged close puts
// the placeholder in that thread's table (its read gets EBADF), after
// which the mount is gone and the process lives on.
func TestThreadOwnFDTable(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := testns.StartVictim(t, testns.RoleRevokeThreadFiles, file)
	tid := lineInt(t, v, "tid: ")
	fd := lineInt(t, v, "fd: ")
	v.WaitLine(t, "ready", 10*time.Second)
	if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", v.PID, fd)); err == nil && target == file {
		t.Fatalf("the leader's table holds fd %d on %s too: the victim did not unshare", fd, file)
	}

	hs := threadHolders(t, dir)
	if len(hs) != 1 || hs[0].PID != v.PID || !hasUse(hs[0], "fd", tid, fd) {
		t.Fatalf("holders %s = %+v, want pid %d with fd %d of thread %d", dir, hs, v.PID, fd, tid)
	}
	if r := runMounttop(t, "", nil, "holders", dir); !strings.Contains(r.stdout, fmt.Sprintf("(thread %d)", tid)) {
		t.Errorf("holders text does not name thread %d:\n%s", tid, r.stdout)
	}
	if n := listHolders(t, dir); n != 1 {
		t.Errorf("list counts %d holders of %s, want 1", n, dir)
	}

	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--interval", "50ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("put a placeholder on fd %d of thread %d", fd, tid)) {
		t.Errorf("no revoke line for the thread's fd:\n%s", r.stdout)
	}
	v.WaitLine(t, "read: EBADF", 10*time.Second)
	if released, why := testns.Released(v.PID, 10*time.Second); !released || !v.Alive() {
		t.Fatalf("holder not released alive: %s", why)
	}
}

// TestLeaderExited: the main thread ended with SYS_exit (pthread_exit), so
// the leader is a zombie (/proc/PID/fd, cwd and maps show nothing) while
// another thread holds an fd, a mapping and its cwd on the mount: the scan reads the
// process through that thread, `holders` and `list` show it, and the
// staged run seizes the live thread, revokes the fd and the cwd there and
// unmounts.
func TestLeaderExited(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	sub := filepath.Join(dir, "work")
	file := filepath.Join(dir, "data")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("d"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := testns.StartVictim(t, testns.RoleRevokeLeaderExit, sub, file)
	tid := lineInt(t, v, "tid: ")
	fd := lineInt(t, v, "fd: ")
	v.WaitLine(t, "leader exiting", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for taskState(v.PID, v.PID) != 'Z' {
		if time.Now().After(deadline) {
			t.Fatalf("leader of %d in state %c, want Z", v.PID, taskState(v.PID, v.PID))
		}
		time.Sleep(10 * time.Millisecond)
	}

	hs := threadHolders(t, dir)
	if len(hs) != 1 || hs[0].PID != v.PID || hs[0].State != "Z" || !hasUse(hs[0], "fd", -1, fd) || !hasUse(hs[0], "cwd", -1, -1) {
		t.Fatalf("holders %s = %+v, want pid %d (state Z) with fd %d and its cwd through a live thread", dir, hs, v.PID, fd)
	}
	if n := listHolders(t, dir); n != 1 {
		t.Errorf("list counts %d holders of %s, want 1", n, dir)
	}

	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--interval", "50ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "unmap 1 mapping") || strings.Contains(r.stdout, "left alone") {
		t.Errorf("the mapping was not revoked:\n%s", r.stdout)
	}
	v.WaitLine(t, "read: EBADF", 10*time.Second)
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/task/%d/cwd", v.PID, tid)); err != nil || cwd == sub {
		t.Errorf("thread %d cwd %q (%v), want out of %s", tid, cwd, err, sub)
	}
	if s := taskState(v.PID, tid); s == 0 || s == 'Z' || s == 'X' || s == 't' || s == 'T' {
		t.Errorf("thread %d in state %c after the run, want running or sleeping", tid, s)
	}
}

// taskState is a thread's state letter from /proc/PID/task/TID/stat, 0 if
// gone.
func taskState(pid, tid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
