package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// deadMount is a bindfs mount whose daemon is stopped (SIGSTOP), held by
// the victims started on it.
type deadMount struct {
	fs      *testns.Fuse
	victims map[string]*testns.Victim
}

// newDeadMount mounts bindfs, starts the victims named in roles (fd, cwd,
// mmap, reader) on it, stops the daemon and waits for the reader, if any,
// to block in FUSE READ.
func newDeadMount(t *testing.T, roles ...string) *deadMount {
	t.Helper()
	testns.Require(t, testns.Namespace)
	src := t.TempDir()
	writeTestFile(t, filepath.Join(src, "file"))
	if err := os.Mkdir(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	fs := testns.Bindfs(t, src)
	d := &deadMount{fs: fs, victims: map[string]*testns.Victim{}}
	file := filepath.Join(fs.Dir, "file")
	for _, r := range roles {
		switch r {
		case "fd":
			d.victims[r] = testns.StartVictim(t, testns.RoleFD, file, "r")
		case "cwd":
			d.victims[r] = testns.StartVictim(t, testns.RoleCwd, filepath.Join(fs.Dir, "dir"))
		case "mmap":
			d.victims[r] = testns.StartVictim(t, testns.RoleMmap, file)
		case "reader":
			d.victims[r] = testns.StartVictim(t, testns.RoleFileReader, file)
		case "chroot":
			d.victims[r] = testns.StartVictim(t, testns.RoleRoot, filepath.Join(fs.Dir, "dir"))
		}
	}
	// Cleanups run last first: the daemon is resumed before the victims
	// are killed, whose exit flushes their files (FUSE FLUSH, which no
	// signal interrupts) and would wait on a stopped daemon for good.
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) })
	fs.Stop(t)
	if v := d.victims["reader"]; v != nil {
		testns.WaitInSyscall(t, v.PID, unix.SYS_PREAD64, 10*time.Second)
	}
	return d
}

// requireVictims checks every victim: alive unless mayDie, and never left
// stopped or traced.
func (d *deadMount) requireVictims(t *testing.T, mayDie bool) {
	t.Helper()
	for name, v := range d.victims {
		if !v.Alive() {
			if !mayDie {
				t.Errorf("victim %s (pid %d) died: %q", name, v.PID, v.Seen())
			}
			continue
		}
		if stopped, why := testns.Stopped(v.PID); stopped {
			t.Errorf("victim %s (pid %d) is left %s", name, v.PID, why)
		}
	}
}

// TestUmountStagedDeadFUSE: `umount --staged` of a FUSE mount whose
// daemon is stopped, held by an fd, a cwd, a mapping and a reader blocked
// in read(): by close and by signal the run finishes within its timeout,
// the plan says the server is not answering and what is done instead, the
// journal has it, the mount is gone and no holder is left stopped or
// traced (and under close every one is alive), also after the daemon is
// resumed.
func TestUmountStagedDeadFUSE(t *testing.T) {
	for _, policy := range []string{"close", "signal"} {
		t.Run(policy, func(t *testing.T) {
			testns.FuseCtl(t)
			d := newDeadMount(t, "fd", "cwd", "mmap", "reader")
			journal := filepath.Join(t.TempDir(), "journal.jsonl")
			const timeout = 20 * time.Second
			start := time.Now()
			r := runMounttop(t, "", nil, "umount", "--staged", "--yes", "--revoke", policy, "--grace", "300ms",
				"--interval", "200ms", "--timeout", timeout.String(), "--journal", journal, d.fs.Dir)
			took := time.Since(start)
			t.Logf("took %v (plan with its probe, and the run)\n%s%s", took, r.stdout, r.stderr)
			if r.code != 0 || testns.IsMountPoint(d.fs.Dir) {
				t.Fatalf("exit %d, mounted %v", r.code, testns.IsMountPoint(d.fs.Dir))
			}
			if took > timeout+5*time.Second {
				t.Errorf("took %v, more than --timeout plus 5s", took)
			}
			for _, want := range []string{"the server is not answering", "data not yet written cannot be synced", "skip syncfs", "aborted FUSE connection"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("the output does not say %q", want)
				}
			}
			j, err := os.ReadFile(journal)
			if err != nil || !strings.Contains(string(j), `"server":{"answering":false`) || !strings.Contains(string(j), "aborted FUSE connection") {
				t.Errorf("the journal lacks the probe or the abort (%v):\n%s", err, j)
			}
			d.requireVictims(t, policy == "signal")
			d.fs.Cont(t)
			time.Sleep(300 * time.Millisecond)
			d.requireVictims(t, policy == "signal")
		})
	}
}

