package unmount

import (
	"reflect"
	"testing"

	"mounttop/inspect"
)

// TestRevokeTargetsByThread: fds found in a thread's own fd table (Use.TID
// set) go to that thread, once each, apart from the process's fds; a cwd
// of that thread is moved in that thread (internal/present names the
// thread in the plan line: TestTargetsTextByThread).
func TestRevokeTargetsByThread(t *testing.T) {
	h := inspect.Holder{PID: 70, Uses: []inspect.Use{
		{Kind: inspect.UseFD, FD: 3},
		{Kind: inspect.UseFD, FD: 9, TID: 77},
		{Kind: inspect.UseFD, FD: 5, TID: 77},
		{Kind: inspect.UseLock, FD: 5, TID: 77},
		{Kind: inspect.UseCwd, FD: -1, TID: 77},
	}}
	got := revokeTargets(h, true)
	if !reflect.DeepEqual(got.FDs, []int{3}) || !reflect.DeepEqual(got.ThreadFDs, map[int][]int{77: {5, 9}}) || !reflect.DeepEqual(got.CwdTIDs, []int{77}) {
		t.Fatalf("targets %+v: want fd 3 of the process, fds 5 and 9 of thread 77, the cwd of thread 77", got)
	}
	if got.Empty() {
		t.Error("targets with only thread fds count as empty")
	}
	if (RevokeTargets{ThreadFDs: map[int][]int{77: {5}}}).Empty() {
		t.Error("a thread's fd alone counts as nothing to revoke")
	}
}
