package ui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

	"mounttop/unmount"
)

// TestTextsFollowTheKeymap: rebinding keys changes every text that names
// them (the status bar's reminder and context keys, the help screen, the
// dialog's choices and hint, the preview's hint), and the new keys act.
func TestTextsFollowTheKeymap(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	k := d.m.keys
	rebind := func(b *key.Binding, to, desc string) {
		*b = key.NewBinding(key.WithKeys(to), key.WithHelp(to, desc))
	}
	rebind(&k.Staged, "S", "staged: fence, revoke, drain")
	rebind(&k.Expire, "E", "expire (now, or when idle)")
	rebind(&k.Cancel, "c", "cancel the running unmount")
	rebind(&k.Close, "z", "close")
	rebind(&k.SignalInstead, "i", "signal instead of closing")
	rebind(&k.Yes, "o", "yes")
	rebind(&k.Help, "H", "help")
	d.started()
	d.settle()
	d.mustSee("S staged", "E expire", "H help")
	d.mustNotSee("F staged", "e expire", "? help")

	d.send(tea.WindowSizeMsg{Width: 100, Height: 40}) // the whole help screen
	d.key("H")
	d.mustSee("S staged: fence, revoke, drain", "c cancel the running unmount", "c cancels it (rolled back")
	d.key("j")

	d.key("d")
	d.until("the preview", func(m Model) bool { return m.progress.visible() })
	d.mustSee("S, l, E or f acts on it (asking first); z closes this preview.", "z close")
	d.key("z")
	if d.m.progress.visible() {
		t.Fatal("the rebound close key did not close the preview")
	}

	d.um.play = stagedScript(false)
	d.key("S")
	d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("(o) Yes, revoke", "(i) Signal instead", "c cancels; before revoke starts")
	d.key("o")
	d.until("the fence", func(m Model) bool { return m.progress.stage == unmount.StageFence })
	d.mustSee("c cancel the run")
	d.key("S")
	d.mustSee("is still running: c cancels it")
	d.key("c")
	d.until("the end of the run", func(m Model) bool { return !m.progress.Active() })
}

// TestSignalInsteadPlansAgain: "Signal instead" asks the engine for the
// signal policy's plan, and the dialog then shows that plan: what it
// shows is what runs.
func TestSignalInsteadPlansAgain(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	d.key("F")
	d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
	d.mustSee("Staged unmount (close) of /mnt/projects?", "(s) Signal instead")
	d.key("s")
	d.until("the signal dialog", func(m Model) bool {
		return m.dialog != nil && m.dialog.title == "Staged unmount (signal) of /mnt/projects?"
	})
	d.um.mu.Lock()
	planned := append([]unmount.Plan(nil), d.um.planned...)
	d.um.mu.Unlock()
	if len(planned) != 2 || planned[1].Policy != unmount.PolicySignal {
		t.Fatalf("the engine was asked for %d plans (last %+v), want the signal policy's second", len(planned), planned[len(planned)-1].Policy)
	}
	d.mustSee("(y) Yes, signal", "SIGTERM, then SIGKILL after 5s")
	d.mustNotSee("Signal instead")
	d.key("y")
	d.until("the run", func(m Model) bool { return d.um.runCount() == 1 })
	if r := d.um.lastRun(); r.Policy != unmount.PolicySignal {
		t.Fatalf("ran with policy %v, want signal", r.Policy)
	}
}

// The release workflow's texts name the keys as the keymap binds them.
func TestReleaseTextsFollowTheKeymap(t *testing.T) {
	d := kernelDriver(t, "/mnt/scratch")
	k := d.m.keys
	rebind := func(b *key.Binding, to string) {
		*b = key.NewBinding(key.WithKeys(to), key.WithHelp(to, b.Help().Desc))
	}
	rebind(&k.Release, "X")
	rebind(&k.Staged, "S")
	rebind(&k.Lazy, "L")
	rebind(&k.Force, "Z")
	rebind(&k.Close, "z")
	rebind(&k.Refresh, "u")
	d.key("X")
	d.mustSee("pick a loop device, swap file or copy, then X releases it")
	// A release that fails names the keys that help (present.ReleaseHint).
	d.um.releaseErr = unmount.ErrChanged
	d.key("X")
	d.until("the dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the error", func(m Model) bool { return m.bar.err != nil })
	if want := "nothing was done; u refreshes"; !strings.HasSuffix(d.m.bar.hint, want) {
		t.Fatalf("hint %q, want it to end %q", d.m.bar.hint, want)
	}
	// So does an unmount that fails (present.HintFor).
	d.m.setError(&unmount.Error{Op: "umount2", Target: "/mnt/scratch", Err: unix.EBUSY})
	if want := "try S (staged) or L (lazy)"; !strings.HasSuffix(d.m.bar.hint, want) { // no process holds /mnt/scratch
		t.Fatalf("hint %q, want it to end %q", d.m.bar.hint, want)
	}
	d.m.setError(unmount.ErrTimeout)
	if want := "holders remain (see the log): S again"; !strings.HasPrefix(d.m.bar.hint, want) {
		t.Fatalf("hint %q, want it to start %q", d.m.bar.hint, want)
	}
	d.key("tab")
	d.m.tree.selectID(idMnt)
	d.m.showSelected()
	d.key("X")
	if want := "its 5 submounts go first with S, L or Z"; !strings.HasSuffix(d.m.bar.status, want) {
		t.Fatalf("status %q, want it to end %q", d.m.bar.status, want)
	}
	d.m.tree.selectID(idProjects)
	d.m.showSelected()
	d.key("tab", "X")
	d.mustSee("X releases loop devices, swap files and copies; S revokes processes")
	d.key("d")
	d.until("the preview", func(m Model) bool { return m.progress.preview })
	d.key("X")
	d.mustSee("X acts on the holders pane: z closes this one first")
}
