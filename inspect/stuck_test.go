package inspect

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func init() {
	// mem-fault PATH OFFSET: holds PATH (a file on a FUSE mount) by an fd,
	// its directory as cwd and a shared mapping; on SIGUSR1 it reads the
	// mapped byte at OFFSET (not faulted in yet) through /proc/self/mem.
	// The kernel faults that page in for it with the process's mmap_lock
	// held (access_remote_vm, get_user_pages without FOLL_UNLOCKABLE), so
	// with the FUSE daemon stopped the process is stuck in the kernel in a
	// FUSE page fault; another thread mapping memory every millisecond
	// queues as a writer behind it, as any allocating program does, and
	// every reader of that lock (/proc/PID/cmdline, environ, map_files)
	// blocks from then on.
	testns.RegisterRole("mem-fault", 2, func(args []string) error {
		fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Chdir(filepath.Dir(args[0])); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		off, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		self, err := os.Open("/proc/self/mem")
		if err != nil {
			return err
		}
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, unix.SIGUSR1)
		testns.Say("ready %d", mem[0])
		<-usr1
		go func() {
			for {
				if b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
					_ = unix.Munmap(b)
				}
				time.Sleep(time.Millisecond)
			}
		}()
		testns.Say("faulting")
		buf := make([]byte, 1)
		_, err = self.ReadAt(buf, int64(uintptr(unsafe.Pointer(&mem[off]))))
		testns.Say("touched %v", err)
		testns.Forever()
		return nil
	})
}

// threads is the number of OS threads of this process (proc(5) status).
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// stuckVictim starts a mem-fault victim on a bindfs mount, stops the FUSE
// daemon and makes the victim fault; it returns once reading the victim's
// cmdline blocks (the reader is this test's own blocked thread, taken
// before any count), with the mount's directory.
func stuckVictim(t *testing.T) (*testns.Victim, *testns.Fuse) {
	t.Helper()
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fs := testns.Bindfs(t, src)
	v := testns.StartVictim(t, "mem-fault", filepath.Join(fs.Dir, "big"), strconv.Itoa(48<<20))
	fs.Stop(t)
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) })
	if err := unix.Kill(v.PID, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	v.WaitLine(t, "faulting", 30*time.Second)
	cmdline := fmt.Sprintf("/proc/%d/cmdline", v.PID)
	for try := 0; ; try++ {
		done := make(chan struct{})
		go func() { _, _ = os.ReadFile(cmdline); close(done) }()
		select {
		case <-done:
			if try == 100 {
				t.Fatalf("reading %s never blocked: the victim is not stuck in its page fault (%q)", cmdline, v.Seen())
			}
			time.Sleep(50 * time.Millisecond)
		case <-time.After(2 * time.Second): // a healthy read takes microseconds
			return v, fs
		}
	}
}

func hasWarning(s *Snapshot, kind WarningKind) bool {
	for _, w := range s.Warnings {
		if w.Kind == kind {
			return true
		}
	}
	return false
}

func hasStuckWarning(s *Snapshot, pid int) bool {
	for _, w := range s.Warnings {
		if w.Kind == WarnStuck && len(w.PIDs) == 1 && w.PIDs[0] == pid && len(w.Stuck) > 0 &&
			w.Stuck[0].File == fmt.Sprintf("/proc/%d/cmdline", pid) {
			return true
		}
	}
	return false
}

