package ui

import (
	"bytes"
	"context"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"mounttop/inspect"
	"mounttop/unmount"
)

// Golden screens of every pane at 80x24 and the ASCII colour profile (set
// in TestMain), run through a real tea.Program by teatest. Each golden is
// the final View; `go test ./ui -run Golden -update` rewrites them.

// goldenProgram starts the view on the fake system and waits for the
// first screen.
func goldenProgram(t *testing.T, um *fakeUnmounter, start string, size ...int) *teatest.TestModel {
	t.Helper()
	return goldenProgramOn(t, fakeSnapshot(), um, start, size...)
}

// goldenProgramOn is goldenProgram on another fake system.
func goldenProgramOn(t *testing.T, snap *inspect.Snapshot, um *fakeUnmounter, start string, size ...int) *teatest.TestModel {
	t.Helper()
	w, h := 80, 24
	if len(size) == 2 {
		w, h = size[0], size[1]
	}
	scan := &fakeScanner{snaps: []*inspect.Snapshot{snap}}
	um.scan = scan
	m := New(Options{
		Scanner:   scan,
		Unmounter: um,
		Interval:  time.Hour, // no background refresh while the screen is taken
		StartPath: start,
		Now:       func() time.Time { return clock0 },
	})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(w, h))
	waitScreen(t, tm, "data 0.0s old")
	return tm
}

// waitScreen waits until the program has drawn text.
func waitScreen(t *testing.T, tm *teatest.TestModel, text string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(text)) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func keys(tm *teatest.TestModel, ks ...string) {
	for _, k := range ks {
		tm.Send(keyMsg(k))
	}
}

// finalScreen quits and compares the last view with the golden file.
func finalScreen(t *testing.T, tm *teatest.TestModel) {
	t.Helper()
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
	golden.RequireEqual(t, []byte(fm.(Model).View()))
}

func TestGoldenTree(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "/mnt/projects")
	finalScreen(t, tm)
}

func TestGoldenTreeFiltered(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "")
	keys(tm, "/", "p", "r", "o")
	waitScreen(t, tm, "filter: pro")
	finalScreen(t, tm)
}

func TestGoldenHolders(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "/mnt/projects", 100, 30)
	keys(tm, "tab", "down", "enter")
	waitScreen(t, tm, "▸")
	finalScreen(t, tm)
}

func TestGoldenConfirmStaged(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "/mnt/projects")
	keys(tm, "F")
	waitScreen(t, tm, "(s) Signal instead")
	finalScreen(t, tm)
}

func TestGoldenConfirmExpire(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "/mnt/scratch")
	keys(tm, "e")
	waitScreen(t, tm, "(w) When idle")
	finalScreen(t, tm)
}

func TestGoldenProgressDrain(t *testing.T) {
	um := &fakeUnmounter{play: stagedScript(true)}
	tm := goldenProgram(t, um, "/mnt/projects")
	keys(tm, "F")
	waitScreen(t, tm, "(s) Signal instead")
	keys(tm, "y")
	waitScreen(t, tm, "remaining: 1 holder · drain")
	finalScreen(t, tm)
}

func TestGoldenProgressRolledBack(t *testing.T) {
	um := &fakeUnmounter{play: stagedScript(false)}
	tm := goldenProgram(t, um, "/mnt/projects")
	keys(tm, "F")
	waitScreen(t, tm, "(s) Signal instead")
	keys(tm, "y")
	waitScreen(t, tm, "FENCE")
	keys(tm, "x")
	waitScreen(t, tm, "Result:")
	finalScreen(t, tm)
}

func TestGoldenPreview(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "/mnt/projects")
	keys(tm, "d")
	waitScreen(t, tm, "dry run")
	finalScreen(t, tm)
}

func TestGoldenStatusError(t *testing.T) {
	um := &fakeUnmounter{play: func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		send(ch, 0, unmount.Event{Stage: unmount.StageDone, Err: &unmount.Error{Op: "umount", Target: "/mnt/projects", Flags: 1, Err: errBusy},
			Result: &unmount.Result{Summary: "umount2(MNT_FORCE) of /mnt/projects failed"}})
	}}
	tm := goldenProgram(t, um, "/mnt/projects")
	keys(tm, "f")
	waitScreen(t, tm, "(y) Yes")
	keys(tm, "y")
	waitScreen(t, tm, "Error:")
	finalScreen(t, tm)
}

func TestGoldenHelp(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "")
	keys(tm, "?")
	waitScreen(t, tm, "any key closes")
	finalScreen(t, tm)
}

// The view follows a resize.
func TestGoldenResized(t *testing.T) {
	tm := goldenProgram(t, &fakeUnmounter{}, "/mnt/media")
	tm.Send(tea.WindowSizeMsg{Width: 120, Height: 30})
	waitScreen(t, tm, "demo-projects ")
	finalScreen(t, tm)
}

// The holders pane with a kernel holder (io_uring) and a copy in another
// mount namespace, the cursor on the copy: R is offered.
func TestGoldenHoldersKernel(t *testing.T) {
	tm := goldenProgramOn(t, kernelSnapshot(), &fakeUnmounter{}, "/mnt/projects", 100, 30)
	keys(tm, "tab")
	for i := 0; i < 9; i++ {
		keys(tm, "down")
	}
	waitScreen(t, tm, "R release")
	finalScreen(t, tm)
}

func TestGoldenConfirmRelease(t *testing.T) {
	tm := goldenProgramOn(t, kernelSnapshot(), &fakeUnmounter{}, "/mnt/projects")
	keys(tm, "tab")
	for i := 0; i < 9; i++ {
		keys(tm, "down")
	}
	waitScreen(t, tm, "R release")
	keys(tm, "R")
	waitScreen(t, tm, "(y) Yes, release")
	finalScreen(t, tm)
}

// The staged dialog of a mount with kernel holders lists them and offers
// (a) to release them too.
func TestGoldenConfirmStagedRelease(t *testing.T) {
	tm := goldenProgramOn(t, kernelSnapshot(), &fakeUnmounter{}, "/mnt/scratch")
	keys(tm, "F")
	waitScreen(t, tm, "(a) Also release")
	finalScreen(t, tm)
}