// TestUmountDryRunDeadFUSE: --dry-run --json carries the probe's finding
// as "server" in the plan event; nothing changes.
func TestUmountDryRunDeadFUSE(t *testing.T) {
	testns.FuseCtl(t)
	d := newDeadMount(t, "fd")
	before := mountTable(t)
	r := runMounttop(t, "", nil, "umount", "--staged", "--dry-run", "--json", d.fs.Dir)
	evs := jsonEvents(t, r.stdout)
	if r.code != 0 || len(evs) != 1 || mountTable(t) != before {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	srv, _ := evs[0]["server"].(map[string]any)
	if srv == nil || srv["answering"] != false || !strings.Contains(fmt.Sprint(srv["how"]), "did not return within 2s") ||
		!strings.Contains(fmt.Sprint(srv["abort"]), "abort FUSE connection") {
		t.Fatalf("server = %v", evs[0]["server"])
	}
}

// startUmount starts `mounttop umount args...` with its JSON events on a
// pipe; the returned channel yields each event's stage.
func startUmount(t *testing.T, args ...string) (*exec.Cmd, <-chan string, *strings.Builder) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"umount", "--json", "--yes"}, args...)...)
	cmd.Env = append(os.Environ(), envAsMain+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	stages := make(chan string, 1000)
	go func() {
		defer close(stages)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct{ Stage string }
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				stages <- ev.Stage
			}
		}
	}()
	return cmd, stages, stderr
}

// waitStage reads stages until want comes; it returns all read so far.
func waitStage(t *testing.T, stages <-chan string, want string, timeout time.Duration) []string {
	t.Helper()
	var seen []string
	deadline := time.After(timeout)
	for {
		select {
		case s, ok := <-stages:
			if !ok {
				t.Fatalf("the run ended before stage %s: %v", want, seen)
			}
			seen = append(seen, s)
			if s == want {
				return seen
			}
		case <-deadline:
			t.Fatalf("no stage %s within %v: %v", want, timeout, seen)
		}
	}
}

// exitWithin waits for cmd to exit, at most limit; its exit code and how
// long it took.
func exitWithin(t *testing.T, cmd *exec.Cmd, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, time.Since(start)
	case <-time.After(limit):
		// Where each thread is, in the kernel, before it is killed: a
		// thread in uninterruptible sleep keeps the process from exiting.
		where := threadStates(cmd.Process.Pid)
		_ = cmd.Process.Kill()
		select {
		case <-done: // Wait returned: the cleanup's Wait does not race it
		case <-time.After(10 * time.Second):
			where += " (and not gone 10s after SIGKILL)"
		}
		t.Fatalf("mounttop did not exit within %v; its threads: %s", limit, where)
	}
	return 0, 0
}

// threadStates is each thread of pid with its state, wait channel and
// kernel stack (proc(5): task/TID/stat, wchan, stack; the stack needs
// root), for a failure message.
func threadStates(pid int) string {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, task := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, task.Name())
		stat, _ := os.ReadFile(dir + "stat")
		state := "?"
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) {
			state = string(stat[i+2])
		}
		wchan, _ := os.ReadFile(dir + "wchan")
		fmt.Fprintf(&b, "\n  %s %s %s", task.Name(), state, wchan)
		if state == "D" {
			stack, _ := os.ReadFile(dir + "stack")
			b.WriteString("\n    " + strings.ReplaceAll(strings.TrimSpace(string(stack)), "\n", "\n    "))
		}
	}
	return b.String()
}

