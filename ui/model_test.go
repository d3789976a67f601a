package ui

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
	"mounttop/internal/testns"
	"mounttop/unmount"
)

func TestMain(m *testing.M) {
	// Golden files and screen checks are taken without colour, as under
	// NO_COLOR: what they show must be readable from the characters alone.
	lipgloss.SetColorProfile(termenv.Ascii)
	testns.Main(m)
}

func TestFirstScreenShowsTreeAndHoldersOfStartPath(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects/src/main.go"})
	d.started()
	if d.m.tree.selected != idProjects {
		t.Fatalf("selected %x, want /mnt/projects (the mount the path lies on)", d.m.tree.selected)
	}
	d.mustSee("/mnt/projects", "Holders of /mnt/projects (2 processes)", "4242", "demo-reader /mnt/projects/queue",
		"fd 5   rw    /mnt/projects/queue", "cwd", "/mnt/projects/old.log (deleted)",
		"Same filesystem (dev 0:41) also mounted at:", "/mnt/backup", "lies on /mnt/projects")
}

func TestKeysMoveCollapseAndFilter(t *testing.T) {
	d := newDriver(t, Options{})
	d.started()
	if d.m.tree.selected != idRoot {
		t.Fatalf("starts on %x, want the root", d.m.tree.selected)
	}
	d.key("j", "down")
	if d.m.tree.selected != idProjects {
		t.Fatalf("j, down: selected %x, want /mnt/projects", d.m.tree.selected)
	}
	d.key("k")
	if d.m.tree.selected != idMnt {
		t.Fatalf("k: selected %x, want /mnt", d.m.tree.selected)
	}
	// Collapse /mnt: its 5 submounts hide behind [+5].
	d.key("enter")
	d.mustSee("/mnt [+5]")
	d.mustNotSee("/mnt/media")
	d.key("right")
	d.mustSee("/mnt/media")
	// left on a leaf goes to the parent.
	d.key("G")
	if d.m.tree.selected != idBackup {
		t.Fatalf("G: selected %x, want the last mount", d.m.tree.selected)
	}
	d.key("h")
	if d.m.tree.selected != idMnt {
		t.Fatalf("h on a leaf: selected %x, want its parent", d.m.tree.selected)
	}
	// Filter: matches and their ancestors only.
	d.key("/", "m", "e", "d")
	d.mustSee("filter: med█", "/mnt/media", "/mnt ")
	d.mustNotSee("/mnt/projects", "/mnt/scratch")
	d.key("i", "enter")
	d.mustSee("filter: medi")
	// Keys that arrive together act one by one: "/" opens the prompt and
	// the rest is its text.
	d.key("esc", "/scr", "enter")
	d.mustSee("filter: scr")
	if d.m.tree.selected != idScratch {
		t.Fatalf("/scr: selected %x, want /mnt/scratch", d.m.tree.selected)
	}
	// esc (no run, no preview) clears the filter.
	d.key("esc")
	d.mustSee("/mnt/projects", "/mnt/scratch")
}

func TestTabSwitchesPanesAndEnterExpandsHolders(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.key("tab")
	if d.m.focus != focusLower {
		t.Fatal("tab did not move the focus to the holders pane")
	}
	d.mustSee("▶ Holders of /mnt/projects")
	// Everything fits, so the uses are shown; enter on the first process
	// hides its uses.
	d.mustSee("fd 5   rw    /mnt/projects/queue")
	d.key("enter")
	d.mustNotSee("fd 5   rw    /mnt/projects/queue")
	d.mustSee("▸    4242")
	d.key("enter")
	d.mustSee("fd 5   rw    /mnt/projects/queue")
	d.key("tab")
	if d.m.focus != focusTree {
		t.Fatal("tab again did not move the focus back to the tree")
	}
}

// The selection is the mount's unique ID: a refresh that reorders the
// table keeps it, and when the mount disappears it moves to the parent.
func TestSelectionFollowsTheMountAcrossRefreshes(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/media"})
	d.started()
	// A new mount appears above the selection.
	ms := fakeMounts()
	ms = append(ms[:2], append([]inspect.Mount{mnt(1<<32+99, idMnt, "/mnt/aaa", "tmpfs", "new", 50)}, ms[2:]...)...)
	s2 := inspect.NewSnapshot(ms, fakeHolders(), nil)
	s2.Taken = clock0
	d.scan.set(s2)
	d.key("r")
	d.until("the refresh", func(m Model) bool { return m.snap == s2 })
	if d.m.tree.selected != idMedia {
		t.Fatalf("after a refresh with a new mount, selected %x, want /mnt/media", d.m.tree.selected)
	}
	// The mount goes.
	s3 := snapshotWithout(idMedia)
	d.scan.set(s3)
	d.key("r")
	d.until("the refresh", func(m Model) bool { return m.snap == s3 })
	if d.m.tree.selected != idMnt {
		t.Fatalf("after /mnt/media went, selected %x, want its parent /mnt", d.m.tree.selected)
	}
	d.mustSee("/mnt/media is no longer mounted; selected the mount above it", "Holders of /mnt ")
}

// Scans never overlap and never block: the next tick is armed only when a
// result arrives, a tick of an older generation does nothing, and a
// refresh makes the result of a scan still running stale.
func TestScansAreGenerationNumbered(t *testing.T) {
	d := newDriver(t, Options{})
	d.started()
	d.settle()
	if n := len(d.timers); n != 2 { // the clock and one tick
		t.Fatalf("after the first result, %d timers pending, want the clock and one tick", n)
	}
	// A hung scan: the screen stays usable.
	gate := make(chan struct{})
	d.scan.mu.Lock()
	d.scan.gate = gate
	d.scan.mu.Unlock()
	calls := d.scan.count()
	d.fire(isTick)
	if !d.m.scan.running {
		t.Fatal("the tick did not start a scan")
	}
	for d.scan.count() == calls { // the scan's goroutine has entered Scan
		time.Sleep(time.Millisecond)
	}
	genHung := d.m.scan.gen
	d.key("j", "j", "tab", "tab") // answered at once (send checks Update's time)
	if d.m.tree.selected != idProjects {
		t.Fatalf("keys during a hung scan: selected %x", d.m.tree.selected)
	}
	// No tick is armed while the scan runs: nothing can start a second one.
	if d.fire(isTick) != 0 {
		t.Fatal("a tick was armed while a scan was running")
	}
	// r abandons the hung scan (its context is cancelled) and starts anew.
	fresh := snapshotWithout(idScratch)
	d.scan.mu.Lock()
	d.scan.gate = nil
	d.scan.snaps = []*inspect.Snapshot{fresh}
	d.scan.mu.Unlock()
	d.key("r")
	if d.m.scan.gen != genHung+1 {
		t.Fatalf("refresh: gen %d, want %d", d.m.scan.gen, genHung+1)
	}
	d.until("the fresh scan", func(m Model) bool { return m.snap == fresh })
	// The hung scan's late result is dropped.
	old := d.m.snap
	d.send(scanDoneMsg{gen: genHung, snap: fakeSnapshot()})
	if d.m.snap != old {
		t.Fatal("a stale scan result replaced a newer one")
	}
	// A tick of the old generation does nothing.
	before := d.scan.count()
	d.send(tickMsg{gen: genHung})
	d.settle()
	if d.scan.count() != before {
		t.Fatalf("a stale tick started a scan (%d -> %d, gen %d, scanning %v)", before, d.scan.count(), d.m.scan.gen, d.m.scan.running)
	}
}

