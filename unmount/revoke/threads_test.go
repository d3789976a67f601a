//go:build linux && amd64

package revoke

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mounttop/internal/testns"
)

// TestRevokeThreadOwnFDTable: an fd in the table of a thread that did
// unshare(CLONE_FILES) is closed by a close(2) injected into that thread
// (the process's table, the one the leader uses, does not have it): the
// thread's next read gets EBADF, the fd is gone from its table, the
// process lives on and no thread stays stopped.
func TestRevokeThreadOwnFDTable(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHolder(t, testns.RoleRevokeThreadFiles, file)
	num := func(prefix string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(h.v.WaitLine(t, prefix, 10*time.Second), prefix))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tid, fd := num("tid: "), num("fd: ")
	h.v.WaitLine(t, "ready", 10*time.Second)
	link := fmt.Sprintf("/proc/%d/task/%d/fd/%d", h.pid, tid, fd)
	if target, err := os.Readlink(link); err != nil || target != file {
		t.Fatalf("%s -> %q (%v), want %s", link, target, err, file)
	}
	rep := revoke(t, newRevoker(t), h.pid, Targets{ThreadFDs: []ThreadFDs{{TID: tid, FDs: []int{fd}}}})
	if !slices.Equal(rep.Closed, []int{fd}) {
		t.Errorf("closed %v, want [%d]", rep.Closed, fd)
	}
	h.v.WaitLine(t, "read: EBADF", 10*time.Second)
	if _, err := os.Readlink(link); err == nil {
		t.Errorf("%s still open after the revoke", link)
	}
	for _, task := range []int{h.pid, tid} {
		if s := state(h.pid, task); s == 't' || s == 'T' {
			t.Errorf("thread %d left stopped (%c)", task, s)
		}
	}
	h.requireAlive(t)
}