// TestUmountCancelledOnADeadServer: SIGTERM or SIGINT during the drain of
// a staged run on a FUSE mount whose daemon is stopped, kept going by a
// chroot holder (which cannot be revoked): mounttop exits within 5s with
// 128+N, the fence is rolled back (the same mount is back at its path),
// the result says the connection was aborted and stays so, and no holder
// is left stopped or traced.
func TestUmountCancelledOnADeadServer(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			testns.FuseCtl(t)
			d := newDeadMount(t, "fd", "reader", "chroot")
			before := mountTable(t)
			journal := filepath.Join(t.TempDir(), "journal.jsonl")
			cmd, stages, stderr := startUmount(t, "--staged", "--interval", "100ms", "--timeout", "1m", "--journal", journal, d.fs.Dir)
			waitStage(t, stages, "drain", 30*time.Second)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code, took := exitWithin(t, cmd, 10*time.Second)
			var rest []string
			for s := range stages {
				rest = append(rest, s)
			}
			t.Logf("exited %d %v after %s; stderr: %s", code, took, unix.SignalName(sig), stderr.String())
			if code != 128+int(sig) || took > 5*time.Second {
				t.Errorf("exit %d after %v, want %d within 5s", code, took, 128+int(sig))
			}
			if got := strings.Join(rest, " "); !strings.HasSuffix(got, "rollback done") {
				t.Errorf("stages after the signal %q, want a rollback", got)
			}
			j, _ := os.ReadFile(journal)
			for _, want := range []string{"the connection to the server was aborted and stays so", "2 holders were revoked and 0 signalled before that and stay so"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("the result does not say %q; journal:\n%s", want, j)
				}
			}
			if mountTable(t) != before {
				t.Error("the mount table is not as it was after the rollback")
			}
			d.requireVictims(t, false)
		})
	}
}

// TestUmountCancelledBySignal: SIGTERM or SIGINT during the drain of a
// staged run that cannot finish (a holder whose executable is on the
// mount, refused under close) cancels it: the fence is rolled back (no
// holder was revoked), mounttop exits within 5s with 128+N, and the
// mount table is as it was.
func TestUmountCancelledBySignal(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			dir := testns.Tmpfs(t, "")
			exe := testns.CopySelf(t, dir)
			v := testns.StartVictimExe(t, exe, testns.RoleSleep)
			before := mountTable(t)
			cmd, stages, stderr := startUmount(t, append([]string{"--staged", "--interval", "50ms", "--timeout", "1m", dir}, journalArgs(t)...)...)
			waitStage(t, stages, "drain", 30*time.Second)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code, took := exitWithin(t, cmd, 10*time.Second)
			var rest []string
			for s := range stages {
				rest = append(rest, s)
			}
			t.Logf("exited %d %v after %s; stderr: %s", code, took, unix.SignalName(sig), stderr.String())
			if code != 128+int(sig) || took > 5*time.Second {
				t.Errorf("exit %d after %v, want %d within 5s", code, took, 128+int(sig))
			}
			if got := strings.Join(rest, " "); !strings.HasSuffix(got, "rollback done") {
				t.Errorf("stages after the signal %q, want a rollback", got)
			}
			if mountTable(t) != before || !v.Alive() {
				t.Fatal("not as it was after the rollback")
			}
		})
	}
}

// stuckHolder is a tmpfs mount held by the cwd of a process with a thread
// asleep in vfork(2) (D state): it never reaches a ptrace stop, so every
// revoke of it takes the revoker's stop timeout (2s) and fails, and the
// drain goes on until --timeout.
func stuckHolder(t *testing.T) (dir string, v *testns.Victim) {
	t.Helper()
	dir = testns.Tmpfs(t, "")
	v = testns.StartVictim(t, testns.RoleVforkIn, dir)
	child, err := strconv.Atoi(strings.TrimPrefix(v.WaitLine(t, "vfork child: ", time.Second), "vfork child: "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) }) // ends the vfork, then the victim can die
	return dir, v
}