func TestSlowScanShowsItsAgeAndTimesOut(t *testing.T) {
	now := clock0
	d := newDriver(t, Options{ScanTimeout: 200 * time.Millisecond, Now: func() time.Time { return now }})
	d.started()
	d.settle()
	d.scan.mu.Lock()
	d.scan.gate = make(chan struct{}) // never opened: the scan hangs until its deadline
	d.scan.mu.Unlock()
	d.fire(isTick)
	now = clock0.Add(3 * time.Second)
	d.send(clockMsg(now))
	d.mustSee("scanning 3.0s… data 3.0s old")
	d.until("the scan deadline", func(m Model) bool { return m.bar.err != nil })
	d.mustSee("Error: scanning: context deadline exceeded")
	// The old data stays, and the next tick is armed.
	d.settle()
	d.mustSee("/mnt/projects")
	if d.fire(isTick) != 1 {
		t.Fatal("no tick armed after a failed scan")
	}
}

func TestDialogDefaultsToNoAndStatesWhatHappens(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.key("l")
	d.until("the lazy dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Lazy unmount of /mnt/projects?", "umount2 MNT_DETACH", "NOT touched",
		"pid 4242 reader (fd)", "pid 4250 shell (fd×2 cwd)", "[ No ]", "(y) Yes")
	// enter takes the highlighted choice: No.
	d.key("enter")
	d.settle()
	if d.um.runCount() != 0 {
		t.Fatal("enter on a fresh dialog ran the unmount")
	}
	d.mustSee("cancelled: nothing was changed")
	// esc and n say no too; every other key is swallowed by the dialog.
	for _, no := range []string{"esc", "n"} {
		d.key("f")
		d.until("the force dialog", func(m Model) bool { return m.dialog != nil })
		d.key("j", "l", "q"[:0]+"k", no)
		d.settle()
		if d.um.runCount() != 0 || d.m.dialog != nil {
			t.Fatalf("%s: ran %d, dialog open %v", no, d.um.runCount(), d.m.dialog != nil)
		}
	}
	// right, enter: Yes.
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 0, unmount.Event{Stage: unmount.StageDone, Err: unix.EBUSY, Result: &unmount.Result{Summary: "umount2(MNT_FORCE) of /mnt/projects failed"}})
	}
	d.key("f")
	d.until("the force dialog", func(m Model) bool { return m.dialog != nil })
	d.key("right", "enter")
	d.until("the run to end", func(m Model) bool { return d.um.runCount() == 1 && !m.progress.active })
	if r := d.um.lastRun(); r.Mode != unmount.ModeForce || r.Target.ID != idProjects {
		t.Fatalf("ran %v on %x", r.Mode, r.Target.ID)
	}
}

func TestLazyUnmountReportsTheResultAndRefreshes(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/scratch"})
	d.started()
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 0, unmount.PlanEvent(&plan))
		send(ch, 0, unmount.Event{Stage: unmount.StageUnmount, Note: unmount.PlainUnmounted{Flag: "MNT_DETACH", Mountpoint: "/mnt/scratch"}})
		send(ch, 0, unmount.Event{Stage: unmount.StageDone, Result: &unmount.Result{Gone: true, Summary: "/mnt/scratch is unmounted"}})
	}
	d.scan.set(snapshotWithout(idScratch))
	scans := d.scan.count()
	d.key("l")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Nobody holds it.")
	d.key("y")
	d.until("the result", func(m Model) bool { return m.progress.result != nil && !m.progress.active })
	d.mustSee("lazy unmount of /mnt/scratch: gone (/mnt/scratch is unmounted)", "Result: ✓ /mnt/scratch is unmounted")
	d.until("the refresh after the run", func(m Model) bool { return d.scan.count() > scans && !m.scan.running })
	if d.m.tree.selected != idMnt {
		t.Fatalf("after the unmount, selected %x, want the parent", d.m.tree.selected)
	}
	// esc closes the finished run's pane.
	d.key("esc")
	d.mustSee("Holders of /mnt ")
}

// stagedScript plays a staged run that fences and revokes, then drains
// until it is cancelled, and rolls back (as the engine does before
// revoke when cancelled, and reports "cancelled" after).
func stagedScript(revoke bool) script {
	return func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		hs := []unmount.HolderState{{PID: 4242, Comm: "reader", State: "pending", Reason: "close fd 5"},
			{PID: 4250, Comm: "shell", State: "pending", Reason: "close 2 fds, chdir /"}}
		send(ch, 0, unmount.Event{Stage: unmount.StagePlan, Note: unmount.PlanNote{Plan: plan}, Holders: hs})
		send(ch, 1, unmount.Event{Stage: unmount.StageFence, Note: unmount.Fenced{Target: "/mnt/projects", RealPath: "/run/mounttop-fence-1/mnt"}})
		if revoke {
			hs = append([]unmount.HolderState(nil), hs...)
			hs[0].State, hs[0].Reason = "revoked", "closed fd 5"
			send(ch, 2, unmount.Event{Stage: unmount.StageRevoke, PID: 4242, Note: unmount.HolderRevoked{Who: unmount.Who{PID: 4242, Comm: "reader"}, Did: &unmount.Revoked{Closed: []int{5}}}, Holders: hs})
			hs = append([]unmount.HolderState(nil), hs...)
			hs[1].State, hs[1].Reason = "refused", "traced by another process"
			send(ch, 2, unmount.Event{Stage: unmount.StageRevoke, PID: 4250, Note: unmount.HolderNotRevoked{Who: unmount.Who{PID: 4250, Comm: "shell"}, ErrText: "traced by another process"}, Err: syscall.EPERM, Holders: hs})
			shell := leftHolder(4250, "shell")
			shell.State = hs[1]
			send(ch, 3, unmount.Event{Stage: unmount.StageDrain, Note: unmount.DrainLeft{Left: []unmount.LeftHolder{shell}}, Remaining: 1})
		}
		<-ctx.Done()
		if revoke {
			send(ch, 4, unmount.Event{Stage: unmount.StageDone, Err: unmount.ErrCancelled,
				Result: &unmount.Result{Summary: "cancelled during the drain; the fence stays"}})
			return
		}
		send(ch, 4, unmount.Event{Stage: unmount.StageRollback, Note: unmount.FenceRolledBack{MountID: idProjects, Target: "/mnt/projects", AsItWas: true}})
		send(ch, 4, unmount.Event{Stage: unmount.StageDone, Err: unmount.ErrCancelled,
			Result: &unmount.Result{Summary: "cancelled before revoke; everything is as it was"}})
	}
}

