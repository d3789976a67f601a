package ui

import (
	"strings"
	"testing"
)

// TestSystemMountNotOffered: on a mount the system runs on (here /), the
// key reminder offers no unmount key and says why; l, e, f, F and d ask
// the engine nothing and the status says what is refused and how the
// override is given. An ordinary mount gets the keys back.
func TestSystemMountNotOffered(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/"})
	d.started()
	if d.m.tree.selected != idRoot {
		t.Fatalf("selected %x, want / (%x)", d.m.tree.selected, idRoot)
	}
	d.mustSee("a system mount: no unmount here")
	if d.sees("l lazy") || d.sees("F staged") {
		t.Fatalf("unmount keys offered on /:\n%s", d.screen())
	}
	for _, k := range []string{"l", "e", "f", "F", "d"} {
		d.key(k)
		d.settle()
		for _, want := range []string{"the view never unmounts it", "/ is a mount the system runs on", "--allow-system-mount"} {
			if !strings.Contains(d.m.bar.status, want) {
				t.Errorf("%s: the status %q lacks %q", k, d.m.bar.status, want)
			}
		}
		if d.m.dialog != nil {
			t.Fatalf("%s opened a dialog on /", k)
		}
	}
	d.um.mu.Lock()
	planned := len(d.um.planned)
	d.um.mu.Unlock()
	if planned != 0 || d.um.runCount() != 0 {
		t.Fatalf("the engine was asked %d times and ran %d times for /", planned, d.um.runCount())
	}
	d.key("j") // /mnt
	d.settle()
	if !strings.Contains(d.screen(), "l lazy") || d.sees("a system mount") {
		t.Fatalf("an ordinary mount does not get the unmount keys back:\n%s", d.screen())
	}
}