// TestScansStayBoundedNextToStuckProcess (issue 8 point 6): next to a
// process stuck in a FUSE page fault, 500 scans by one Inspector hold a
// fixed number of threads (the abandoned read is not asked again while it
// is out), each ends in bounded time, and each reports the process with
// what the reads that do not block show (its fd and cwd) and a warning
// naming the stuck read. A scan cut short by its context while the read is
// out records it the same way. Once the server answers, the read returns
// and the process is read in full again.
func TestScansStayBoundedNextToStuckProcess(t *testing.T) {
	v, fs := stuckVictim(t)
	const perProcess = time.Second
	probe, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	table, err := probe.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id := mountAt(t, table, fs.Dir).ID
	in, err := New("/proc", withProcessTimeout(perProcess), WithFocus(id))
	if err != nil {
		t.Fatal(err)
	}
	scanOnce := func() (*Snapshot, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
		defer cancel()
		start := time.Now()
		snap, err := in.Scan(ctx)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		return snap, time.Since(start)
	}

	// A scan cut short by its context while the read is out (the view's
	// refresh gave up first) leaves it recorded too: the next scan does
	// not wait for it, though the per-process deadline is a minute.
	patient, err := New("/proc", withProcessTimeout(time.Minute), WithFocus(id))
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	snap, err := patient.Scan(short)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(snap, WarnCutShort) {
		t.Fatalf("a scan whose context ended while a read was stuck: warnings %v", snap.Warnings)
	}
	start := time.Now()
	if snap, err = patient.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !hasStuckWarning(snap, v.PID) || time.Since(start) > 30*time.Second {
		t.Fatalf("after a cut-short scan, the next took %v and warned %v", time.Since(start), snap.Warnings)
	}

	const scans = 500
	var base, most int
	var longest, total time.Duration
	for i := 0; i < scans; i++ {
		snap, took := scanOnce()
		total += took
		longest = max(longest, took)
		h := holder(snap, id, v.PID)
		if findUse(h, UseFD) == nil || findUse(h, UseCwd) == nil || !hasStuckWarning(snap, v.PID) {
			t.Fatalf("scan %d: the stuck process is not reported with its fd, its cwd and the warning: %+v, warnings %v", i, h, snap.Warnings)
		}
		if len(h.Cmdline) != 0 {
			t.Fatalf("scan %d: the command line of a process whose cmdline read is stuck was read: %q", i, h.Cmdline)
		}
		// Generous bounds (2 shared cores); an unbounded scan never ends.
		// Only the first one waits the deadline out on the stuck read.
		if limit := 30*time.Second + perProcess; took > limit || i > 0 && took > 30*time.Second {
			t.Fatalf("scan %d took %v", i, took)
		}
		n := threads(t)
		if i == 0 {
			base = n
		}
		most = max(most, n)
		if n > base+8 {
			t.Fatalf("scan %d: %d threads, %d after the first scan: threads grow with scans", i, n, base)
		}
	}
	t.Logf("%d scans: %d threads after the first, at most %d; scan time mean %v, longest %v",
		scans, base, most, total/scans, longest)

	// The server answers: the fault completes, the abandoned cmdline read
	// returns, and the process is read in full again.
	fs.Cont(t)
	v.WaitLine(t, "touched", 60*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for {
		snap, _ := scanOnce()
		h := holder(snap, id, v.PID)
		if !hasStuckWarning(snap, v.PID) && h != nil && len(h.Cmdline) > 0 && findUse(h, UseMmap) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the server answered, the process is still not read in full: %+v, warnings %v", h, snap.Warnings)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStuckReadsByStartTime: a stuck read is remembered for the process
// (pid and start time), not for the pid: a new process with the same pid is
// read in full; the claim decides once between worker and watchdog; a read
// that returns is forgotten; an mm read leaves out every mm read.
func TestStuckReadsByStartTime(t *testing.T) {
	var s stuckReads
	j := &job{pid: 4242}
	j.reading(readCmdline, 0)
	j.procStart.Store(1000)
	if !s.abandon(j) {
		t.Fatal("the watchdog could not claim an unclaimed job")
	}
	if s.abandon(j) {
		t.Error("a job was claimed twice")
	}
	got := s.of(4242, 1000)
	if len(got) != 1 || got[0].what != readCmdline {
		t.Fatalf("of(same process) = %+v", got)
	}
	if other := s.of(4242, 2000); len(other) != 0 {
		t.Errorf("a reused pid (another start time) is taken for the stuck process: %+v", other)
	}
	skip := skipFor(got)
	for _, r := range []read{readCmdline, readMaps, readMapFiles} {
		if !skip[r] {
			t.Errorf("%s is read next to a stuck mm read", r.file())
		}
	}
	for _, r := range []read{readStat, readFD, readFDInfo, readCwd, readRoot, readExe, readCgroup} {
		if skip[r] {
			t.Errorf("%s is left out though it does not block on the stuck read", r.file())
		}
	}
	w := stuckWarning(4242, got, skip, time.Now())
	if w.Kind != WarnStuck || w.PID != 4242 || len(w.Stuck) != 1 || w.Stuck[0].File != "/proc/4242/cmdline" ||
		!strings.HasPrefix(strings.Join(w.LeftOut, ", "), "cmdline, maps, map_files") {
		t.Errorf("warning %+v", w)
	}
	s.returned(j)
	if left := s.of(4242, 1000); len(left) != 0 {
		t.Errorf("a read that returned is still remembered: %+v", left)
	}

	delivered := &job{pid: 7}
	delivered.claimed.Store(true) // its worker delivered first
	if s.abandon(delivered) || len(s.of(7, 0)) != 0 {
		t.Error("a delivered job was recorded as stuck")
	}
}