func TestStagedRunShowsProgressAndCancelRollsBack(t *testing.T) {
	for _, key := range []string{"x", "esc"} {
		t.Run(key, func(t *testing.T) {
			d := newDriver(t, Options{StartPath: "/mnt/projects"})
			d.started()
			d.um.play = stagedScript(false)
			d.key("F")
			d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
			d.mustSee("Staged unmount (close) of /mnt/projects?", "1. Fence /mnt/projects",
				"pid 4242 reader: close fd", "3. Drain: rescan every 1s", "x cancels; before revoke starts, the fence is rolled back")
			d.key("y")
			d.until("the fence event", func(m Model) bool { return m.progress.stage == unmount.StageFence })
			d.mustSee("Staged unmount (close) of /mnt/projects · stage fence", "[FENCE]", "4242 reader", "pending")
			d.key(key)
			d.until("the end of the run", func(m Model) bool { return !m.progress.active })
			d.mustSee("cancel requested: rolling back", "rollback fence removed", "[ROLLBACK]",
				"Result: ✗ cancelled before revoke; everything is as it was")
			// Cancelling is not an error.
			if d.m.bar.err != nil {
				t.Fatalf("a cancelled run left an error: %v", d.m.bar.err)
			}
		})
	}
}

func TestStagedRunHolderStatesAndRefusalHint(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.um.play = stagedScript(true)
	d.key("F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the drain", func(m Model) bool { return m.progress.stage == unmount.StageDrain })
	d.mustSee("[DRAIN]", "4242 reader         revoked    closed fd 5",
		"4250 shell          refused    traced by another process", "remaining: 1 holder",
		"pid 4250 (shell): not revoked: traced by another process")
	// While it runs, another unmount is refused, and q asks first.
	d.key("l")
	d.mustSee("Error: a staged unmount (close) of /mnt/projects is still running: x cancels it")
	d.key("q")
	if d.m.dialog == nil {
		t.Fatal("q during a run quit without asking")
	}
	d.mustSee("Quit while an unmount runs?", "revoke has started, so holders already revoked stay revoked")
	d.key("n")
	if d.quit || !d.m.progress.active {
		t.Fatal("answering no to quit stopped something")
	}
	d.key("q", "y")
	d.until("quit after the run stopped", func(Model) bool { return d.quit })
	if d.m.progress.active {
		t.Fatal("quit before the run ended")
	}
}

func TestSignalCancelsTheRunAndQuits(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.um.play = stagedScript(false)
	d.key("F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the fence", func(m Model) bool { return m.progress.stage == unmount.StageFence })
	d.send(SignalMsg(syscall.SIGTERM))
	d.mustSee("got terminated: cancelling the staged unmount (close)")
	d.until("quit", func(Model) bool { return d.quit })
	if !strings.Contains(d.screen(), "rollback") {
		t.Fatalf("quit before the rollback was seen:\n%s", d.screen())
	}
	if s := d.m.LeftRunning(); s != "" {
		t.Fatalf("LeftRunning after a clean stop: %q", s)
	}
	// Without a run, a signal quits at once.
	d2 := newDriver(t, Options{})
	d2.started()
	d2.send(SignalMsg(syscall.SIGHUP))
	if !d2.quit {
		d2.settle()
	}
	if !d2.quit {
		t.Fatal("SIGHUP did not quit")
	}
}

// A run that does not stop within QuitGrace is abandoned, and said so.
func TestQuitGivesUpOnARunThatDoesNotStop(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 0, unmount.Event{Stage: unmount.StageRevoke, PID: 4242, Note: unmount.HolderRevoked{Who: unmount.Who{PID: 4242, Comm: "reader"}, Did: &unmount.Revoked{Closed: []int{5}}}})
		<-stuck
	}
	d.key("F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("revoke", func(m Model) bool { return m.progress.stage == unmount.StageRevoke })
	d.key("q", "y")
	d.settle()
	if d.fire(func(msg tea.Msg) bool { _, ok := msg.(quitTimeoutMsg); return ok }) != 1 {
		t.Fatal("no quit timeout armed")
	}
	if !d.quit {
		d.settle()
	}
	if !d.quit {
		t.Fatal("the quit timeout did not quit")
	}
	if s := d.m.LeftRunning(); !strings.Contains(s, "had not stopped") {
		t.Fatalf("LeftRunning = %q", s)
	}
}