// TestUmountSecondSignalExitsAtOnce: during a revoke that waits for a
// holder that never stops (stuckHolder), a first SIGINT cancels the run, a
// second one exits at once with 130 and names what is pending: the tracer
// process still working on that holder, which it gives up at its stop
// timeout. The holder is not left stopped or traced, and the mount table is
// as it was.
func TestUmountSecondSignalExitsAtOnce(t *testing.T) {
	dir, v := stuckHolder(t)
	before := mountTable(t)
	cmd, stages, stderr := startUmount(t, append([]string{"--staged", "--interval", "50ms", "--timeout", "1m", dir}, journalArgs(t)...)...)
	// The first drain event follows a revoke that gave up after 2s; the
	// next revoke starts after the next round's scan (which takes long on
	// a loaded machine) and lasts 2s: signal inside it, once the tracer
	// has seized the holder again (TracerPid, PTRACE_SEIZE).
	waitStage(t, stages, "drain", 30*time.Second)
	if !testns.Seized(v.PID, 30*time.Second) {
		t.Fatalf("pid %d was not seized again within 30s", v.PID)
	}
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(unix.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The cancel ends the run's wait for the revoke at once; the run rolls
	// back and mounttop then waits a moment for the tracer process, which
	// still works on the holder: the second SIGINT lands in that time.
	// (Two SIGINTs at once would be one: 50ms apart they are two.)
	time.Sleep(50 * time.Millisecond)
	second := true
	if err := cmd.Process.Signal(unix.SIGINT); errors.Is(err, os.ErrProcessDone) {
		// A very quick rollback and tracer: the first SIGINT alone ended
		// it (TestUmountControl covers the second signal's path itself).
		second = false
	} else if err != nil {
		t.Fatal(err)
	}
	code, took := exitWithin(t, cmd, 10*time.Second)
	t.Logf("exited %d %v after the second SIGINT (sent: %v); stderr:\n%s", code, took, second, stderr.String())
	if code != 130 || took > time.Second {
		t.Errorf("exit %d after %v, want 130 at once", code, took)
	}
	// The first SIGINT ended mounttop's wait for the revoke; the tracer
	// process still works on the holder (until its stop timeout), and
	// that is what is pending.
	want := []string{fmt.Sprintf("still holds pid %d (a revoke under way)", v.PID)}
	if second {
		want = []string{"got SIGINT again: exiting now", "still pending:", fmt.Sprintf("holds pid %d: a revoke under way", v.PID), "releases it on its own"}
	}
	for _, w := range want {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr does not say %q", w)
		}
	}
	// The tracer process gives the holder up at its stop timeout (2s):
	// not left stopped or traced, and alive.
	if released, why := testns.Released(v.PID, 10*time.Second); !released || !v.Alive() {
		t.Errorf("the holder is left %s (alive %v)", why, v.Alive())
	}
	if mountTable(t) == before {
		return
	}
	// Exiting at once may leave the fence up: that is what the message
	// says (mounttop list shows it); it must be the only change.
	if !strings.Contains(stderr.String(), "the run was at stage") {
		t.Errorf("the mount table changed and the message does not say where the run was")
	}
}

