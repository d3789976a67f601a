//go:build linux && amd64

package revoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// roleRevokeThroughTracer PID FD INJECT_TIMEOUT: mounttop's part, played
// by the test binary: revokes fd FD of process PID through a Tracer,
// reports "tracer: PID" once the tracer process runs, "answer: ERROR" when
// Revoke returns, and waits to be killed.
const roleRevokeThroughTracer = "revoke-through-tracer"

func init() { testns.RegisterRole(roleRevokeThroughTracer, 3, revokeThroughTracer) }

func revokeThroughTracer(args []string) error {
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	fd, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	timeout, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	testns.Say("ready")
	tr := NewTracer(InjectTimeout(timeout))
	go func() {
		for tr.PID() == 0 {
			time.Sleep(time.Millisecond)
		}
		testns.Say("tracer: %d", tr.PID())
	}()
	_, err = tr.Revoke(context.Background(), pid, Targets{FDs: []int{fd}})
	testns.Say("answer: %v", err)
	testns.Forever()
	return nil
}

// stuckSetup is a bindfs mount whose file a victim (RoleFDEcho) holds open,
// and the FIFO it answers on.
type stuckSetup struct {
	fs   *testns.Fuse
	v    *testns.Victim
	fd   int
	fifo string
}

func newStuckSetup(t *testing.T) stuckSetup {
	t.Helper()
	src := testns.Tmpfs(t, "")
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := testns.Bindfs(t, src)
	fifo := mkfifo(t, testns.Tmpfs(t, ""))
	v := testns.StartVictim(t, testns.RoleFDEcho, filepath.Join(fs.Dir, "file"), fifo)
	fds := fdsOn(t, v.PID, fs.Dir)
	if len(fds) != 1 {
		t.Fatalf("victim holds fds %v on %s, want one", fds, fs.Dir)
	}
	return stuckSetup{fs: fs, v: v, fd: fds[0], fifo: fifo}
}

