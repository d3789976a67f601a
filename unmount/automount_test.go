package unmount

import (
	"context"
	"strings"
	"testing"
	"time"

	"mounttop/inspect"
)

// TestAutomountedPlanWarns: the plan of any mode for an automounted mount
// warns that an access will mount it again and names the real fix.
func TestAutomountedPlanWarns(t *testing.T) {
	for _, mode := range []Mode{ModeLazy, ModeExpire, ModeForce, ModeStaged} {
		f := newFake()
		f.addMount("/mnt", "ext4", false)
		target := f.addMount("/mnt/data", "ext4", false)
		f.mounts[len(f.mounts)-1].Automount = &inspect.Automount{By: "systemd", Kind: "direct", PGrp: 1,
			Unit: "mnt-data.automount", Timeout: 2 * time.Minute, TimeoutKnown: true}
		f.target = target.ID
		p, err := New(f).Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: mode})
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		w := warningsWords(&p)
		if !strings.Contains(w, "the next access mounts it again") || !strings.Contains(w, "systemctl stop mnt-data.automount") {
			t.Errorf("%v: plan warnings %q lack the automount warning", mode, w)
		}
	}
}
