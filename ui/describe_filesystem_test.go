package ui

import (
	"strings"
	"testing"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// TestPlanLinesFilesystem: the dialog says, before anything is done,
// whether the filesystem itself goes with the mount (unmount.Filesystem),
// for every mode, naming what keeps it in use; nothing when the plan could
// not tell.
func TestPlanLinesFilesystem(t *testing.T) {
	target := inspect.Mount{ID: 7, Mountpoint: "/mnt/x", FSType: "tmpfs"}
	inUse := unmount.Filesystem{Checked: true, InUseBy: []unmount.FilesystemUse{
		{Kind: "mount", Where: "/y"}, {Kind: "overlay", Where: "/z"}, {Kind: "mount", Where: "/x", Namespace: 4026532001}}}
	cases := []struct {
		name string
		fs   unmount.Filesystem
		want string
	}{
		{"in use", inUse, "After this unmount the filesystem stays in use by: the mount /y; the overlay /z; the mount /x in mount namespace mnt:[4026532001]."},
		{"released", unmount.Filesystem{Checked: true, Released: true}, "After this unmount nothing mounttop can see uses the filesystem: it is released."},
	}
	for _, mode := range []unmount.Mode{unmount.ModeLazy, unmount.ModeExpire, unmount.ModeForce, unmount.ModeStaged} {
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				plan := unmount.Plan{Target: target, Mode: mode, Policy: unmount.PolicyClose, Interval: time.Second, Filesystem: tc.fs}
				text := strings.Join(present.PlanLines(nil, plan, 5, "x"), "\n")
				if !strings.Contains(text, tc.want) {
					t.Errorf("lacks %q:\n%s", tc.want, text)
				}
			})
		}
	}
	staged := unmount.Plan{Target: target, Mode: unmount.ModeStaged, Stacked: []inspect.Mount{{ID: 9, Mountpoint: "/ov", FSType: "overlay"}}}
	if text := strings.Join(present.PlanLines(nil, staged, 5, "x"), "\n"); !strings.Contains(text, "First the overlay at /ov, which uses it as a layer, is unmounted (its holders are revoked too).") {
		t.Errorf("the staged dialog does not name the overlay it unmounts first:\n%s", text)
	}
	plan := unmount.Plan{Target: target, Mode: unmount.ModeLazy}
	if text := strings.Join(present.PlanLines(nil, plan, 5, "x"), "\n"); strings.Contains(text, "filesystem") {
		t.Errorf("an unchecked plan claims something about the filesystem:\n%s", text)
	}
}

// TestProgressFilesystem: the progress pane shows the forecast while the
// unmount runs, and the result (whose summary the engine ends with the
// filesystem's fate) once it is done, in place of the forecast.
func TestProgressFilesystem(t *testing.T) {
	st := newStyles()
	keys := defaultKeys()
	p := newProgressPane(&st, &keys)
	p.SetSize(120, 20)
	target := inspect.Mount{ID: 7, Mountpoint: "/mnt/x", FSType: "tmpfs"}
	plan := unmount.Plan{Target: target, Mode: unmount.ModeLazy,
		Filesystem: unmount.Filesystem{Checked: true, InUseBy: []unmount.FilesystemUse{{Kind: "mount", Where: "/y"}}}}
	now := time.Now()
	p.start(1, nil, plan, func() {}, now)
	forecast := "after this unmount the filesystem stays in use by: the mount /y"
	if v := p.View(); !strings.Contains(v, forecast) {
		t.Fatalf("running: no forecast:\n%s", v)
	}
	p.apply(unmount.Event{Stage: unmount.StageDone, At: now, Result: &unmount.Result{Gone: true,
		Summary: "/mnt/x is unmounted; filesystem still in use by: the mount /y", Filesystem: &unmount.Filesystem{Checked: true}}})
	v := p.View()
	if !strings.Contains(v, "Result: ✓ /mnt/x is unmounted; filesystem still in use by: the mount /y") || strings.Contains(v, forecast) {
		t.Fatalf("done: want the result in place of the forecast:\n%s", v)
	}
}