// TestUmountTimeoutWithAStuckHolder: --timeout 3s with a holder that
// never stops: the drain gives up at the timeout (a revoke under way may
// add its stop timeout), the fence is rolled back, and mounttop exits
// well within --timeout plus 5s.
func TestUmountTimeoutWithAStuckHolder(t *testing.T) {
	dir, v := stuckHolder(t)
	before := mountTable(t)
	start := time.Now()
	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--yes", "--json", "--interval", "50ms", "--timeout", "3s", dir}, journalArgs(t)...)...)
	took := time.Since(start)
	// Each event with its time since the start: where a slow run spent it.
	var log strings.Builder
	evs := jsonEvents(t, r.stdout)
	for _, ev := range evs {
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
		fmt.Fprintf(&log, "%+8.3fs %-8v %v\n", at.Sub(start).Seconds(), ev["stage"], ev["what"])
	}
	t.Logf("exit %d after %v\n%s%s", r.code, took, log.String(), r.stderr)
	if last := evs[len(evs)-1]; r.code != exitFailed || last["stage"] != "done" || !strings.Contains(fmt.Sprint(last["what"]), "still held the mount after 3s") {
		t.Errorf("exit %d, want %d with the timeout's summary", r.code, exitFailed)
	}
	// The promise (README, --help): exit by --timeout plus 5s after the
	// run starts, which is the plan event; the plan's scan before it has
	// deadlines of its own (per process), and is long on a loaded machine.
	planAt, err := time.Parse(time.RFC3339Nano, fmt.Sprint(evs[0]["time"]))
	if err != nil {
		t.Fatalf("the plan event's time: %v", err)
	}
	if run := start.Add(took).Sub(planAt); run > 3*time.Second+5*time.Second {
		t.Errorf("exited %v after the run started, more than --timeout plus 5s", run)
	}
	if mountTable(t) != before || !v.Alive() {
		t.Error("not as it was after the rollback")
	}
}

// TestUmountControl: the outer guard of `mounttop umount` on its own: a
// signal before the run exits at once (128+N); the first during the run
// cancels it and, if it does not end, exits after the grace; the second
// exits at once listing what is pending; the watchdog exits with
// exitAbandoned at the limit plus the grace.
func TestUmountControl(t *testing.T) {
	type exit struct {
		code int
		msg  string
	}
	setup := func() (*umountControl, *bool, chan exit) {
		exits := make(chan exit, 4)
		var b strings.Builder
		cancelled := new(bool)
		c := &umountControl{stderr: &b, grace: 50 * time.Millisecond, cancel: func() { *cancelled = true }}
		c.exit = func(code int) { exits <- exit{code, b.String()} }
		return c, cancelled, exits
	}
	wait := func(t *testing.T, exits chan exit) exit {
		t.Helper()
		select {
		case e := <-exits:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no exit")
		}
		return exit{}
	}
	pending := func() []string { return []string{"syncfs of /mnt/x: blocked in the kernel for 12s (abandoned)"} }

	c, cancelled, exits := setup()
	c.onSignal(unix.SIGTERM)
	if e := wait(t, exits); e.code != 143 || !strings.Contains(e.msg, "before anything changed") || *cancelled {
		t.Errorf("before the run: %+v", e)
	}

	c, cancelled, exits = setup()
	c.started(pending, 0)
	c.reached("drain")
	c.onSignal(unix.SIGINT)
	if !*cancelled {
		t.Error("the first signal did not cancel the run")
	}
	if e := wait(t, exits); e.code != 130 || !strings.Contains(e.msg, "did not end within 50ms of SIGINT") || !strings.Contains(e.msg, "syncfs of /mnt/x") {
		t.Errorf("after the grace: %+v", e)
	}

	c, _, exits = setup()
	c.started(pending, 0)
	c.onSignal(unix.SIGINT)
	c.onSignal(unix.SIGINT)
	if e := wait(t, exits); e.code != 130 || !strings.Contains(e.msg, "got SIGINT again: exiting now; still pending:\n  syncfs of /mnt/x") {
		t.Errorf("second signal: %+v", e)
	}

	c, _, exits = setup()
	c.started(func() []string { return nil }, 100*time.Millisecond)
	if e := wait(t, exits); e.code != exitAbandoned || !strings.Contains(e.msg, "did not end within --timeout 100ms plus 50ms") || !strings.Contains(e.msg, "nothing of mounttop's own is pending") {
		t.Errorf("watchdog: %+v", e)
	}
}
