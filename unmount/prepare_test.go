package unmount

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"mounttop/inspect"
)

// TestPrepareAgainForAnotherPolicy: a plan prepared for close and prepared
// again as signal ("signal instead") has signal actions for every holder,
// and none of close's refusals (an executable or a root on the mount can
// be signalled, not revoked); Run runs it as given: its plan event shows
// those actions, and the holders are signalled.
func TestPrepareAgainForAnotherPolicy(t *testing.T) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "tmpfs", false)
	f.target = target.ID
	exe := inspect.Use{Kind: inspect.UseExe, FD: -1}
	hs := []inspect.Holder{holder(10, "cat", fdUse(3)), holder(11, "victim", exe)}
	f.holders = [][]inspect.Holder{hs, hs, hs, nil} // two Prepares, the revoke, the drain
	u := New(f)
	closePlan, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Policy: PolicyClose,
		Grace: time.Second, Interval: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if closePlan.Stale() {
		t.Fatal("a plan just prepared is stale")
	}
	if a := closePlan.Holders; len(a) != 2 || a[0].Kind != ActionRevoke || !reflect.DeepEqual(a[0].Targets.FDs, []int{3}) || !a[0].Targets.Placeholder || a[1].Refusal != RefusalExe {
		t.Fatalf("close plan holders: %+v", a)
	}
	warnings := len(closePlan.Warnings)

	sig := closePlan
	sig.Policy = PolicySignal
	if !sig.Stale() {
		t.Fatal("a plan whose policy changed is not stale")
	}
	sig, err = u.Prepare(context.Background(), sig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range sig.Holders {
		if a.Refused() || a.Kind != ActionSignal || a.Grace != time.Second {
			t.Errorf("signal plan: pid %d: action %v after %v, refused %v; want SIGTERM, SIGKILL after 1s and no refusal", a.Holder.PID, a.Kind, a.Grace, a.Refusal)
		}
	}
	if len(sig.Warnings) != warnings {
		t.Errorf("prepared again: %d warnings, want %d (not doubled): %q", len(sig.Warnings), warnings, sig.Warnings)
	}
	if !closePlan.Holders[1].Refused() || closePlan.Policy != PolicyClose {
		t.Errorf("preparing again changed the plan it came from: %+v", closePlan.Holders)
	}

	evs := collect(u.Run(context.Background(), sig))
	pic := evs[0].Holders
	if len(pic) != 2 || pic[0].State != "pending" || pic[1].State != "pending" || pic[1].Reason != "" || pic[1].Planned == nil || pic[1].Planned.Kind != ActionSignal {
		t.Fatalf("plan event picture: %+v", pic)
	}
	var sent int
	for _, ev := range evs {
		if strings.Contains(whatOf(ev), "sent SIGTERM") {
			sent++
		}
	}
	if sent != 2 {
		t.Errorf("%d holders were sent SIGTERM, want 2:\n%s", sent, dumpEvents(evs))
	}
}