// ping writes a line to the victim's FIFO and waits for its answer.
func (s stuckSetup) ping(t *testing.T, word string) {
	t.Helper()
	f, err := os.OpenFile(s.fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(word + "\n"); err != nil {
		t.Fatal(err)
	}
	s.v.WaitLine(t, "echo: "+word, 10*time.Second)
}

// traced returns the pid of the process whose thread traces pid, 0 if
// none (/proc/PID/status TracerPid names the tracer thread).
func traced(t *testing.T, pid int) int {
	t.Helper()
	st, err := testProc.processStatus(pid)
	if err != nil {
		t.Fatalf("status of %d: %v", pid, err)
	}
	if st.tracerPid == 0 {
		return 0
	}
	tst, err := readStatus(fmt.Sprintf("/proc/%d/status", st.tracerPid))
	if err != nil {
		return st.tracerPid
	}
	return tst.tgid
}

// requireRestored waits until the victim is untraced, checks that it is
// alive and not stopped, answers on its FIFO and no longer holds the fd.
func (s stuckSetup) requireRestored(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for traced(t, s.v.PID) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("victim %d still traced by %d after the daemon resumed", s.v.PID, traced(t, s.v.PID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !s.v.Alive() {
		t.Fatalf("victim died; lines %q", s.v.Seen())
	}
	if st := state(s.v.PID, s.v.PID); st == 'T' || st == 't' {
		t.Fatalf("victim left stopped (state %c)", st)
	}
	s.ping(t, "after")
	if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", s.v.PID, s.fd)); err == nil && strings.HasPrefix(l, s.fs.Dir) {
		t.Errorf("fd %d still open on %s", s.fd, l)
	}
	if !s.v.Alive() {
		t.Fatalf("victim died; lines %q", s.v.Seen())
	}
}

// waitExited waits until pid (a tracer process) is gone.
func waitExited(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for testns.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("tracer process %d still running after %v", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An injected close(2) that blocks in FUSE FLUSH (the bindfs daemon
// stopped): Revoke through the tracer process answers a StuckError naming
// the call and the server within its timeout, and the same answer while the
// process is held; once the daemon resumes, the tracer process restores the
// victim, says so, and the victim runs on untraced without the fd.
func TestTracerStuckClose(t *testing.T) {
	s := newStuckSetup(t)
	restoredc := make(chan Restore, 1)
	const injectTimeout = 500 * time.Millisecond
	tr := NewTracer(InjectTimeout(injectTimeout), Restored(func(r Restore) { restoredc <- r }))
	t.Cleanup(func() { _ = tr.Close() })
	s.ping(t, "before")

	s.fs.Stop(t)
	resumed := false
	defer func() {
		if !resumed {
			s.fs.Cont(t)
		}
	}()
	start := time.Now()
	rep, err := tr.Revoke(context.Background(), s.v.PID, Targets{FDs: []int{s.fd}})
	took := time.Since(start)
	var se *StuckError
	if !errors.As(err, &se) || !errors.Is(err, ErrStuck) {
		t.Fatalf("Revoke with a close that hangs: %v (report %+v), want a StuckError", err, rep)
	}
	t.Logf("answered in %v (inject timeout %v): %v", took, injectTimeout, err)
	// Starting the tracer process, seizing and stopping come on top of
	// the inject timeout; the machine is shared, so the bound is loose.
	if took > injectTimeout+10*time.Second {
		t.Errorf("the StuckError came after %v", took)
	}
	want := fmt.Sprintf("left inside close(fd %d), waiting on the FUSE server (fuse", s.fd)
	if se.PID != s.v.PID || se.Syscall != "close" || se.Arg != fmt.Sprintf("fd %d", s.fd) || se.Mount != s.fs.Dir ||
		!strings.Contains(err.Error(), want) {
		t.Errorf("StuckError %+v: %q, want it to say %q on %s", *se, err, want, s.fs.Dir)
	}
	if by := traced(t, s.v.PID); by != tr.PID() {
		t.Errorf("while stuck the victim is traced by %d, want the tracer process %d", by, tr.PID())
	}
	_, again := tr.Revoke(context.Background(), s.v.PID, Targets{FDs: []int{s.fd}})
	if again == nil || again.Error() != err.Error() {
		t.Errorf("Revoke of the held process again: %v, want the same StuckError", again)
	}

	s.fs.Cont(t)
	resumed = true
	select {
	case r := <-restoredc:
		t.Logf("restored: %v; report %+v", r, r.Report)
		if r.PID != s.v.PID || !slices.Contains(r.Report.Closed, s.fd) || r.Err != nil {
			t.Errorf("Restore %+v, want process %d with fd %d closed and no error", r, s.v.PID, s.fd)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no Restore after the daemon resumed")
	}
	s.requireRestored(t)

	pid := tr.PID()
	if err := tr.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitExited(t, pid, 5*time.Second)
}

// mounttop (here the test binary in roleRevokeThroughTracer) killed with
// SIGKILL while its tracer process holds a victim inside an injected
// close(2): SIGINT, SIGTERM and SIGHUP to the tracer process do not end it
// either; once the daemon resumes, the victim is restored, runs on
// untraced and answers, and the tracer process exits.
func TestTracerSurvivesSIGKILL(t *testing.T) {
	s := newStuckSetup(t)
	s.fs.Stop(t)
	resumed := false
	defer func() {
		if !resumed {
			s.fs.Cont(t)
		}
	}()
	client := testns.StartVictim(t, roleRevokeThroughTracer, strconv.Itoa(s.v.PID), strconv.Itoa(s.fd), "300ms")
	line := client.WaitLine(t, "tracer:", 30*time.Second)
	tracer, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "tracer:")))
	if err != nil || tracer == 0 {
		t.Fatalf("tracer line %q", line)
	}
	t.Cleanup(func() {
		if testns.Alive(tracer) {
			_ = unix.Kill(tracer, unix.SIGKILL) // the one we started, by pid: only if the test failed
		}
	})
	if ans := client.WaitLine(t, "answer:", 5*time.Second); !strings.Contains(ans, fmt.Sprintf("left inside close(fd %d)", s.fd)) {
		t.Fatalf("mounttop's answer: %q, want a StuckError", ans)
	}
	if err := unix.Kill(client.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := client.Wait(10 * time.Second); !ok {
		t.Fatal("mounttop's part did not die of SIGKILL")
	}
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
		if err := unix.Kill(tracer, sig); err != nil {
			t.Fatalf("%v to the tracer process: %v", sig, err)
		}
	}
	// A signal for the victim meanwhile waits, held by the tracer, until
	// the victim is released.
	if err := unix.Kill(s.v.PID, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if !testns.Alive(tracer) {
		t.Fatal("the tracer process exited while holding the victim inside close(2)")
	}
	if by := traced(t, s.v.PID); by != tracer {
		t.Fatalf("victim traced by %d, want the tracer process %d", by, tracer)
	}
	if !s.v.Alive() {
		t.Fatalf("victim died with mounttop; lines %q", s.v.Seen())
	}

	s.fs.Cont(t)
	resumed = true
	s.requireRestored(t)
	s.v.WaitLine(t, "signal: user defined signal 1", 5*time.Second)
	waitExited(t, tracer, 10*time.Second)
}

// Waiting on the tracer process ends with the caller's context: a revoke
// stuck in close(2) with a long inject timeout returns the context's error
// at once, and the tracer process finishes the revoke on its own once the
// daemon resumes.
func TestTracerRevokeHonoursContext(t *testing.T) {
	s := newStuckSetup(t)
	tr := NewTracer(InjectTimeout(time.Minute))
	t.Cleanup(func() { _ = tr.Close() })
	// The tracer process is started first: on a loaded machine its start
	// alone can take longer than the deadline this test is about.
	if _, err := tr.process(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.fs.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tr.Revoke(ctx, s.v.PID, Targets{FDs: []int{s.fd}})
	took := time.Since(start)
	s.fs.Cont(t)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "finishes it or restores the process on its own") {
		t.Fatalf("Revoke past its context's deadline: %v", err)
	}
	t.Logf("returned after %v: %v", took, err)
	if took > 5*time.Second {
		t.Errorf("Revoke returned %v after its 300ms deadline", took)
	}
	s.requireRestored(t)
}

// A process blocked in a read(2) that waits on a stopped FUSE daemon never
// reaches a ptrace stop: through the tracer process, Revoke answers
// ErrNoStop within the stop timeout and leaves it untraced and untouched;
// once the daemon resumes its read completes and it runs on with the fd.
func TestTracerFUSEReadNoStop(t *testing.T) {
	s := newStuckSetup(t)
	const stopTimeout = 500 * time.Millisecond
	tr := NewTracer(StopTimeout(stopTimeout))
	t.Cleanup(func() { _ = tr.Close() })
	s.fs.Stop(t)
	resumed := false
	defer func() {
		if !resumed {
			s.fs.Cont(t)
		}
	}()
	f, err := os.OpenFile(s.fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("read\n"); err != nil {
		t.Fatal(err)
	}
	blocked := false
	for deadline := time.Now().Add(10 * time.Second); !blocked && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tids, _ := testProc.threads(s.v.PID)
		for _, tid := range tids {
			// Waiting for the page FUSE READ fills (folio_wait_bit), or
			// for the answer itself: uninterruptible either way.
			blocked = blocked || state(s.v.PID, tid) == 'D'
		}
	}
	if !blocked {
		var ws []string
		tids, _ := testProc.threads(s.v.PID)
		for _, tid := range tids {
			w, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/wchan", s.v.PID, tid))
			ws = append(ws, fmt.Sprintf("%d %c %s", tid, state(s.v.PID, tid), w))
		}
		t.Fatalf("the victim's read never blocked in FUSE: %q; lines %q", ws, s.v.Seen())
	}
	start := time.Now()
	rep, err := tr.Revoke(context.Background(), s.v.PID, Targets{FDs: []int{s.fd}})
	took := time.Since(start)
	if !errors.Is(err, ErrNoStop) || len(rep.Closed) > 0 {
		t.Fatalf("Revoke of a process blocked in FUSE: %+v, %v; want ErrNoStop", rep, err)
	}
	t.Logf("answered in %v (stop timeout %v): %v", took, stopTimeout, err)
	if took > stopTimeout+10*time.Second {
		t.Errorf("ErrNoStop came after %v", took)
	}
	if by := traced(t, s.v.PID); by != 0 {
		t.Errorf("victim still traced by %d after ErrNoStop", by)
	}
	s.fs.Cont(t)
	resumed = true
	s.v.WaitLine(t, "read: ok", 10*time.Second)
	s.ping(t, "after")
	if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", s.v.PID, s.fd)); err != nil || !strings.HasPrefix(l, s.fs.Dir) {
		t.Errorf("fd %d: %q, %v; want it untouched", s.fd, l, err)
	}
}

// mounttop killed with SIGKILL while it still waits for the answer, the
// injected close(2) under way and not yet declared stuck: the tracer
// process finishes that revoke once the daemon resumes, releases the
// victim and exits.
func TestTracerSIGKILLBeforeAnswer(t *testing.T) {
	s := newStuckSetup(t)
	s.fs.Stop(t)
	resumed := false
	defer func() {
		if !resumed {
			s.fs.Cont(t)
		}
	}()
	client := testns.StartVictim(t, roleRevokeThroughTracer, strconv.Itoa(s.v.PID), strconv.Itoa(s.fd), "1h")
	line := client.WaitLine(t, "tracer:", 30*time.Second)
	tracer, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "tracer:")))
	if err != nil || tracer == 0 {
		t.Fatalf("tracer line %q", line)
	}
	t.Cleanup(func() {
		if testns.Alive(tracer) {
			_ = unix.Kill(tracer, unix.SIGKILL) // the one we started, by pid: only if the test failed
		}
	})
	// The injection is under way once the victim's main thread, traced
	// by the tracer process, waits for the FUSE server's answer.
	wchan := func() string {
		w, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", s.v.PID))
		return string(w)
	}
	for deadline := time.Now().Add(20 * time.Second); traced(t, s.v.PID) != tracer || wchan() != "request_wait_answer"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("victim not inside the injected close: traced by %d, state %c, in %s", traced(t, s.v.PID), state(s.v.PID, s.v.PID), wchan())
		}
	}
	if err := unix.Kill(client.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := client.Wait(10 * time.Second); !ok {
		t.Fatal("mounttop's part did not die of SIGKILL")
	}
	if slices.ContainsFunc(client.Seen(), func(l string) bool { return strings.HasPrefix(l, "answer:") }) {
		t.Fatalf("mounttop's part had its answer already: %q", client.Seen())
	}
	time.Sleep(300 * time.Millisecond)
	if !testns.Alive(tracer) || traced(t, s.v.PID) != tracer {
		t.Fatalf("after mounttop's death: tracer process alive %v, victim traced by %d", testns.Alive(tracer), traced(t, s.v.PID))
	}
	s.fs.Cont(t)
	resumed = true
	s.requireRestored(t)
	waitExited(t, tracer, 10*time.Second)
}