func TestExpireOffersWhenIdleAndShowsMarks(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/scratch", Interval: 3 * time.Second})
	d.started()
	step := make(chan struct{})
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		d.um.mu.Lock()
		d.um.marks = map[inspect.MountID]unmount.ExpiryMark{idScratch: {ID: idScratch, MarkedAt: clock0.Add(time.Second), Attempts: 1}}
		d.um.mu.Unlock()
		send(ch, 1, unmount.Event{Stage: unmount.StageExpire, Note: unmount.ExpireAttempt{Attempt: 1, Step: unmount.ExpireMarked}})
		<-step
		d.um.mu.Lock()
		d.um.marks[idScratch] = unmount.ExpiryMark{ID: idScratch, MarkedAt: clock0.Add(4 * time.Second), Attempts: 2,
			Cleared: 1, ClearedAt: clock0.Add(4 * time.Second)}
		d.um.mu.Unlock()
		send(ch, 4, unmount.Event{Stage: unmount.StageExpire, Note: unmount.ExpireAttempt{Attempt: 2, Step: unmount.ExpireCleared, MarkedAt: clock0.Add(time.Second), Cleared: 1}})
		<-ctx.Done()
		send(ch, 5, unmount.Event{Stage: unmount.StageDone, Err: unmount.ErrCancelled, Result: &unmount.Result{Marked: true, Summary: "cancelled; the mount is still there"}})
	}
	d.key("e")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Expire /mnt/scratch?", "[ No ]", "(y) Expire now", "(w) When idle", "try again every 3s")
	d.key("w")
	d.until("the first mark", func(m Model) bool { return m.expiry.of(idScratch).state != expiryNone })
	d.mustSee("armed 03:00:01", "Expiry: marked at 03:00:01")
	close(step)
	d.until("the cleared mark", func(m Model) bool { return m.expiry.of(idScratch).state == expiryCleared })
	d.mustSee("cleared 03:00:04", "Expire when idle of /mnt/scratch")
	if r := d.um.lastRun(); !r.ExpireWhenIdle || r.Interval != 3*time.Second {
		t.Fatalf("ran %+v, want expire when idle every 3s", r)
	}
	d.key("x")
	d.until("the end", func(m Model) bool { return !m.progress.active })
	// An expire run that unmounts shows "expired".
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 6, unmount.Event{Stage: unmount.StageDone, Result: &unmount.Result{Gone: true, Summary: "expired and is unmounted"}})
	}
	d.key("e")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("expired", func(m Model) bool { return m.expiry.of(idScratch).state == expiryExpired })
	if r := d.um.lastRun(); r.ExpireWhenIdle {
		t.Fatal("y chose expire when idle, want expire now")
	}
}

func TestErrorsShowUntilTheNextKeyWithAHint(t *testing.T) {
	cases := []struct {
		err  error
		hint string
	}{
		{unix.EBUSY, "held by 2 processes: 4242 reader, 4250 shell · F revokes them, l detaches lazily"},
		{unix.EPERM, "not permitted: unmounting needs root (CAP_SYS_ADMIN)"},
		{&unmount.Error{Op: "umount", Target: "/mnt/projects", Err: unix.EINVAL}, "not a mount point any more"},
		{&unmount.Error{Op: "umount --expire", Target: "/mnt/projects", Err: unmount.ErrRefused, Hint: "expire the submounts first"}, "expire the submounts first"},
		{fmt.Errorf("drain: %w", unmount.ErrTimeout), "holders remain (see the log)"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.err), func(t *testing.T) {
			d := newDriver(t, Options{StartPath: "/mnt/projects"})
			d.started()
			err := c.err
			d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
				send(ch, 0, unmount.Event{Stage: unmount.StageDone, Err: err, Result: &unmount.Result{Summary: "not unmounted"}})
			}
			d.key("f")
			d.until("dialog", func(m Model) bool { return m.dialog != nil })
			d.key("y")
			d.until("the error", func(m Model) bool { return m.bar.err != nil })
			d.mustSee("Error: forced unmount of /mnt/projects:", c.hint)
			d.key("j")
			d.mustNotSee("Error:", c.hint)
			// The log keeps it.
			d.mustSee("Result: ✗ not unmounted")
		})
	}
}

