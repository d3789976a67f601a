package present

import (
	"testing"
	"time"

	"mounttop/inspect"
	"mounttop/unmount"
)

// TestTargetsTextByThread: the fds of a thread's own table are named with
// the thread, after the process's; placeholder or close as the policy says.
func TestTargetsTextByThread(t *testing.T) {
	tg := unmount.RevokeTargets{FDs: []int{3}, ThreadFDs: map[int][]int{77: {5, 9}, 71: {4}}, CwdTIDs: []int{77}, Placeholder: true}
	want := "put a placeholder on fd 3; put a placeholder on fd 4 of thread 71; put a placeholder on fd 5, 9 of thread 77; cwd into an empty directory (1 thread)"
	if got := TargetsText(tg); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	tg = unmount.RevokeTargets{FDs: []int{3, 4}, Maps: make([]unmount.Range, 2), CwdTIDs: []int{1, 2}}
	if got, want := TargetsText(tg), "close fd 3, 4; unmap 2 mappings; cwd into an empty directory (2 threads)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := TargetsText(unmount.RevokeTargets{}); got != "nothing to revoke" {
		t.Errorf("empty targets: %q", got)
	}
}

// TestHolderPlanText: each action kind and refusal in the plan's words,
// the copy's mount point escaped once, the state's reason falling back to
// the plan while the holder is as planned.
func TestHolderPlanText(t *testing.T) {
	d := inspect.Holder{PID: 9, State: 'D'}
	for _, tc := range []struct {
		a    unmount.HolderAction
		want string
	}{
		{unmount.HolderAction{Kind: unmount.ActionKeepDetached}, "nothing: it keeps using the detached filesystem until it lets go"},
		{unmount.HolderAction{Kind: unmount.ActionKeepBusy}, "nothing: it keeps the mount busy"},
		{unmount.HolderAction{Kind: unmount.ActionSignal, Grace: 5 * time.Second}, "SIGTERM, SIGKILL after 5s"},
		{unmount.HolderAction{Holder: d, Kind: unmount.ActionRevoke, Targets: unmount.RevokeTargets{FDs: []int{3}, Placeholder: true}},
			"put a placeholder on fd 3 (in D state: it may not stop for ptrace)"},
		{unmount.HolderAction{Kind: unmount.ActionRevoke, Refusal: unmount.RefusalExe, RefusedPath: "/mnt/t/bin"},
			"REFUSED: its executable is on the mount: it cannot be revoked, only stopped (--revoke=signal)"},
		{unmount.HolderAction{Kind: unmount.ActionRevoke, Refusal: unmount.RefusalRoot, Namespace: 4, CopyAt: "/x\ny"},
			`REFUSED: in mount namespace mnt:[4], holding its copy at /x\ny: its root directory (chroot) is on the mount: it cannot be revoked, only stopped (--revoke=signal)`},
		{unmount.HolderAction{Kind: unmount.ActionRevoke, Targets: unmount.RevokeTargets{FDs: []int{4}}, Namespace: 4, CopyAt: "/x"},
			"in mount namespace mnt:[4], holding its copy at /x: close fd 4"},
	} {
		if got := HolderPlanText(tc.a, "REFUSED: "); got != tc.want {
			t.Errorf("%v/%v: got  %q\nwant %q", tc.a.Kind, tc.a.Refusal, got, tc.want)
		}
		if got := HolderReason(unmount.HolderState{Planned: &tc.a}); got != HolderPlanText(tc.a, "") {
			t.Errorf("%v: reason as planned %q", tc.a.Kind, got)
		}
	}
	a := unmount.HolderAction{Kind: unmount.ActionSignal, Grace: time.Second}
	if got := HolderReason(unmount.HolderState{Reason: "exited", Planned: &a}); got != "exited" {
		t.Errorf("a holder acted on shows the plan: %q", got)
	}
}
