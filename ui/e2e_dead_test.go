package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// answered sends keys and measures how long the screen takes to show
// every part, failing after a generous timeout (the machine is shared);
// the measured time is logged for the report.
func (term *terminal) answered(what string, parts []string, keys ...string) time.Duration {
	term.t.Helper()
	start := time.Now()
	term.keys(keys...)
	term.waitFor(30*time.Second, parts...)
	took := time.Since(start)
	term.t.Logf("%s: answered in %v", what, took)
	return took
}

// TestEndToEndDeadServerInTmux: the view on a FUSE mount whose daemon is
// stopped (SIGSTOP), held by an fd, a reader blocked in FUSE READ, a
// chroot (which cannot be revoked, so the drain goes on) and a process
// that never stops for ptrace (each revoke of it blocks the engine for 2s,
// so the run is stuck when the keys come): F shows a dialog
// that says the server is not answering and what is done instead; y runs
// it (the connection is aborted, the others revoked, the drain waits for
// the chroot); x cancels and the fence is rolled back; q quits. x and q
// are answered within a second (measured), the screen never freezes.
func TestEndToEndDeadServerInTmux(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	testns.FuseCtl(t)
	bin := buildMounttop(t)
	src := t.TempDir()
	for _, d := range []string{"dir", "jail"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "data"), []byte("e2e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := testns.Bindfs(t, src)
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) }) // before the victims go (their exit flushes)
	fd := testns.StartVictim(t, testns.RoleFD, fs.Dir+"/data", "r")
	reader := testns.StartVictim(t, testns.RoleFileReader, fs.Dir+"/data")
	jail := testns.StartVictim(t, testns.RoleRoot, fs.Dir+"/jail")
	// A holder asleep in vfork(2) never stops for ptrace: every revoke of
	// it blocks the engine for the revoker's stop timeout (2s), so the
	// keys below come while the run is stuck in one.
	stuck := testns.StartVictim(t, testns.RoleVforkIn, fs.Dir+"/dir")
	child, err := strconv.Atoi(strings.TrimPrefix(stuck.WaitLine(t, "vfork child: ", time.Second), "vfork child: "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) })
	fs.Stop(t)
	testns.WaitInSyscall(t, reader.PID, unix.SYS_PREAD64, 10*time.Second)

	term := newTerminal(t, 140, 40, bin+" --interval 500ms --journal - "+fs.Dir)
	term.waitFor(30*time.Second, "Holders of "+fs.Dir+" (5 processes)")

	// F: the plan, with its probe (up to 2s), says the server is dead.
	start := time.Now()
	term.keys("F")
	scr := term.waitFor(30*time.Second, "Staged unmount (close) of ", "The filesystem's server is not answering", "cannot be synced", "abort FUSE connection", "[ No ]")
	t.Logf("F: the dialog in %v (the plan probes the server: up to 2s)", time.Since(start))
	if strings.Contains(scr, "written data is synced") {
		t.Errorf("the dialog promises a sync to a dead server:\n%s", scr)
	}

	// y: aborted, revoked; the chroot keeps the drain going.
	term.answered("y", []string{"aborted FUSE connection"}, "y")
	term.waitFor(30*time.Second, fmt.Sprintf("pid %d", jail.PID), "drain")

	// x: cancel, answered at once; the fence is rolled back.
	if took := term.answered("x (cancel)", []string{"cancel requested"}, "x"); took > time.Second {
		t.Logf("x took %v: more than a second (a loaded machine?)", took)
	}
	term.waitFor(30*time.Second, "fence removed")
	if !testns.IsMountPoint(fs.Dir) {
		t.Error("the mount is gone after the cancel; the rollback should have put it back")
	}
	// The tracer process may still be at a holder the cancel stopped
	// waiting for: it lets it go by its stop timeout.
	for _, v := range []*testns.Victim{fd, reader, jail, stuck} {
		if released, why := testns.Released(v.PID, 10*time.Second); !released || !v.Alive() {
			t.Errorf("pid %d: alive %v, %s", v.PID, v.Alive(), why)
		}
	}

	// esc closes the finished run's pane, q quits: each answered at once.
	term.answered("esc (close the pane)", []string{"Holders of " + fs.Dir}, "Escape")
	time.Sleep(100 * time.Millisecond) // Escape and q in one read would be alt+q
	if took := term.answered("q (quit)", []string{"EXIT=0"}, "q"); took > time.Second {
		t.Logf("q took %v: more than a second (a loaded machine?)", took)
	}
}

// TestEndToEndQuitWhileARunIsStuck: q during a staged run that is stuck in
// a revoke (a holder that never stops for ptrace): the quit dialog comes at
// once; yes cancels the run and waits for it; a second q quits at once,
// and mounttop says on the way out what had not stopped and what is still
// pending. The holder is left neither stopped nor traced.
func TestEndToEndQuitWhileARunIsStuck(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "stucktarget")
	stuck := testns.StartVictim(t, testns.RoleVforkIn, dir)
	child, err := strconv.Atoi(strings.TrimPrefix(stuck.WaitLine(t, "vfork child: ", time.Second), "vfork child: "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) })

	term := newTerminal(t, 120, 36, bin+" --interval 500ms --journal - "+dir)
	term.waitFor(30*time.Second, "Holders of "+dir)
	term.keys("F")
	term.waitFor(30*time.Second, "Staged unmount (close) of "+dir+"?", "[ No ]")
	term.keys("y")
	term.waitFor(30*time.Second, "did not stop in time")
	// Quit while the next revoke of it is under way (after the drain's
	// rescan, which takes long on a loaded machine).
	if !testns.Seized(stuck.PID, 30*time.Second) {
		t.Fatalf("pid %d was not seized again within 30s", stuck.PID)
	}
	term.answered("q (while stuck)", []string{"Quit while an unmount runs?"}, "q")
	// The cancel ends the run's wait for the revoke at once (the tracer
	// process goes on with it), so the view may quit before it could say
	// it waits for the run.
	term.keys("y")
	scr := term.waitFor(30*time.Second, "EXIT=")
	if !strings.Contains(scr, "EXIT=0") && !strings.Contains(scr, "had not stopped when mounttop quit") {
		t.Errorf("quit with an error that does not say the run was left:\n%s", scr)
	}
	if !strings.Contains(scr, fmt.Sprintf("pid %d", stuck.PID)) {
		t.Errorf("on the way out mounttop does not name the holder the tracer process still works on:\n%s", scr)
	}
	t.Logf("after quitting:\n%s", scr)
	if released, why := testns.Released(stuck.PID, 10*time.Second); !released || !stuck.Alive() {
		t.Errorf("the holder: alive %v, %s", stuck.Alive(), why)
	}
}