// A Tracer starts its tracer process with the first Revoke: a session of
// its own, cwd "/", no fd on any path but /dev/null and its log. Close ends
// an idle one at once, and nothing is left running; Revoke after Close is
// refused; the log says what it did.
func TestTracerIdleExit(t *testing.T) {
	logf, err := os.OpenFile(filepath.Join(t.TempDir(), "journal"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	tr := NewTracer(TracerLog(logf))
	if tr.PID() != 0 {
		t.Fatalf("a tracer process before any revoke: %d", tr.PID())
	}
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	rep, err := tr.Revoke(context.Background(), h.pid, Targets{FDs: fdsOn(t, h.pid, dir)})
	if err != nil || len(rep.Closed) != 1 {
		t.Fatalf("Revoke: %+v, %v", rep, err)
	}
	h.v.WaitLine(t, "read: EBADF", 5*time.Second)
	pid := tr.PID()
	if !testns.Alive(pid) {
		t.Fatalf("tracer process %d not running", pid)
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("tracer process session %d (%v), want its own (%d)", sid, err, pid)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != "/" {
		t.Errorf("tracer process cwd %q (%v), want /", cwd, err)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if strings.HasPrefix(l, "/") && l != "/dev/null" && l != logf.Name() {
			t.Errorf("tracer process holds fd %s on %s", e.Name(), l)
		}
	}

	start := time.Now()
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start))
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("tracer process %d still there after Close", pid)
	}
	if _, err := tr.Revoke(context.Background(), h.pid, Targets{CwdTIDs: []int{h.pid}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Revoke after Close: %v, want ErrClosed", err)
	}
	log, err := os.ReadFile(logf.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log:\n%s", log)
	for _, want := range []string{fmt.Sprintf(`"tracer":%d,"what":"process %d: closed fds [`, pid, h.pid), `"what":"every process released; exiting"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log does not say %s", want)
		}
	}
}

// Errors keep their meaning across the connection: errors.Is on the
// sentinel, a StuckError whole.
func TestWireErrors(t *testing.T) {
	se := &StuckError{PID: 7, TID: 7, Syscall: "close", Arg: "fd 3", FSType: "fuse.sshfs", Mount: "/mnt/x", After: time.Second}
	for _, err := range []error{
		fmt.Errorf("process 7: %w (tracer pid 9)", ErrTraced),
		fmt.Errorf("process 7: %w", ErrNoStop),
		fmt.Errorf("%w: 32-bit", ErrPermission),
		context.Canceled,
		se,
	} {
		got := fromWire(toWire(err))
		if got.Error() != err.Error() {
			t.Errorf("%q came back as %q", err, got)
		}
		for _, s := range sentinels() {
			if errors.Is(err, s) != errors.Is(got, s) {
				t.Errorf("%q: errors.Is(%v) changed across the wire", err, s)
			}
		}
	}
	if got := fromWire(toWire(se)); !strings.Contains(got.Error(), `left inside close(fd 3), waiting on the FUSE server (fuse.sshfs on /mnt/x)`) {
		t.Errorf("StuckError says %q", got)
	}
	if fromWire(toWire(nil)) != nil {
		t.Error("nil error came back non-nil")
	}
}