func TestPlanFailureIsShown(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.um.planErr = &unmount.Error{Op: "umount", Target: "/mnt/projects", Err: fmt.Errorf("%w: it is the root", unmount.ErrRefused)}
	d.key("F")
	d.until("the error", func(m Model) bool { return m.bar.err != nil })
	d.mustSee("Error: planning the staged unmount (close) of /mnt/projects:")
	if d.m.dialog != nil || d.um.runCount() != 0 {
		t.Fatal("a refused plan opened a dialog or ran")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.key("d")
	d.until("the preview", func(m Model) bool { return m.progress.preview })
	d.mustSee("Plan for staged unmount (close) of /mnt/projects (dry run: nothing changed)",
		"1. Fence /mnt/projects", "pid 4242 reader: close fd", "dry run: nothing was changed")
	if d.um.runCount() != 0 {
		t.Fatal("the dry run ran something")
	}
	d.key("esc")
	d.mustSee("Holders of /mnt/projects")
}

func TestHelpListsEveryKey(t *testing.T) {
	d := newDriver(t, Options{})
	d.started()
	d.key("?")
	scr := d.screen()
	for _, g := range d.m.keys.helpGroups() {
		for _, b := range g.Bindings {
			if !strings.Contains(scr, b.Help().Key+" "+b.Help().Desc) {
				t.Errorf("help lacks %q", b.Help().Key+" "+b.Help().Desc)
			}
		}
	}
	for _, c := range present.TreeColumns.Help() {
		if !strings.Contains(scr, c.Name) {
			t.Errorf("help lacks the column %s", c.Name)
		}
	}
	d.key("j")
	d.mustNotSee("any key closes this help")
	if d.m.tree.selected != idRoot {
		t.Fatal("the key that closed help also moved the cursor")
	}
}

// Names from the system can carry terminal escapes; none may reach the
// terminal raw. With the ASCII profile the view writes no escape itself,
// so any ESC in the output came from the system.
func TestEscapesAreShownAsText(t *testing.T) {
	evil := "/mnt/\x1b]0;pwned\x07\x1b[2J"
	ms := fakeMounts()
	ms[2].Mountpoint = evil
	ms[2].Source = "src\x1b[31m"
	hs := fakeHolders()
	hs[idProjects][0].Comm = "rea\x1bder"
	hs[idProjects][0].Cmdline = []string{"\x1b[1mbold", "\u202eevil"}
	hs[idProjects][0].Uses[0].Path = evil + "/f\nile"
	s := inspect.NewSnapshot(ms, hs, []inspect.Warning{{PID: 9, What: "reading /proc/9/fd/\x1b[H"}})
	s.Taken = clock0
	d := newDriver(t, Options{Scanner: &fakeScanner{snaps: []*inspect.Snapshot{s}}, StartPath: evil})
	d.started()
	d.m.holders.SetSize(80, 20)
	views := []string{d.m.View()}
	d.key("l")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	views = append(views, d.m.View())
	for _, v := range views {
		if strings.ContainsAny(v, "\x1b\x07\u202e") {
			t.Fatalf("raw escape in the view: %q", v)
		}
	}
	d.key("n")
	d.mustSee(`/mnt/\e]0;pwned\x07\e[2J`, `src\e[31m`, `\e[1mbold \u{202e}evil`, `\nile`)
}

func TestLayoutFitsEverySize(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	for _, sz := range [][2]int{{80, 24}, {100, 30}, {132, 43}, {200, 60}, {80, 24}} {
		d.send(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, screen := range []func(){func() {}, func() { d.key("?") }, func() { d.key("j") }} {
			screen()
			lines := strings.Split(d.m.View(), "\n")
			if len(lines) != sz[1] {
				t.Errorf("%dx%d: %d lines", sz[0], sz[1], len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > sz[0] {
					t.Errorf("%dx%d: line %d is %d wide: %q", sz[0], sz[1], i, w, l)
				}
			}
		}
	}
	// A dialog on a short terminal is cut, never longer than the screen.
	d.key("F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	for _, h := range []int{24, 14, 10} {
		d.send(tea.WindowSizeMsg{Width: 80, Height: h})
		if n := len(strings.Split(d.m.View(), "\n")); n != h {
			t.Errorf("dialog at 80x%d: %d lines", h, n)
		}
	}
	d.key("n")
	d.send(tea.WindowSizeMsg{Width: 10, Height: 5})
	d.mustSee("too small")
}

// What /proc does not show per process is shown too: kernel holders,
// copies in other mount namespaces, units and containers, detached mounts.
func TestHoldersBeyondProcesses(t *testing.T) {
	s := fakeSnapshot()
	s.Kernel = map[inspect.MountID][]inspect.KernelHolder{
		idScratch: {{Kind: "loop", Name: "/dev/loop3", Path: "/mnt/scratch/disk.img"}},
	}
	copyMount := mnt(0, 0, "/data", "tmpfs", "demo-projects", 41)
	copyMount.OldID = 77
	s.Namespaces = []inspect.Namespace{{Inode: 4026532999, PIDs: []int{900, 901},
		Mounts:  []inspect.Mount{copyMount},
		Holders: map[int][]inspect.Holder{77: {{PID: 900, Comm: "app", Unit: "app.service"}}}}}
	hs := s.Holders[idProjects]
	hs[0].Container = "0123456789abcdef0123"
	hs[1].Unit = "build.service"
	ms := append(fakeMounts(), inspect.Mount{ID: 1<<40 + 5, ParentID: 1<<40 + 5, Mountpoint: "(detached)", Source: "?", Minor: 99, Detached: true})
	s2 := inspect.NewSnapshot(ms, s.Holders, nil)
	s2.Kernel, s2.Namespaces, s2.Taken = s.Kernel, s.Namespaces, clock0
	d := newDriver(t, Options{Scanner: &fakeScanner{snaps: []*inspect.Snapshot{s2}}, StartPath: "/mnt/projects"})
	d.started()
	d.send(tea.WindowSizeMsg{Width: 140, Height: 40})
	d.mustSee("[container 0123456789ab]", "[build.service]", "Also mounted in other mount namespaces:",
		"mnt:[4026532999] /data  1 holder · independent: keeps the filesystem alive after ours goes (pids 900, 901)")
	d.key("/", "s", "c", "r", "enter")
	d.mustSee("0+1", "No process holds /mnt/scratch; the kernel does (below).", "Held by the kernel (no process to revoke):",
		"loop /dev/loop3: /mnt/scratch/disk.img · release: detach loop device (losetup -d /dev/loop3)")
	d.key("/", "d", "e", "t", "a", "c", "h", "enter")
	d.mustSee("(detached)", "detached")
}

// A detached mount has no path: only the staged mode applies (revoke its
// holders until nothing holds it); l, e and f say so and do nothing.
func TestDetachedMountOnlyStaged(t *testing.T) {
	d := newDriver(t, Options{Scanner: &fakeScanner{snaps: []*inspect.Snapshot{kernelSnapshot()}}})
	d.started()
	d.key("G")
	if d.m.tree.selected != idDetached {
		t.Fatalf("G: selected %x, want the detached mount", d.m.tree.selected)
	}
	d.mustSee("(detached)", "detached", "Holders of the detached mount (unique ID 1099511627781) (1 process)", "tail -f log")
	for _, k := range []string{"l", "e", "f"} {
		d.key(k)
		d.settle()
		if d.m.dialog != nil {
			t.Fatalf("%s on a detached mount opened a dialog", k)
		}
		mode := map[string]string{"l": "lazy unmount", "e": "expire", "f": "forced unmount"}[k]
		want := "no " + mode + ": the detached mount (unique ID 1099511627781) is in no mount table; F revokes its holders until it goes, d previews that"
		if d.m.bar.status != want || d.m.bar.err != nil {
			t.Fatalf("%s: status %q (error %v), want %q", k, d.m.bar.status, d.m.bar.err, want)
		}
		d.mustSee("no " + mode + ": the detached mount")
	}
	if n := len(d.um.planned); n != 0 {
		t.Fatalf("l/e/f on a detached mount asked the engine for %d plans", n)
	}
	d.key("d")
	d.until("the preview", func(m Model) bool { return m.progress.preview })
	d.mustSee("Plan for staged unmount (close) of the detached mount (unique ID",
		"Revoke every holder of the detached mount (unique ID 1099511627781)", "until nothing holds it.", "F acts on it")
	d.mustNotSee("Fence", "Unmount it for real")
	d.key("esc", "F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Staged unmount (close) of the detached mount (unique ID 1099511627781)?",
		"Revoke every holder of the detached mount (unique ID 1099511627781)", "until nothing holds it.",
		"pid 4280 tail: close fd", "revoke stragglers until nothing holds it", "[ No ]")
	d.mustNotSee("Fence")
	d.key("y")
	d.until("the run", func(m Model) bool { return d.um.runCount() == 1 })
	if r := d.um.lastRun(); r.Mode != unmount.ModeStaged || r.Target.ID != idDetached || !r.Target.Detached {
		t.Fatalf("ran %v on %x (detached %v), want staged on the detached mount", r.Mode, r.Target.ID, r.Target.Detached)
	}
}

// kernelDriver starts the view on kernelSnapshot at path, at 100x40 so
// that the holders pane shows every row.
func kernelDriver(t *testing.T, path string) *driver {
	t.Helper()
	scan := &fakeScanner{snaps: []*inspect.Snapshot{kernelSnapshot()}}
	d := newDriver(t, Options{Scanner: scan, StartPath: path})
	d.scan = scan
	d.started()
	d.send(tea.WindowSizeMsg{Width: 100, Height: 40})
	return d
}

// cursorTo moves the holders pane's cursor down to the row containing text.
func (d *driver) cursorTo(text string) {
	d.t.Helper()
	for i := 0; i < 30; i++ {
		if r, ok := d.m.holders.current(); ok && strings.Contains(r.text, text) {
			return
		}
		d.key("down")
	}
	d.t.Fatalf("no holders row with %q:\n%s", text, d.screen())
}

// R on a loop device asks the engine, opens a dialog that starts on No
// and says exactly what happens; No does nothing, y runs that release
// and nothing else, then the view rescans.
func TestReleaseLoopDeviceAsksFirst(t *testing.T) {
	d := kernelDriver(t, "/mnt/scratch")
	// From the tree, R moves to the first releasable row.
	d.key("R")
	if d.m.focus != focusLower || d.m.dialog != nil {
		t.Fatalf("R from the tree: focus %v, dialog %v; want the holders pane, no dialog", d.m.focus, d.m.dialog != nil)
	}
	d.mustSee(">   loop /dev/loop3: /mnt/scratch/disk.img", "pick a loop device, swap file or copy, then R releases it", "R release")
	d.key("R")
	d.until("the release dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Detach /dev/loop3?", "Detach /dev/loop3 (backed by /mnt/scratch/disk.img).", "The kernel lets go of the backing file: no process is touched.",
		"[ No ]", "(y) Yes, release")
	if p := d.um.planned[len(d.um.planned)-1]; p.Mode != unmount.ModeStaged || p.Target.ID != idScratch {
		t.Fatalf("planned %v of %x, want a staged plan of /mnt/scratch", p.Mode, p.Target.ID)
	}
	// Enter on the default choice is No.
	d.key("enter")
	d.settle()
	if n := len(d.um.releases()); n != 0 || d.m.dialog != nil {
		t.Fatalf("enter on the default: %d releases, dialog open %v", n, d.m.dialog != nil)
	}
	d.mustSee("cancelled: nothing was changed")
	scans := d.scan.count()
	d.key("R")
	d.until("the dialog again", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the release's result", func(m Model) bool { return strings.HasPrefix(m.bar.status, "released") })
	got := d.um.releases()
	want := unmount.Release{Kind: "loop", Name: "/dev/loop3"}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("released %+v, want exactly %+v", got, want)
	}
	d.mustSee("released: detach /dev/loop3 (backed by /mnt/scratch/disk.img)")
	d.until("the rescan", func(Model) bool { return d.scan.count() > scans })
}

// Swap files and copies in other namespaces say what they do; a copy is
// matched by its namespace's process and its mount ID there.
func TestReleaseSwapAndCopyDialogs(t *testing.T) {
	d := kernelDriver(t, "/mnt/scratch")
	d.key("tab")
	d.cursorTo("swap /mnt/scratch/swapfile")
	d.key("R")
	d.until("the swap dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Swapoff /mnt/scratch/swapfile?", "Swapoff /mnt/scratch/swapfile.", "Every page swapped out to it is read back into memory first")
	d.key("y")
	d.until("the release", func(m Model) bool { return strings.HasPrefix(m.bar.status, "released") })
	if got := d.um.releases(); len(got) != 1 || got[0].Kind != "swap" || got[0].Name != "/mnt/scratch/swapfile" {
		t.Fatalf("released %+v, want the swap file", got)
	}

	d = kernelDriver(t, "/mnt/projects")
	d.key("tab")
	d.cursorTo("mnt:[4026532999] /data")
	d.mustSee("R release")
	d.key("R")
	d.until("the copy dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Unmount the copy at /data in mnt:[4026532999]?",
		"Unmount the copy at /data in mount namespace mnt:[4026532999] (pid 900)", "lazily.",
		"It leaves that namespace's tree now. Its holders there are NOT touched;", "pid 900 app", "Nothing changes in this namespace.")
	d.key("y")
	d.until("the release", func(m Model) bool { return strings.HasPrefix(m.bar.status, "released") })
	want := unmount.Release{Kind: "copy", PID: 900, Mountpoint: "/data", OldID: 77, Lazy: true, Namespace: 4026532999}
	if got := d.um.releases(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("released %+v, want exactly %+v", got, want)
	}
}

// A shadowed mount (X/y mounted, X over-mounted, X/y mounted again) is
// marked hidden in the tree; an overlay with layers on a mount is one of its
// kernel holders, with its layers and namespace.
func TestHiddenAndOverlayInTheView(t *testing.T) {
	ms := append(fakeMounts(),
		mnt(0x501, idMnt, "/mnt/x/y", "tmpfs", "first-y", 60),
		mnt(0x502, idMnt, "/mnt/x", "tmpfs", "over-x", 61),
		mnt(0x503, 0x502, "/mnt/x/y", "tmpfs", "second-y", 62))
	s := inspect.NewSnapshot(ms, fakeHolders(), nil)
	s.Taken = clock0
	s.Kernel = map[inspect.MountID][]inspect.KernelHolder{idScratch: {{Kind: "overlay", Name: "/srv/ov", Path: "/mnt/scratch/up",
		Layers:    []inspect.Layer{{Option: "upperdir", Path: "/mnt/scratch/up"}, {Option: "workdir", Path: "/mnt/scratch/wk"}},
		Namespace: 4026532999}}}
	d := newDriver(t, Options{Scanner: &fakeScanner{snaps: []*inspect.Snapshot{s}}, StartPath: "/mnt/scratch"})
	d.started()
	d.send(tea.WindowSizeMsg{Width: 180, Height: 40})
	d.mustSee("overlay /srv/ov: layers upperdir=/mnt/scratch/up workdir=/mnt/scratch/wk (in mount namespace mnt:[4026532999])",
		"release: unmount the overlay at /srv/ov in mount namespace mnt")
	first, second := lineWith(d.screen(), "first-y"), lineWith(d.screen(), "second-y")
	if !strings.Contains(first, "hidden rw") || strings.Contains(second, "hidden") {
		t.Errorf("tree rows:\n%s\n%s\nwant just first-y hidden", first, second)
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// The tree's EXPIRY column shows who mounts a mount again on access and
// its idle expiry when mounttop set no mark there, and the holders pane
// says what an unmount of it would meet.
func TestAutomountInTheView(t *testing.T) {
	s := fakeSnapshot()
	for i := range s.Mounts {
		if s.Mounts[i].ID == idProjects {
			s.Mounts[i].Automount = &inspect.Automount{By: "systemd", Kind: "direct", PGrp: 1, Unit: "mnt-projects.automount",
				Timeout: 2 * time.Minute, TimeoutKnown: true}
		}
	}
	d := newDriver(t, Options{Scanner: &fakeScanner{snaps: []*inspect.Snapshot{s}}, StartPath: "/mnt/projects"})
	d.started()
	d.send(tea.WindowSizeMsg{Width: 160, Height: 40})
	d.mustSee("systemd 2m0s", "Automount: /mnt/projects is automounted by systemd's mnt-projects.automount: the next access mounts it again")
}

// A copy in the host's mount namespace (pid 1's) is marked so, and its
// release has a question of its own: the usual y does nothing, H does.
func TestReleaseInTheHostNamespaceAsksApart(t *testing.T) {
	s := kernelSnapshot()
	s.HostNS, s.Namespaces[0].Host = 4026532999, true
	scan := &fakeScanner{snaps: []*inspect.Snapshot{s}}
	d := newDriver(t, Options{Scanner: scan, StartPath: "/mnt/projects"})
	d.scan = scan
	d.started()
	d.send(tea.WindowSizeMsg{Width: 120, Height: 40})
	d.key("tab")
	d.cursorTo("mnt:[4026532999] (the host's) /data")
	d.key("R")
	d.until("the host dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Release in the HOST's mount namespace?", "(H) Yes, in the host's namespace")
	d.key("y")
	if d.m.dialog == nil || len(d.um.releases()) != 0 {
		t.Fatalf("y answered the host's question: released %+v", d.um.releases())
	}
	d.key("H")
	d.until("the release", func(m Model) bool { return strings.HasPrefix(m.bar.status, "released") })
	if got := d.um.releases(); len(got) != 1 || !got[0].Host || got[0].Refused() || got[0].Namespace != 4026532999 {
		t.Fatalf("released %+v, want the host's copy, confirmed", got)
	}
}

// A release the engine refuses shows why, and cannot be confirmed; a
// kernel holder mounttop cannot release shows its advice; a failed
// release shows the error with a hint.
func TestReleaseRefusedAdviceAndError(t *testing.T) {
	d := kernelDriver(t, "/mnt/scratch")
	d.um.refuse = map[string]unmount.Release{"/dev/loop3": {Refusal: unmount.ReleaseLoopMounted, RefusedAt: "/srv/img"}}
	d.key("tab")
	d.cursorTo("loop /dev/loop3")
	d.key("R")
	d.until("the refusal", func(m Model) bool { return strings.HasPrefix(m.bar.status, "cannot") })
	if d.m.dialog != nil {
		t.Fatal("a refused release opened a dialog")
	}
	d.mustSee("cannot detach /dev/loop3 (backed by /mnt/scratch/disk.img): the loop device is itself mounted (at")
	d.key("y", "enter")
	d.settle()
	if n := len(d.um.releases()); n != 0 {
		t.Fatalf("a refused release was carried out (%d)", n)
	}

	d.cursorTo("nfsd-export /mnt/scratch")
	planned := len(d.um.planned)
	d.key("R")
	d.settle()
	if d.m.dialog != nil || len(d.um.planned) != planned {
		t.Fatal("R on an nfsd export asked the engine or opened a dialog")
	}
	if want := "mounttop cannot release nfsd-export /mnt/scratch itself; to do it: exportfs -u"; d.m.bar.status != want {
		t.Fatalf("status %q, want %q", d.m.bar.status, want)
	}
	d.key("up", "up", "up", "up", "up")
	d.key("R")
	d.mustSee("R releases the loop device, swap file or copy under the cursor; this line is none")

	d.um.releaseErr = &unmount.Error{Op: "swapoff", Target: "/mnt/scratch/swapfile", Err: unix.ENOMEM}
	d.cursorTo("swap /mnt/scratch/swapfile")
	d.key("R")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the error", func(m Model) bool { return m.bar.err != nil })
	d.mustSee("Error: swapoff /mnt/scratch/swapfile:", "not enough memory to take the swapped pages back: free some first")
}

// R on a process line points at F; with a run on screen R says where it
// acts.
func TestReleaseOnAProcessOrWithARunShown(t *testing.T) {
	d := kernelDriver(t, "/mnt/projects")
	d.key("tab")
	d.key("R")
	d.mustSee("R releases loop devices, swap files and copies; F revokes processes")
	d.key("d")
	d.until("the preview", func(m Model) bool { return m.progress.preview })
	d.key("R")
	d.mustSee("R acts on the holders pane: esc closes this one first")
	if d.m.dialog != nil {
		t.Fatal("R with the preview shown opened a dialog")
	}
}

// The staged dialog lists the mount's kernel holders and copies and
// offers to release them too: (a) runs with Plan.Release set, y without.
func TestStagedDialogOffersRelease(t *testing.T) {
	d := kernelDriver(t, "/mnt/scratch")
	d.um.refuse = map[string]unmount.Release{"/mnt/scratch/swapfile": {Refusal: unmount.ReleaseNoEntry}}
	d.key("F")
	d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Kernel holders and copies elsewhere (2), released only with (a):",
		"detach /dev/loop3 (backed by /mnt/scratch/disk.img)",
		"swapoff /mnt/scratch/swapfile: REFUSED, no process of that namespace",
		"[ No ]", "(y) Yes, revoke", "(a) Also release 1")
	step := make(chan struct{})
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 1, unmount.Event{Stage: unmount.StageRelease, Note: unmount.Released{Release: unmount.Release{Kind: unmount.ReleaseLoop, Name: "/dev/loop3", BackingFile: "/mnt/scratch/disk.img"}}})
		<-step
		send(ch, 2, unmount.Event{Stage: unmount.StageDone, Result: &unmount.Result{Gone: true, Summary: "/mnt/scratch is unmounted"}})
	}
	d.key("a")
	d.until("the release stage", func(m Model) bool { return m.progress.stage == unmount.StageRelease })
	d.mustSee("fence > revoke > [RELEASE] > drain > unmount", "done: detach loop device /dev/loop3")
	close(step)
	d.until("the run", func(m Model) bool { return d.um.runCount() == 1 })
	if r := d.um.lastRun(); !r.Release || r.Mode != unmount.ModeStaged || r.Policy != unmount.PolicyClose {
		t.Fatalf("(a) ran %+v, want a staged close run with Release", r)
	}
	if !d.m.progress.plan.Release {
		t.Fatal("(a): the plan handed to the engine does not have Release set")
	}
	d.mustSee("staged unmount (close, releasing) of /mnt/scratch started")
	d.until("the end of the run", func(m Model) bool { return !m.progress.active })
	d.key("esc", "F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the second run", func(m Model) bool { return d.um.runCount() == 2 })
	if r := d.um.lastRun(); r.Release || d.m.progress.plan.Release {
		t.Fatal("y released too")
	}
	// Without releases there is no such choice.
	d.until("the end of the run", func(m Model) bool { return !m.progress.active })
	d.key("esc")
	d.m.tree.selectID(idMedia)
	d.m.showSelected()
	d.key("F")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.mustNotSee("(a) Also release", "released only with")
}

// The engine lists releases in its plan for the mount: when it refuses to
// plan there at all, R says so and gives the kernel holder's own advice.
func TestReleaseWhereTheEngineWillNotPlan(t *testing.T) {
	d := kernelDriver(t, "/mnt/scratch")
	d.um.planErr = &unmount.Error{Op: "umount", Target: "/mnt/scratch", Err: fmt.Errorf("%w: mounttop's own executable is on it", unmount.ErrRefused)}
	d.key("tab")
	d.cursorTo("loop /dev/loop3")
	d.key("R")
	d.until("the error", func(m Model) bool { return m.bar.err != nil })
	d.mustSee("Error: asking how to release it from /mnt/scratch:", "refused: mounttop's own",
		"the engine will not plan an unmount of /mnt/scratch, so it offers no release there; by hand:")
	if want := "the engine will not plan an unmount of /mnt/scratch, so it offers no release there; by hand: detach loop device (losetup -d /dev/loop3)"; d.m.bar.hint != want {
		t.Fatalf("hint %q, want %q", d.m.bar.hint, want)
	}
	if d.m.dialog != nil || len(d.um.releases()) != 0 {
		t.Fatal("a refused plan opened a dialog or released something")
	}
}

// From the tree, R goes to the mount's first releasable row; on a mount
// whose only kernel holder has no action it shows that holder's advice,
// and on one with none it says there is nothing to release.
func TestReleaseFromTheTree(t *testing.T) {
	s := kernelSnapshot()
	s.Kernel[idScratch] = s.Kernel[idScratch][2:] // the nfsd export only
	d := newDriver(t, Options{Scanner: &fakeScanner{snaps: []*inspect.Snapshot{s}}, StartPath: "/mnt/scratch"})
	d.started()
	d.key("R")
	if d.m.focus != focusLower {
		t.Fatal("R from the tree did not move to the holders pane")
	}
	if want := "mounttop cannot release nfsd-export /mnt/scratch itself; to do it: exportfs -u"; d.m.bar.status != want {
		t.Fatalf("status %q, want %q", d.m.bar.status, want)
	}
	d.key("tab")
	d.m.tree.selectID(idMedia)
	d.m.showSelected()
	d.key("R")
	if d.m.focus != focusTree || d.m.dialog != nil || len(d.um.planned) != 0 {
		t.Fatal("R on a mount with nothing to release moved, asked or planned")
	}
	if want := "nothing to release on /mnt/media: no loop device, swap file or copy in another namespace holds it"; d.m.bar.status != want {
		t.Fatalf("status %q, want %q", d.m.bar.status, want)
	}
	d.m.tree.selectID(idMnt)
	d.m.showSelected()
	d.key("R")
	if want := "nothing to release on /mnt: no loop device, swap file or copy in another namespace holds it; its 5 submounts go first with F, l or f"; d.m.bar.status != want {
		t.Fatalf("status %q, want %q", d.m.bar.status, want)
	}
}

// The "also release" choice runs the plan the engine makes with Release
// set, and the dialog names the processes in other namespaces that only
// that choice touches.
func TestStagedReleaseChoiceCarriesTheEnginesReleasePlan(t *testing.T) {
	d := kernelDriver(t, "/mnt/projects")
	d.key("F")
	d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Kernel holders and copies elsewhere (1), released only with (a):",
		"unmount the copy at /data in mnt:[4026532999] (pid 900) lazily",
		"(a) also revokes these processes in other namespaces:",
		"pid 900 app in mnt:[4026532999]: close fd", "(a) Also release 1")
	d.um.mu.Lock()
	planned := append([]unmount.Plan(nil), d.um.planned...)
	d.um.mu.Unlock()
	if n := len(planned); n != 2 || planned[0].Release || !planned[1].Release {
		t.Fatalf("planned %d times (release: %v), want once without Release and once with", n, func() []bool {
			var out []bool
			for _, p := range planned {
				out = append(out, p.Release)
			}
			return out
		}())
	}
	d.key("a")
	// The pane shows the holders from the run's first event, the plan.
	d.until("the plan event", func(m Model) bool { return d.um.runCount() == 1 && len(m.progress.holders) == 3 })
	p := d.m.progress.plan
	if !p.Release || len(p.Holders) != 3 || p.Holders[2].Namespace != 4026532999 {
		t.Fatalf("(a) ran a plan with Release %v and holders %+v, want the engine's plan with the copy's holder", p.Release, p.Holders)
	}
	d.mustSee("900 app            pending    in mnt:[4026532999]: close fd")
}

// TestEscapedOnceOnScreen: an event's note carries its names raw and
// present escapes them (termsafe.Quote); a result's own summary and an
// error's text arrive with theirs escaped already: the progress log, its
// result, the status bar and an error show a name with a newline as
// /mnt/a\nb, never escaped a second time (/mnt/a\\nb), while a raw control
// that slipped into a text is still escaped.
func TestEscapedOnceOnScreen(t *testing.T) {
	nl := termsafe.Quote("/mnt/a\nb")
	d := newDriver(t, Options{StartPath: "/mnt/scratch"})
	d.started()
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 0, unmount.Event{Stage: unmount.StagePlan, Note: unmount.PlanNote{Plan: unmount.Plan{Mode: unmount.ModeLazy, Target: inspect.Mount{Mountpoint: "/mnt/a\nb"}}}})
		send(ch, 0, unmount.Event{Stage: unmount.StageUnmount, Note: unmount.SubmountUnmounted{Mountpoint: "/mnt/c d\ne", Failed: true}, Err: fmt.Errorf("%s: raw\x1b[2J", nl)})
		send(ch, 0, unmount.Event{Stage: unmount.StageDone, Err: unmount.ErrChanged, Result: &unmount.Result{Summary: nl + " changed; nothing done"}})
	}
	d.key("l")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the result", func(m Model) bool { return m.progress.result != nil && !m.progress.active })
	d.mustSee(`lazy unmount of /mnt/a\nb`, `submount "/mnt/c d\ne": `, `/mnt/a\nb: raw\e[2J`, `Result: ✗ /mnt/a\nb changed; nothing done`)
	if s := d.screen(); strings.Contains(s, `\\`) || strings.Contains(s, "\x1b[2J") {
		t.Fatalf("a name escaped twice, or a raw control, on screen:\n%s", s)
	}
}
