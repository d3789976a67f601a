package unmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// deadFUSE is a bindfs mount held by an fd, a cwd, a mapping and a reader
// (RoleFileReader) whose daemon is stopped with SIGSTOP once they hold it,
// with the reader blocked in FUSE READ: a server that stopped answering
// (DESIGN.md, "Dead servers").
type deadFUSE struct {
	fs      *testns.Fuse
	holders map[string]tracee
}

func newDeadFUSE(t *testing.T, stop bool) *deadFUSE {
	t.Helper()
	testns.Require(t, testns.Namespace)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "file"), strings.Repeat("f", 8192))
	if err := os.Mkdir(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	fs := testns.Bindfs(t, src)
	d := &deadFUSE{fs: fs, holders: map[string]tracee{
		"fd":     startHolder(t, testns.RoleFD, filepath.Join(fs.Dir, "file"), "r"),
		"cwd":    startHolder(t, testns.RoleCwd, filepath.Join(fs.Dir, "dir")),
		"mmap":   startHolder(t, testns.RoleMmap, filepath.Join(fs.Dir, "file")),
		"reader": startHolder(t, testns.RoleFileReader, filepath.Join(fs.Dir, "file")),
	}}
	// Cleanups run last first: the daemon is resumed before the victims
	// are killed, whose exit flushes their files (FUSE FLUSH, which no
	// signal interrupts) and would wait on a stopped daemon for good.
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) })
	if stop {
		d.stop(t)
	}
	return d
}

// stop stops the daemon and waits for the reader to block on it.
func (d *deadFUSE) stop(t *testing.T) {
	t.Helper()
	d.fs.Stop(t)
	testns.WaitInSyscall(t, d.holders["reader"].pid, unix.SYS_PREAD64, 10*time.Second)
}

// requireHolders checks every holder: alive (unless the policy was
// signal, which ends them), and never left stopped or traced.
func (d *deadFUSE) requireHolders(t *testing.T, mayDie bool) {
	t.Helper()
	for name, h := range d.holders {
		if !alive(h.pid) {
			if !mayDie {
				t.Errorf("holder %s (pid %d) died; it said %q", name, h.pid, h.v.Seen())
			}
			continue
		}
		if stopped, why := testns.Stopped(h.pid); stopped {
			t.Errorf("holder %s (pid %d) is left %s", name, h.pid, why)
		}
	}
}

// TestStagedDeadFUSE: a staged unmount of a FUSE mount whose daemon is
// stopped completes within its timeout, by either revoke policy, whether
// the connection is aborted through fusectl or (fusectl not mounted) by
// umount2(MNT_FORCE): the plan says the server is not answering, the mount
// is gone, every holder is alive under close (none stopped or traced under
// either policy), also after the daemon is resumed.
func TestStagedDeadFUSE(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  Policy
		fusectl bool
		abort   string
	}{
		{"close, fusectl abort", PolicyClose, true, "aborted FUSE connection"},
		{"close, MNT_FORCE", PolicyClose, false, "umount2(MNT_FORCE)"},
		{"signal, fusectl abort", PolicySignal, true, "aborted FUSE connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fusectl {
				testns.FuseCtl(t)
			} else {
				testns.NoFuseCtl(t)
			}
			d := newDeadFUSE(t, true)
			u := realUnmounter(t)
			const timeout = 20 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p, err := u.Prepare(ctx, Plan{Target: mountAt(t, d.fs.Dir), Mode: ModeStaged, Policy: tc.policy,
				Interval: 100 * time.Millisecond, Timeout: timeout, Grace: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			plan := PlanWords(&p)
			if p.Server.Answering || !strings.Contains(plan, "the server is not answering") || !strings.Contains(plan, "cannot be synced") {
				t.Fatalf("the plan does not say the server is dead: %+v\n%s", p.Server, plan)
			}
			start := time.Now()
			evs := collect(u.Run(ctx, p))
			took := time.Since(start)
			t.Logf("took %v; events:\n%s", took, dumpEvents(evs))
			if took > timeout {
				t.Errorf("the run took %v, more than its timeout %v", took, timeout)
			}
			requireGone(t, evs, d.fs.Dir)
			if dump := dumpEvents(evs); !strings.Contains(dump, tc.abort) {
				t.Errorf("no %q event", tc.abort)
			}
			d.requireHolders(t, tc.policy == PolicySignal)
			if tc.policy == PolicyClose {
				d.holders["reader"].v.WaitLine(t, "read: ", 5*time.Second)
			}
			d.fs.Cont(t)
			time.Sleep(300 * time.Millisecond)
			d.requireHolders(t, tc.policy == PolicySignal)
		})
	}
}

