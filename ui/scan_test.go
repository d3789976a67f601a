package ui

import (
	"context"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
)

func TestAdaptInterval(t *testing.T) {
	for _, c := range []struct {
		base, took, want time.Duration
	}{
		{2 * time.Second, 0, 2 * time.Second},
		{2 * time.Second, 50 * time.Millisecond, 2 * time.Second},  // cheap: the configured interval
		{2 * time.Second, 600 * time.Millisecond, 9 * time.Second}, // fifteen times the scan
		{2 * time.Second, 640 * time.Millisecond, 9600 * time.Millisecond},
		{2 * time.Second, 10 * time.Second, maxRefresh}, // capped
		{time.Minute, 10 * time.Second, time.Minute},    // never below the configured interval
		{time.Second, 100 * time.Millisecond, 1500 * time.Millisecond},
		{time.Second, 150 * time.Millisecond, 2300 * time.Millisecond}, // 2.25 s, to the tenth
	} {
		if got := adaptInterval(c.base, c.took); got != c.want {
			t.Errorf("adaptInterval(%v, %v) = %v, want %v", c.base, c.took, got, c.want)
		}
	}
}

// pendingTick is the interval of the armed background refresh.
func (d *driver) pendingTick() time.Duration {
	d.t.Helper()
	for _, tm := range d.timers {
		if isTick(tm.f(clock0)) {
			return tm.d
		}
	}
	d.t.Fatalf("no refresh armed; screen:\n%s", d.screen())
	return 0
}

// TestRefreshAdaptsToScanCost: a scanner of known cost (300ms per scan)
// slows the background refresh to fifteen times that, and the status bar says
// so; when scans get cheap again the refresh comes back to the configured
// interval and the note goes.
func TestRefreshAdaptsToScanCost(t *testing.T) {
	const cost = 300 * time.Millisecond
	scan := &fakeScanner{snaps: []*inspect.Snapshot{fakeSnapshot()}, cost: cost}
	d := newDriver(t, Options{Scanner: scan, Interval: 2 * time.Second, StartPath: "/mnt/projects"})
	d.started()
	d.settle()
	took := d.m.scan.took
	if took < cost {
		t.Fatalf("the scan took %v, less than the scanner's cost %v", took, cost)
	}
	next := d.pendingTick()
	if next != adaptInterval(2*time.Second, took) || next < refreshFactor*cost {
		t.Fatalf("after a scan of %v the refresh is armed in %v, want %dx the scan (>= %v)", took, next, refreshFactor, refreshFactor*cost)
	}
	d.mustSee("data 0.0s old · refresh " + seconds(next) + " (scan " + seconds(took) + ")")

	scan.setCost(0)
	d.fire(isTick)
	d.until("the cheap scan", func(m Model) bool { return scan.count() == 2 && !m.scan.running })
	d.settle()
	if d.m.scan.took >= 200*time.Millisecond {
		t.Skipf("a scan without cost took %v on this loaded machine: cannot show the way back", d.m.scan.took)
	}
	if next := d.pendingTick(); next != 2*time.Second {
		t.Fatalf("after a cheap scan the refresh is armed in %v, want the configured 2s", next)
	}
	d.mustNotSee("refresh ")
}

// TestKeysAnsweredWhileScanning: a scan runs in a command, so a key is
// answered while it is still running (here: blocked until the test lets
// it go) and the scan's result arrives later.
func TestKeysAnsweredWhileScanning(t *testing.T) {
	scan := &fakeScanner{snaps: []*inspect.Snapshot{fakeSnapshot()}}
	d := newDriver(t, Options{Scanner: scan, StartPath: "/mnt/projects"})
	d.started()
	d.settle()
	scan.mu.Lock()
	scan.gate = make(chan struct{})
	scan.mu.Unlock()
	d.key("r")
	if !d.m.scan.running {
		t.Fatal("r started no scan")
	}
	d.key("j")
	if d.m.tree.selected != idCache {
		t.Fatalf("j during a scan: selected %x, want /mnt/projects/cache (%x)", d.m.tree.selected, idCache)
	}
	d.key("?")
	d.mustSee("any key closes")
	d.key("esc")
	scan.gate <- struct{}{}
	d.until("the scan's result", func(m Model) bool { return !m.scan.running })
	if d.m.tree.selected != idCache {
		t.Fatalf("the refresh moved the selection to %x", d.m.tree.selected)
	}
}

// focusScanner is a fakeScanner that is a FocusScanner: it records the
// mounts each scan was asked to read in full detail.
type focusScanner struct {
	*fakeScanner
	amu   sync.Mutex
	asked [][]inspect.MountID
}

func (f *focusScanner) ScanFocus(ctx context.Context, ids ...inspect.MountID) (*inspect.Snapshot, error) {
	f.amu.Lock()
	f.asked = append(f.asked, append([]inspect.MountID(nil), ids...))
	f.amu.Unlock()
	return f.fakeScanner.Scan(ctx)
}

func (f *focusScanner) lastAsked() []inspect.MountID {
	f.amu.Lock()
	defer f.amu.Unlock()
	return f.asked[len(f.asked)-1]
}

func isFocusDue(msg tea.Msg) bool { _, ok := msg.(focusDueMsg); return ok }

// TestFocusedScans: with a FocusScanner the view asks for counts first,
// then, after a short pause, for the selected mount's detail; meanwhile
// the holders pane shows the counts and says it is reading. A move away
// and back before the pause ends starts one scan, not two; the refresh
// reads the selection in full detail.
func TestFocusedScans(t *testing.T) {
	scan := &focusScanner{fakeScanner: &fakeScanner{snaps: []*inspect.Snapshot{fakeSnapshot()}}}
	d := newDriver(t, Options{Scanner: scan, StartPath: "/mnt/projects"})
	d.started()
	d.settle()
	if got := scan.lastAsked(); len(got) != 0 {
		t.Fatalf("the first scan asked for detail of %x, want counts only", got)
	}
	d.mustSee("Holders of /mnt/projects", "reading how each holds it…", "demo-reader")
	if n := d.fire(isFocusDue); n != 1 {
		t.Fatalf("%d focused scans armed after the first scan, want 1", n)
	}
	d.until("the focused scan", func(m Model) bool { return scan.count() == 2 && !m.scan.running })
	if got := scan.lastAsked(); len(got) != 1 || got[0] != idProjects {
		t.Fatalf("the focused scan asked for %x, want /mnt/projects (%x)", got, idProjects)
	}
	d.mustNotSee("reading how each holds it…")

	d.key("j", "k", "j") // to cache, back, and to cache again
	if d.m.tree.selected != idCache {
		t.Fatalf("selected %x, want /mnt/projects/cache", d.m.tree.selected)
	}
	d.settle() // the timers come back as messages
	if n := d.fire(isFocusDue); n != 2 {
		t.Fatalf("%d pauses armed for two moves to cache, want 2", n)
	}
	d.until("the second focused scan", func(m Model) bool { return scan.count() == 3 && !m.scan.running })
	d.settle()
	if n := scan.count(); n != 3 {
		t.Fatalf("%d scans, want 3: a stale pause started one", n)
	}
	if got := scan.lastAsked(); len(got) != 1 || got[0] != idCache {
		t.Fatalf("the focused scan asked for %x, want cache (%x)", got, idCache)
	}
	d.fire(isTick)
	d.until("the refresh", func(m Model) bool { return scan.count() == 4 && !m.scan.running })
	if got := scan.lastAsked(); len(got) != 1 || got[0] != idCache {
		t.Fatalf("the refresh asked for %x, want cache (%x)", got, idCache)
	}
}
