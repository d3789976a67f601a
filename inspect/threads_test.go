package inspect

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mounttop/internal/testns"
)

func victimInt(t *testing.T, v *testns.Victim, prefix string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(v.WaitLine(t, prefix, 10*time.Second), prefix))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// findThreadUse finds a use of kind through thread tid, or with tid -1
// through any thread but the leader.
func findThreadUse(h *Holder, kind UseKind, tid int) *Use {
	if h == nil {
		return nil
	}
	for i := range h.Uses {
		u := h.Uses[i]
		if u.Kind == kind && (u.TID == tid || tid < 0 && u.TID != 0 && u.TID != h.PID) {
			return &h.Uses[i]
		}
	}
	return nil
}

// TestThreadOwnFDTable: an fd in the table of a thread that did
// unshare(CLONE_FILES) is read from /proc/PID/task/TID/fd and carries the
// thread id; the process's own table (the leader's) does not have it.
func TestThreadOwnFDTable(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "secret")
	writeFile(t, file)
	v := testns.StartVictim(t, testns.RoleRevokeThreadFiles, file)
	tid := victimInt(t, v, "tid: ")
	fd := victimInt(t, v, "fd: ")
	snap := scan(t)
	m := mountAt(t, snap, dir)
	h := holder(snap, m.ID, v.PID)
	u := findThreadUse(h, UseFD, tid)
	if u == nil || u.FD != fd || u.Path != file || u.Access != AccessReadWrite {
		t.Fatalf("holder %+v: want fd %d of thread %d on %s, read-write", h, fd, tid, file)
	}
	if len(h.Uses) != 1 {
		t.Errorf("uses %+v, want just the thread's fd", h.Uses)
	}
}

// TestLeaderExited: a process whose leader exited (state Z) while another
// thread runs is read through that thread: its fd and cwd carry the
// id of a live thread (the one that holds them, or another sharing its
// fd table and fs_struct), not 0: the revoke must go through a thread; its
// mapping is read from that thread's maps.
func TestLeaderExited(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	sub := filepath.Join(dir, "work")
	file := filepath.Join(dir, "data")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, file)
	v := testns.StartVictim(t, testns.RoleRevokeLeaderExit, sub, file)
	fd := victimInt(t, v, "fd: ")
	waitZombieLeader(t, v.PID)
	snap := scan(t)
	m := mountAt(t, snap, dir)
	h := holder(snap, m.ID, v.PID)
	if h == nil || h.State != 'Z' {
		t.Fatalf("holder %+v, want pid %d in state Z", h, v.PID)
	}
	if u := findThreadUse(h, UseFD, -1); u == nil || u.FD != fd || u.Path != file {
		t.Errorf("uses %+v: want fd %d of a live thread on %s", h.Uses, fd, file)
	}
	if u := findThreadUse(h, UseCwd, -1); u == nil || u.Path != sub {
		t.Errorf("uses %+v: want the cwd of a live thread in %s", h.Uses, sub)
	}
	if u := findUse(h, UseMmap); u == nil || u.Path != file {
		t.Errorf("uses %+v: want the mapping of %s, read from a live thread's maps", h.Uses, file)
	}
	if len(h.Uses) != 3 {
		t.Errorf("uses %+v: want the fd, the cwd and the mapping once each", h.Uses)
	}
}