// stopAfterSyncfs is the real System with the FUSE daemon stopped right
// after syncfs: the server dies between the fence and the revoke.
type stopAfterSyncfs struct {
	System
	stop func()
}

func (s *stopAfterSyncfs) Syncfs(root *os.File) error {
	err := s.System.Syncfs(root)
	s.stop()
	return err
}

// TestStagedFUSEDiesAfterTheFence: the daemon answers the probe and the
// syncfs, then stops (a hook on Syncfs) before the revoke: the injected
// close() hangs in FUSE FLUSH (or the reader never stops for ptrace), the
// revoke reports it, the run probes again, aborts the connection, and the
// hung call returns: the run completes, every holder alive, none traced.
func TestStagedFUSEDiesAfterTheFence(t *testing.T) {
	testns.FuseCtl(t)
	d := newDeadFUSE(t, false)
	sys := &stopAfterSyncfs{System: realSystem(t), stop: func() { d.stop(t) }}
	u := New(sys)
	const timeout = 40 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := u.Prepare(ctx, Plan{Target: mountAt(t, d.fs.Dir), Mode: ModeStaged, Interval: 100 * time.Millisecond, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Server.Answering {
		t.Fatalf("the server answers at plan time: %+v", p.Server)
	}
	start := time.Now()
	evs := collect(u.Run(ctx, p))
	took := time.Since(start)
	t.Logf("took %v; events:\n%s", took, dumpEvents(evs))
	requireGone(t, evs, d.fs.Dir)
	dump := dumpEvents(evs)
	for _, want := range []string{"syncfs: data written so far is on disk", "could not be revoked in time", "the server is not answering", "aborted FUSE connection"} {
		if !strings.Contains(dump, want) {
			t.Errorf("no event with %q", want)
		}
	}
	d.requireHolders(t, false)
	d.fs.Cont(t)
	time.Sleep(300 * time.Millisecond)
	d.requireHolders(t, false)
}

// TestStagedAfterForce: after `umount --force` aborted the FUSE connection
// (the mount stays: it is held), a staged run still succeeds: ENOTCONN
// from the probe says the connection is aborted, which is not a failure.
func TestStagedAfterForce(t *testing.T) {
	testns.NoFuseCtl(t)
	d := newDeadFUSE(t, true)
	u := realUnmounter(t)
	m := mountAt(t, d.fs.Dir)
	if err := u.Force(context.Background(), &m); !isBusy(err) {
		t.Fatalf("force of a held FUSE mount: %v, want EBUSY", err)
	}
	evs := staged(t, u, d.fs.Dir, Plan{Timeout: 20 * time.Second})
	requireGone(t, evs, d.fs.Dir)
	if !strings.Contains(EventWords(evs[0]), "aborted already") {
		t.Errorf("the plan does not say the connection is aborted: %s", EventWords(evs[0]))
	}
	d.requireHolders(t, false)
}

// TestStagedDetachedDeadFUSE: a lazily unmounted FUSE mount whose daemon
// is stopped, held by the four holders, taken by its unique ID: probed
// through a holder's fd, the connection aborted through fusectl, every
// holder revoked, the detached mount gone.
func TestStagedDetachedDeadFUSE(t *testing.T) {
	testns.FuseCtl(t)
	d := newDeadFUSE(t, true)
	m := mountAt(t, d.fs.Dir)
	if err := unix.Unmount(d.fs.Dir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	u := realUnmounter(t)
	m.Detached = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := u.Prepare(ctx, Plan{Target: m, Mode: ModeStaged, Interval: 100 * time.Millisecond, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Target.Detached || p.Server.Answering {
		t.Fatalf("want a detached mount with a dead server: %+v %+v", p.Target, p.Server)
	}
	evs := collect(u.Run(ctx, p))
	t.Logf("events:\n%s", dumpEvents(evs))
	res, err := result(t, evs)
	if err != nil || !res.Gone {
		t.Fatalf("not gone: %v %s", err, summaryOf(res))
	}
	if !strings.Contains(dumpEvents(evs), "aborted FUSE connection") {
		t.Error("no abort event")
	}
	d.requireHolders(t, false)
}

// diesBeforeTheClose is the case: one holder with one fd and no
// close on the connection before (so FUSE FLUSH goes to the daemon); the
// daemon answers the probe and the syncfs, then stops, so the injected
// close() hangs in FLUSH. It runs a staged unmount with timeout and
// returns its events, how long the run took, the holder and the mount.
func diesBeforeTheClose(t *testing.T, timeout time.Duration) ([]Event, time.Duration, tracee, *testns.Fuse) {
	t.Helper()
	testns.FuseCtl(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "file"), "data")
	fs := testns.Bindfs(t, src)
	h := startHolder(t, testns.RoleFD, filepath.Join(fs.Dir, "file"), "r")
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) }) // before the holder goes: its exit flushes
	sys := &stopAfterSyncfs{System: realSystem(t), stop: func() { fs.Stop(t) }}
	u := New(sys)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := u.Prepare(ctx, Plan{Target: mountAt(t, fs.Dir), Mode: ModeStaged, Interval: 100 * time.Millisecond, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	evs := collect(u.Run(ctx, p))
	took := time.Since(start)
	t.Logf("took %v; events:\n%s", took, dumpEvents(evs))
	return evs, took, h, fs
}

// TestStagedFUSEDiesBeforeTheClose: the case (diesBeforeTheClose)
// with time to spare: the injected close() hangs in FLUSH until the
// revoker reports it stuck; the run probes, aborts the connection, the
// close returns and the revoker restores the process: the run completes,
// the holder lives on, untraced, its fd gone.
func TestStagedFUSEDiesBeforeTheClose(t *testing.T) {
	evs, _, h, fs := diesBeforeTheClose(t, 40*time.Second)
	requireGone(t, evs, fs.Dir)
	dump := dumpEvents(evs)
	for _, want := range []string{"could not be revoked in time", "aborted FUSE connection"} {
		if !strings.Contains(dump, want) {
			t.Errorf("no event with %q", want)
		}
	}
	time.Sleep(300 * time.Millisecond) // the stuck tracer restores and lets go once close returns
	if stopped, why := testns.Stopped(h.pid); stopped || !alive(h.pid) {
		t.Fatalf("the holder: alive %v, %s; it said %q", alive(h.pid), why, h.v.Seen())
	}
	if _, ok := fdOn(h.pid, filepath.Join(fs.Dir, "file")); ok {
		t.Error("the holder still has its fd on the file")
	}
	fs.Cont(t)
	time.Sleep(300 * time.Millisecond)
	if stopped, why := testns.Stopped(h.pid); stopped || !alive(h.pid) {
		t.Fatalf("after the daemon resumed, the holder: alive %v, %s", alive(h.pid), why)
	}
}

// TestStagedFUSEDiesBeforeTheCloseShortTimeout: the case with a
// timeout shorter than the revoker's own inject timeout (10s): the run
// still ends within its timeout plus 5s (issue 8, point 4), because the
// wait for an injected call follows the run's deadline and CallTimeout;
// the connection is aborted, so the close returns and the holder is
// restored, alive and untraced; and the result never says "everything is
// as it was" while the fd is gone.
func TestStagedFUSEDiesBeforeTheCloseShortTimeout(t *testing.T) {
	const timeout = 3 * time.Second
	evs, took, h, fs := diesBeforeTheClose(t, timeout)
	if took > timeout+5*time.Second {
		t.Errorf("the run took %v, more than its timeout %v plus 5s", took, timeout)
	}
	res, _ := result(t, evs)
	dump := dumpEvents(evs)
	if !strings.Contains(dump, "aborted FUSE connection") {
		t.Error("no abort event")
	}
	if !res.Gone && strings.Contains(summaryOf(res), "everything is as it was") {
		t.Errorf("the result says everything is as it was: %s", summaryOf(res))
	}
	if released, why := testns.Released(h.pid, 10*time.Second); !released || !alive(h.pid) {
		t.Fatalf("the holder: alive %v, %s; it said %q", alive(h.pid), why, h.v.Seen())
	}
	if _, ok := fdOn(h.pid, filepath.Join(fs.Dir, "file")); ok && res.Gone {
		t.Error("the mount is gone but the holder still has its fd on the file")
	}
	if res.Gone && !strings.Contains(summaryOf(res), "1 holder revoked") && !strings.Contains(summaryOf(res), "was left inside dup3(fd") {
		t.Errorf("the result neither counts the holder revoked nor says it was left inside its injected call: %s", summaryOf(res))
	}
	fs.Cont(t)
	time.Sleep(300 * time.Millisecond)
	if stopped, why := testns.Stopped(h.pid); stopped || !alive(h.pid) {
		t.Fatalf("after the daemon resumed, the holder: alive %v, %s", alive(h.pid), why)
	}
}

// cancelDuringRevoke is the real System that cancels the run a while
// after a revoke was handed to the tracer process: the run stops waiting
// for it while the tracer process still works on the holder.
type cancelDuringRevoke struct {
	*stopAfterSyncfs
	cancel context.CancelFunc
	after  time.Duration
}

func (s *cancelDuringRevoke) Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error) {
	time.AfterFunc(s.after, s.cancel)
	return s.System.Revoke(ctx, pid, t)
}

// TestStagedCancelledInsideTheClose: the daemon stops after syncfs, the
// injected call of the revoke hangs in FUSE FLUSH, and the run is
// cancelled (SIGTERM, x) while it does: the run rolls the fence back at
// once, but the tracer process still holds the holder inside that call
// and finishes the revoke when it returns, so the result must not say
// "everything is as it was" (issue 8, point 5): it names the holder whose
// revoke was under way. Once the daemon resumes the holder is let go,
// alive, its fd taken.
func TestStagedCancelledInsideTheClose(t *testing.T) {
	testns.FuseCtl(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "file"), "data")
	fs := testns.Bindfs(t, src)
	h := startHolder(t, testns.RoleFD, filepath.Join(fs.Dir, "file"), "r")
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) }) // before the holder goes: its exit flushes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sys := &cancelDuringRevoke{stopAfterSyncfs: &stopAfterSyncfs{System: realSystem(t), stop: func() { fs.Stop(t) }}, cancel: cancel, after: time.Second}
	u := New(sys)
	p, err := u.Prepare(ctx, Plan{Target: mountAt(t, fs.Dir), Mode: ModeStaged, Interval: 100 * time.Millisecond, Timeout: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	evs := collect(u.Run(ctx, p))
	took := time.Since(start)
	t.Logf("took %v; events:\n%s", took, dumpEvents(evs))
	res, err := result(t, evs)
	if !errors.Is(err, ErrCancelled) || res.Gone {
		t.Fatalf("want a cancelled run, rolled back: %v, %s", err, summaryOf(res))
	}
	if strings.Contains(summaryOf(res), "everything is as it was") {
		t.Errorf("the result says everything is as it was while the holder is inside its injected call: %s", summaryOf(res))
	}
	if want := fmt.Sprintf("pid %d", h.pid); !strings.Contains(summaryOf(res), want) {
		t.Errorf("the result does not name %s, whose revoke was under way: %s", want, summaryOf(res))
	}
	fs.Cont(t)
	if released, why := testns.Released(h.pid, 10*time.Second); !released || !alive(h.pid) {
		t.Fatalf("after the daemon resumed, the holder: alive %v, %s; it said %q", alive(h.pid), why, h.v.Seen())
	}
	if _, ok := fdOn(h.pid, filepath.Join(fs.Dir, "file")); ok {
		t.Error("the holder still has its fd on the file: then nothing was under way")
	}
}
