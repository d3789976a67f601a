//go:build linux && amd64

package revoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/mountapi"
	"mounttop/internal/testns"
)

func TestMain(m *testing.M) {
	TracerMain()
	testns.Main(m)
}

// holder is a victim process that is not a child of the test process (see
// testns.RoleRevokeHolder): its lines come through v, its pid is pid.
type holder struct {
	v   *testns.Victim
	pid int
}

func startHolder(t *testing.T, role string, args ...string) holder {
	t.Helper()
	v, pid := testns.StartTracee(t, role, args...)
	return holder{v: v, pid: pid}
}

// alive reports whether pid exists and is no zombie.
func alive(pid int) bool {
	s := state(pid, pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// state is a thread's state letter from /proc/PID/task/TID/stat, 0 if gone.
func state(pid, tid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func (h holder) requireAlive(t *testing.T) {
	t.Helper()
	time.Sleep(100 * time.Millisecond)
	if !alive(h.pid) {
		t.Fatalf("holder %d died; lines: %q", h.pid, h.v.Seen())
	}
}

// fdsOn lists pid's fds whose target lies under dir.
func fdsOn(t *testing.T, pid int, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(l, dir+"/") {
			n, _ := strconv.Atoi(e.Name())
			fds = append(fds, n)
		}
	}
	if len(fds) == 0 {
		t.Fatalf("process %d holds no fd under %s", pid, dir)
	}
	return fds
}

// mapsOn lists pid's mappings of files under dir.
func mapsOn(t *testing.T, pid int, dir string) []Range {
	t.Helper()
	maps, err := testProc.taskMaps(pid, pid)
	if err != nil {
		t.Fatal(err)
	}
	var rs []Range
	for _, m := range maps {
		if strings.HasPrefix(m.path, dir+"/") {
			rs = append(rs, Range{m.start, m.end})
		}
	}
	return rs
}

func mkfifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newRevoker(t testing.TB, opts ...Option) *Revoker {
	r := New(opts...)
	t.Cleanup(r.Close)
	return r
}

func revoke(t *testing.T, r *Revoker, pid int, tg Targets) Report {
	t.Helper()
	rep, err := r.Revoke(context.Background(), pid, tg)
	if err != nil {
		t.Fatalf("Revoke(%d, %+v): %v (report %+v)", pid, tg, err, rep)
	}
	if len(rep.Failed) > 0 {
		t.Fatalf("Revoke(%d): failures: %q", pid, rep.Failed)
	}
	t.Logf("revoked %d: %d threads stopped, closed %v, unmapped %v, chdir %v, in %v; notes %q",
		pid, rep.Threads, rep.Closed, rep.Unmapped, rep.Chdir, rep.Duration, rep.Notes)
	return rep
}

// A thread blocked in read(2) on a FIFO holds the file itself; once its fd
// is revoked the interrupted read is restarted, finds the fd closed and
// returns EBADF, and the process lives on.
func TestRevokeFifoRead(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	fds := fdsOn(t, h.pid, dir)
	rep := revoke(t, newRevoker(t), h.pid, Targets{FDs: fds})
	if !slices.Equal(rep.Closed, fds) || rep.Threads < 1 {
		t.Errorf("report: closed %v, want %v; threads %d", rep.Closed, fds, rep.Threads)
	}
	if suspendNoted := slices.ContainsFunc(rep.Notes, func(n string) bool {
		return strings.Contains(n, "without PTRACE_O_SUSPEND_SECCOMP")
	}); suspendNoted == testns.IsRealRoot() {
		t.Errorf("notes %q: as real root %v, want the note only without CAP_SYS_ADMIN", rep.Notes, testns.IsRealRoot())
	}
	if line := h.v.WaitLine(t, "read:", 5*time.Second); line != "read: EBADF" {
		t.Errorf("holder reported %q, want read: EBADF", line)
	}
	h.requireAlive(t)
	for _, fd := range fds {
		// The number may be reused by the victim since; not for the FIFO.
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", h.pid, fd)); err == nil && strings.HasPrefix(l, dir) {
			t.Errorf("fd %d is still open on %s", fd, l)
		}
	}
}

// A mapping replaced by PROT_NONE anonymous memory faults on the next
// touch (SIGSEGV, which the victim survives), and the file is no longer
// mapped.
func TestRevokeMmapTouch(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHolder(t, testns.RoleRevokeMmapTouch, file)
	ranges := mapsOn(t, h.pid, dir)
	if len(ranges) == 0 {
		t.Fatal("victim maps nothing under the mount")
	}
	rep := revoke(t, newRevoker(t), h.pid, Targets{Maps: ranges})
	if !slices.Equal(rep.Unmapped, ranges) {
		t.Errorf("unmapped %v, want %v", rep.Unmapped, ranges)
	}
	h.v.WaitLine(t, "fault", 5*time.Second)
	h.requireAlive(t)
	if left := mapsOn(t, h.pid, dir); len(left) > 0 {
		t.Errorf("still mapped: %v", left)
	}
}

// emptyDirID is the unique mount ID of r's empty directory.
func emptyDirID(t *testing.T, r *Revoker) uint64 {
	t.Helper()
	f, err := r.emptyDirFile()
	if err != nil {
		t.Fatal(err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		t.Fatal(err)
	}
	return stx.Mnt_id
}

// requireInEmptyDir checks that the /proc magic link at link (a cwd, an
// fd) points into r's empty directory, which is on no mount of ours.
func requireInEmptyDir(t *testing.T, r *Revoker, link string) {
	t.Helper()
	id, _, err := mountOf(link)
	if err != nil {
		t.Fatalf("%s: %v", link, err)
	}
	if want := emptyDirID(t, r); id != want {
		t.Errorf("%s is on mount %d, want the empty directory's %d", link, id, want)
	}
	if mountedHere(t, id) {
		t.Errorf("%s: mount %d is in our mount table, not on no mounted tree", link, id)
	}
}

// mountedHere reports whether the mount with unique ID id is in this
// mount namespace (statmount(2) finds it).
func mountedHere(t *testing.T, id uint64) bool {
	t.Helper()
	ids, err := mountapi.ListMounts()
	if err != nil {
		t.Fatalf("listmount: %v", err)
	}
	return slices.Contains(ids, id)
}

// The main thread's cwd moves into the empty directory: off the mount,
// and onto no mount of ours.
func TestRevokeCwd(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleCwd, dir)
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", h.pid)); cwd != dir {
		t.Fatalf("victim cwd %q, want %q", cwd, dir)
	}
	r := newRevoker(t)
	rep := revoke(t, r, h.pid, Targets{CwdTIDs: []int{h.pid}})
	if !slices.Equal(rep.Chdir, []int{h.pid}) {
		t.Errorf("chdir %v", rep.Chdir)
	}
	requireInEmptyDir(t, r, fmt.Sprintf("/proc/%d/cwd", h.pid))
	h.requireAlive(t)
}

// A revoked cwd leads nowhere (issue 9.7): a process that goes on creating
// files by relative path gets EROFS, nothing lands in its root (here a
// chroot, so that the old chdir("/") would have put the files in a tmpfs
// of the test and not in the machine's "/") or anywhere else, and its
// getcwd(2) names no reachable directory.
func TestRevokeCwdLeadsNowhere(t *testing.T) {
	root := testns.Tmpfs(t, "")
	inner := filepath.Join(root, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("mounttop-test", inner, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, inner)
	h := startHolder(t, testns.RoleRevokeCwdWriter, root, "/inner")
	h.v.WaitLine(t, "created", 5*time.Second)
	cwdLink := fmt.Sprintf("/proc/%d/cwd", h.pid)
	innerID, _, err := mountOf(inner)
	if err != nil {
		t.Fatal(err)
	}
	if id, _, _ := mountOf(cwdLink); id != innerID {
		t.Fatalf("victim cwd on mount %d, want the inner mount %d", id, innerID)
	}
	r := newRevoker(t)
	revoke(t, r, h.pid, Targets{CwdTIDs: []int{h.pid}, Mounts: []uint64{innerID}})
	if line := h.v.WaitLine(t, "create failed:", 5*time.Second); line != "create failed: EROFS" {
		t.Errorf("a create by relative path after the revoke: %q, want EROFS", line)
	}
	if line := h.v.WaitLine(t, "getcwd:", 5*time.Second); !strings.HasPrefix(line, "getcwd: (unreachable)") {
		t.Errorf("%q: want a cwd unreachable from the process's root", line)
	}
	requireInEmptyDir(t, r, cwdLink)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "inner" {
			t.Errorf("%s landed in the process's root", e.Name())
		}
	}
	h.requireAlive(t)
}

// A thread that unshared CLONE_FS has a cwd of its own: fchdir runs in
// that thread, and the others keep theirs.
func TestRevokeCwdOwnThread(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeCwdThread, dir)
	tid, err := strconv.Atoi(strings.TrimPrefix(h.v.WaitLine(t, "tid: ", time.Second), "tid: "))
	if err != nil {
		t.Fatal(err)
	}
	taskCwd := func(tid int) string {
		s, _ := os.Readlink(fmt.Sprintf("/proc/%d/task/%d/cwd", h.pid, tid))
		return s
	}
	mainCwd := taskCwd(h.pid)
	if got := taskCwd(tid); got != dir || mainCwd == dir {
		t.Fatalf("thread cwd %q, main %q; want thread in %q only", got, mainCwd, dir)
	}
	r := newRevoker(t)
	revoke(t, r, h.pid, Targets{CwdTIDs: []int{tid}})
	requireInEmptyDir(t, r, fmt.Sprintf("/proc/%d/task/%d/cwd", h.pid, tid))
	if got := taskCwd(h.pid); got != mainCwd {
		t.Errorf("main thread cwd moved: %q, was %q", got, mainCwd)
	}
	h.requireAlive(t)
}

// Every thread of the process is stopped: four threads blocked in read(2),
// each on its own fd, all get EBADF. Seizing only the main thread would
// leave their reads holding the file.
func TestRevokeThreads(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleThreads, mkfifo(t, dir), "4")
	fds := fdsOn(t, h.pid, dir)
	if len(fds) != 4 {
		t.Fatalf("victim holds %d fds on the fifo, want 4", len(fds))
	}
	rep := revoke(t, newRevoker(t), h.pid, Targets{FDs: fds})
	if rep.Threads < 5 {
		t.Errorf("stopped %d threads, want at least 5", rep.Threads)
	}
	for i := 0; i < 4; i++ {
		prefix := fmt.Sprintf("thread %d read:", i)
		if line := h.v.WaitLine(t, prefix, 5*time.Second); line != prefix+" EBADF" {
			t.Errorf("%q, want EBADF", line)
		}
	}
	h.requireAlive(t)
}

// Closing the only fd of a lock's open file releases flock, POSIX and OFD
// locks alike: the lock leaves /proc/locks.
func TestRevokeLocks(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	r := newRevoker(t)
	for _, kind := range []string{"flock", "posix", "ofd"} {
		t.Run(kind, func(t *testing.T) {
			file := filepath.Join(dir, kind)
			h := startHolder(t, testns.RoleLock, file, kind, "w")
			var st unix.Stat_t
			if err := unix.Stat(file, &st); err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf(" %02x:%02x:%d ", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
			if !locked(t, id) {
				t.Fatalf("no lock on %s in /proc/locks", id)
			}
			revoke(t, r, h.pid, Targets{FDs: fdsOn(t, h.pid, dir)})
			if locked(t, id) {
				t.Errorf("lock on %s still in /proc/locks", id)
			}
			h.requireAlive(t)
		})
	}
}

func locked(t *testing.T, id string) bool {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), id)
}

// A process someone else traces is refused with ErrTraced and left as it
// was.
func TestRevokeTraced(t *testing.T) {
	t.Run("process", testRevokeTracedProcess)
	t.Run("one thread", testRevokeTracedThread)
}

func testRevokeTracedProcess(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	fds := fdsOn(t, h.pid, dir)
	release := seizeElsewhere(t, h.pid)
	rep, err := newRevoker(t).Revoke(context.Background(), h.pid, Targets{FDs: fds})
	if !errors.Is(err, ErrTraced) {
		t.Fatalf("Revoke of a traced process: %v, want ErrTraced", err)
	}
	t.Logf("refused: %v", err)
	if len(rep.Closed) > 0 {
		t.Errorf("closed %v although refused", rep.Closed)
	}
	release()
	if got := fdsOn(t, h.pid, dir); !slices.Equal(got, fds) {
		t.Errorf("fds now %v, were %v", got, fds)
	}
	time.Sleep(100 * time.Millisecond)
	if slices.ContainsFunc(h.v.Seen(), func(l string) bool { return strings.HasPrefix(l, "read:") }) {
		t.Errorf("the read was disturbed: %q", h.v.Seen())
	}
	h.requireAlive(t)
}

// Only one thread traced by someone else: found while seizing, after the
// other threads were already seized and interrupted; those are released
// again.
func testRevokeTracedThread(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleThreads, mkfifo(t, dir), "2")
	fds := fdsOn(t, h.pid, dir)
	tids, err := testProc.threads(h.pid)
	if err != nil {
		t.Fatal(err)
	}
	other := tids[len(tids)-1]
	release := seizeElsewhere(t, other)
	rep, err := newRevoker(t).Revoke(context.Background(), h.pid, Targets{FDs: fds})
	if !errors.Is(err, ErrTraced) || len(rep.Closed) > 0 {
		t.Fatalf("Revoke with thread %d traced elsewhere: %v, %+v; want ErrTraced", other, err, rep)
	}
	t.Logf("refused: %v", err)
	for _, tid := range tids {
		st, _ := testProc.threadStatus(h.pid, tid)
		if tid != other && (st.tracerPid != 0 || st.state == 't') {
			t.Errorf("thread %d left traced (tracer %d, state %c)", tid, st.tracerPid, st.state)
		}
	}
	release()
	if got := fdsOn(t, h.pid, dir); !slices.Equal(got, fds) {
		t.Errorf("fds now %v, were %v", got, fds)
	}
	h.requireAlive(t)
}

// seizeElsewhere makes another tracer thread trace pid, as strace -p
// would. The returned func (also run at cleanup) ends that thread, which
// detaches it.
func seizeElsewhere(t *testing.T, pid int) (release func()) {
	t.Helper()
	seized, stop, done := make(chan error), make(chan struct{}), make(chan struct{})
	goLocked(func() { // never unlocked: the thread's exit detaches
		seized <- ptraceSeize(pid, 0)
		<-stop
		close(done)
	})
	if err := <-seized; err != nil {
		t.Fatalf("seizing %d from the test: %v", pid, err)
	}
	status := func() (taskStatus, error) { return testProc.processStatus(pid) }
	if st, _ := testProc.processStatus(pid); st.tgid != pid { // a thread: its own status
		status = func() (taskStatus, error) { return testProc.threadStatus(st.tgid, pid) }
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(stop)
			<-done
			for i := 0; i < 200; i++ {
				if st, _ := status(); st.tracerPid == 0 {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Errorf("process %d still traced after the test's tracer ended", pid)
		})
	}
	t.Cleanup(release)
	return release
}

// Placeholder mode keeps the fd number taken by an O_PATH fd of the empty
// directory, and the blocked read still fails with EBADF.
func TestRevokePlaceholder(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	fds := fdsOn(t, h.pid, dir)
	r := newRevoker(t)
	rep := revoke(t, r, h.pid, Targets{FDs: fds, Placeholder: true})
	if !slices.Equal(rep.Closed, fds) {
		t.Errorf("closed %v, want %v", rep.Closed, fds)
	}
	if line := h.v.WaitLine(t, "read:", 5*time.Second); line != "read: EBADF" {
		t.Errorf("holder reported %q, want read: EBADF", line)
	}
	for _, fd := range fds {
		requireInEmptyDir(t, r, fmt.Sprintf("/proc/%d/fd/%d", h.pid, fd))
		if fi, err := testProc.fdInfo(h.pid, h.pid, fd); err != nil || fi.Flags&unix.O_CLOEXEC == 0 { // the victim opened it O_CLOEXEC
			t.Errorf("fd %d lost O_CLOEXEC", fd)
		}
	}
	h.requireAlive(t)
}

// Threads created and ended all the time (PTRACE_O_TRACECLONE adoption,
// threads that exit while being seized) do not stop the revoke.
func TestRevokeThreadSpawner(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeSpawner, mkfifo(t, dir))
	r := newRevoker(t)
	fds := fdsOn(t, h.pid, dir)
	revoke(t, r, h.pid, Targets{FDs: fds})
	if line := h.v.WaitLine(t, "read:", 5*time.Second); line != "read: EBADF" {
		t.Errorf("holder reported %q", line)
	}
	h.v.WaitLine(t, "spawned", 5*time.Second)
	h.requireAlive(t)
	// And once more, on a process that still churns threads, with
	// nothing left to close but its cwd.
	for i := 0; i < 5; i++ {
		revoke(t, r, h.pid, Targets{CwdTIDs: []int{h.pid}})
	}
	h.requireAlive(t)
}

// A thread in uninterruptible sleep (here: a vfork parent) never reaches a
// ptrace stop: ErrNoStop, and every thread is released, the sleeping one
// included (it cannot be PTRACE_DETACHed; the tracer thread's exit does
// it). The Revoker carries on with a new tracer thread.
func TestRevokeNoStop(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeVfork)
	child, err := strconv.Atoi(strings.TrimPrefix(h.v.WaitLine(t, "vfork child: ", time.Second), "vfork child: "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) })
	r := newRevoker(t, StopTimeout(300*time.Millisecond))
	start := time.Now()
	rep, err := r.Revoke(context.Background(), h.pid, Targets{CwdTIDs: []int{h.pid}})
	if !errors.Is(err, ErrNoStop) {
		t.Fatalf("Revoke of a D-state process: %v, want ErrNoStop", err)
	}
	t.Logf("refused after %v: %v", time.Since(start), err)
	if len(rep.Chdir) > 0 {
		t.Errorf("acted although refused: %+v", rep)
	}
	tids, err := testProc.threads(h.pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		st, _ := testProc.threadStatus(h.pid, tid)
		if st.tracerPid != 0 || st.state == 't' {
			t.Errorf("thread %d left traced (tracer %d, state %c)", tid, st.tracerPid, st.state)
		}
	}
	if err := unix.Kill(child, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.v.WaitLine(t, "vfork returned", 5*time.Second)
	h.requireAlive(t)

	// The same Revoker still works. Its 300 ms to stop (the first half's
	// point) can be too short for running threads on a loaded machine;
	// a refusal leaves the process untouched (checked above), so a
	// refusal for running threads is tried again, a bounded number of times.
	h2 := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	tg := Targets{FDs: fdsOn(t, h2.pid, dir)}
	for try := 1; ; try++ {
		_, err := r.Revoke(context.Background(), h2.pid, tg)
		if err == nil || !errors.Is(err, ErrNoStop) || try == 20 {
			if err != nil {
				t.Fatalf("Revoke(%d) after %d tries: %v", h2.pid, try, err)
			}
			break
		}
		t.Logf("try %d: %v", try, err)
	}
	h2.v.WaitLine(t, "read: EBADF", 5*time.Second)
}

// A signal that arrives while the process is stopped is held through the
// injection and delivered on release, with the read restarted (and
// failing with EBADF) as usual.
func TestRevokeHeldSignal(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeSignal, mkfifo(t, dir))
	r := newRevoker(t)
	r.hooks.stopped = func(pid int) { _ = unix.Kill(pid, unix.SIGUSR1) }
	revoke(t, r, h.pid, Targets{FDs: fdsOn(t, h.pid, dir)})
	h.v.WaitLine(t, "signal: user defined signal 1", 5*time.Second)
	if line := h.v.WaitLine(t, "read:", 5*time.Second); line != "read: EBADF" {
		t.Errorf("holder reported %q", line)
	}
	h.requireAlive(t)
}

// A job-control-stopped holder is revoked and stays stopped.
func TestRevokeStoppedProcess(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleFD, filepath.Join(dir, "f"), "w")
	if err := unix.Kill(h.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(h.pid, unix.SIGCONT) })
	for i := 0; state(h.pid, h.pid) != 'T'; i++ {
		if i > 200 {
			t.Fatalf("holder did not stop: state %c", state(h.pid, h.pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	fds := fdsOn(t, h.pid, dir)
	revoke(t, newRevoker(t), h.pid, Targets{FDs: fds})
	time.Sleep(50 * time.Millisecond)
	if s := state(h.pid, h.pid); s != 'T' {
		t.Errorf("holder state %c after revoke, want T (still stopped)", s)
	}
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", h.pid, fds[0])); err == nil {
		t.Errorf("fd %d still open", fds[0])
	}
	if err := unix.Kill(h.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	h.requireAlive(t)
}

// A syscall interrupted with ERESTART_RESTARTBLOCK (clock_nanosleep in
// sleep(1)) is resumed through restart_syscall: the sleep runs its full
// time and exits 0. A wrong restart would return early or fail.
func TestRevokeRestartBlock(t *testing.T) {
	sleep := testns.RequireTool(t, "sleep")
	dir := testns.Tmpfs(t, "")
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(sleep, "1.5")
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// No Wait until the revoke is done: the waiter would take the
	// tracer's stops (see testns.RoleRevokeHolder).
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitSyscall(t, cmd.Process.Pid, unix.SYS_CLOCK_NANOSLEEP)
	revoke(t, newRevoker(t), cmd.Process.Pid, Targets{FDs: []int{3}})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sleep after revoke: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("sleep 1.5 ended after %v", d)
	}
}

// waitSyscall waits until pid's main thread sits in syscall nr.
func waitSyscall(t *testing.T, pid, nr int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if strings.HasPrefix(string(b), strconv.Itoa(nr)+" ") {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d never entered syscall %d", pid, nr)
}

// With Targets.Mount, a target that is not on that mount (any more) is left
// alone and reported; the others are revoked.
func TestRevokeMountCheck(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	id, ok, err := mountOf(dir)
	if err != nil || !ok {
		t.Skipf("no unique mount ID: %v", err)
	}
	fds := fdsOn(t, h.pid, dir)
	// fd 1 is the holder's stdout, a pipe: not on the mount.
	rep, err := newRevoker(t).Revoke(context.Background(), h.pid, Targets{FDs: append([]int{1}, fds...), Mounts: []uint64{id}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Closed, fds) {
		t.Errorf("closed %v, want %v", rep.Closed, fds)
	}
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0], "fd 1") {
		t.Errorf("failed %q, want fd 1 reported", rep.Failed)
	}
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", h.pid)); err != nil {
		t.Errorf("fd 1 was touched: %v", err)
	}
	h.v.WaitLine(t, "read: EBADF", 5*time.Second) // printed through fd 1
}

// A process that has exited is ErrGone; a cancelled context stops the
// request before anything is seized.
func TestRevokeGoneAndCancelled(t *testing.T) {
	testns.Require(t, testns.Namespace)
	h := startHolder(t, testns.RoleSleep)
	r := newRevoker(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Revoke(ctx, h.pid, Targets{CwdTIDs: []int{h.pid}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Revoke: %v", err)
	}
	if st, _ := testProc.processStatus(h.pid); st.tracerPid != 0 {
		t.Errorf("cancelled Revoke traced the process")
	}
	if err := unix.Kill(h.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; alive(h.pid); i++ {
		if i > 500 {
			t.Fatal("holder did not die")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := r.Revoke(context.Background(), h.pid, Targets{CwdTIDs: []int{h.pid}}); !errors.Is(err, ErrGone) {
		t.Errorf("Revoke of an exited process: %v, want ErrGone", err)
	}
	r.Close()
	if _, err := r.Revoke(context.Background(), h.pid, Targets{CwdTIDs: []int{h.pid}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Revoke after Close: %v, want ErrClosed", err)
	}
}

// restoreRegs sets up the re-run of an interrupted syscall, and leaves
// registers alone when no syscall was interrupted or a signal is handed
// back (signal delivery then decides, by SA_RESTART).
func TestRestoreRegs(t *testing.T) {
	neg := func(v int64) uint64 { return uint64(v) }
	for _, tc := range []struct {
		name             string
		rax, orig        uint64
		exact            bool
		wantRax, wantRip uint64
	}{
		{"read ERESTARTSYS", neg(-512), 0, false, 0, 0x1000 - 2},
		{"futex ERESTARTNOINTR", neg(-513), 202, false, 202, 0x1000 - 2},
		{"pause ERESTARTNOHAND", neg(-514), 34, false, 34, 0x1000 - 2},
		{"nanosleep ERESTART_RESTARTBLOCK", neg(-516), 230, false, unix.SYS_RESTART_SYSCALL, 0x1000 - 2},
		{"syscall finished", neg(-4), 0, false, neg(-4), 0x1000},
		{"user code, rax looks like a restart", neg(-512), neg(-1), false, neg(-512), 0x1000},
		{"signal handed back", neg(-512), 0, true, neg(-512), 0x1000},
	} {
		got := restoreRegs(unix.PtraceRegs{Rax: tc.rax, Orig_rax: tc.orig, Rip: 0x1000}, tc.exact)
		if got.Rax != tc.wantRax || got.Rip != tc.wantRip || got.Orig_rax != tc.orig {
			t.Errorf("%s: rax %#x rip %#x orig %#x; want rax %#x rip %#x", tc.name, got.Rax, got.Rip, got.Orig_rax, tc.wantRax, tc.wantRip)
		}
	}
}

func TestCoverage(t *testing.T) {
	maps := []mapping{
		{start: 0x1000, end: 0x3000, inode: 7},
		{start: 0x3000, end: 0x4000, inode: 7},
		{start: 0x5000, end: 0x6000, inode: 0},
		{start: 0x6000, end: 0x7000, inode: 9},
	}
	for _, tc := range []struct {
		rg   Range
		want bool
	}{
		{Range{0x1000, 0x4000}, true},  // split by mprotect: still one file
		{Range{0x1000, 0x3000}, true},  // exactly one
		{Range{0x3000, 0x6000}, false}, // a hole
		{Range{0x5000, 0x6000}, false}, // anonymous now
		{Range{0x8000, 0x9000}, false}, // unmapped
		{Range{0x6000, 0x7000}, true},
	} {
		if got, _ := coverage(maps, tc.rg); got != tc.want {
			t.Errorf("coverage %v = %v, want %v", tc.rg, got, tc.want)
		}
	}
}

// An injected close(2) that does not return (FUSE flush to a stopped
// daemon) gives ErrStuck after the inject timeout; the Revoker serves the
// next process meanwhile, and the stuck one is restored and released, its
// fd closed, once the syscall returns.
func TestRevokeStuckInjection(t *testing.T) {
	src := testns.Tmpfs(t, "")
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := testns.Bindfs(t, src)
	h := startHolder(t, testns.RoleFD, filepath.Join(fs.Dir, "file"), "r")
	fds := fdsOn(t, h.pid, fs.Dir)
	fs.Stop(t)
	r := newRevoker(t, InjectTimeout(300*time.Millisecond))
	rep, err := r.Revoke(context.Background(), h.pid, Targets{FDs: fds})
	if !errors.Is(err, ErrStuck) {
		fs.Cont(t)
		t.Fatalf("Revoke with a close that hangs: %v, want ErrStuck (report %+v)", err, rep)
	}
	t.Logf("stuck: %v", err)
	if st, _ := testProc.processStatus(h.pid); st.tracerPid == 0 {
		t.Errorf("the stuck process is not traced any more while its syscall runs")
	}

	// Meanwhile the Revoker serves others.
	dir := testns.Tmpfs(t, "")
	h2 := startHolder(t, testns.RoleFifoRead, mkfifo(t, dir))
	revoke(t, r, h2.pid, Targets{FDs: fdsOn(t, h2.pid, dir)})
	h2.v.WaitLine(t, "read: EBADF", 5*time.Second)

	fs.Cont(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := testProc.processStatus(h.pid)
		_, ferr := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", h.pid, fds[0]))
		if st.tracerPid == 0 && ferr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the daemon resumed: tracer %d, fd %d open: %v", st.tracerPid, fds[0], ferr == nil)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.requireAlive(t)
}

// Targets.InjectTimeout overrides the Revoker's inject timeout for one
// revoke: with the Revoker at 10s, a close(2) that hangs (FUSE flush to a
// stopped daemon) is answered as stuck after the 300ms the caller asked
// for, and the StuckError says so; the process is released once the
// syscall returns.
func TestRevokeInjectTimeoutPerRevoke(t *testing.T) {
	src := testns.Tmpfs(t, "")
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := testns.Bindfs(t, src)
	h := startHolder(t, testns.RoleFD, filepath.Join(fs.Dir, "file"), "r")
	fds := fdsOn(t, h.pid, fs.Dir)
	fs.Stop(t)
	t.Cleanup(func() { _ = fs.Daemon.Signal(unix.SIGCONT) })
	r := newRevoker(t, InjectTimeout(10*time.Second))
	start := time.Now()
	_, err := r.Revoke(context.Background(), h.pid, Targets{FDs: fds, InjectTimeout: 300 * time.Millisecond})
	took := time.Since(start)
	var se *StuckError
	if !errors.As(err, &se) || se.After != 300*time.Millisecond {
		fs.Cont(t)
		t.Fatalf("Revoke with a close that hangs and InjectTimeout 300ms: %v (after %v), want a StuckError after 300ms", err, took)
	}
	t.Logf("stuck after %v: %v", took, err)
	if took > 5*time.Second {
		t.Errorf("answered after %v: the Revoker's 10s, not the revoke's 300ms", took)
	}
	fs.Cont(t)
	if released, why := testns.Released(h.pid, 5*time.Second); !released {
		t.Fatalf("after the daemon resumed the holder is left %s", why)
	}
	h.requireAlive(t)
}

// A process under seccomp: as real root the filter is suspended for the
// injection (PTRACE_O_SUSPEND_SECCOMP), so a close(2) the filter forbids
// still happens, and the filter is back afterwards. Without CAP_SYS_ADMIN
// in the initial user namespace the process is refused untouched.
func TestRevokeSeccomp(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeSeccomp, mkfifo(t, dir))
	fds := fdsOn(t, h.pid, dir)
	r := newRevoker(t)
	if !testns.IsRealRoot() {
		// The first seize finds out that suspending is not permitted.
		h0 := startHolder(t, testns.RoleFifoRead, mkfifo(t, testns.Tmpfs(t, "")))
		revoke(t, r, h0.pid, Targets{CwdTIDs: []int{h0.pid}})
		rep, err := r.Revoke(context.Background(), h.pid, Targets{FDs: fds})
		if !errors.Is(err, ErrPermission) || len(rep.Closed) > 0 {
			t.Fatalf("Revoke under seccomp without CAP_SYS_ADMIN: %v, %+v; want ErrPermission", err, rep)
		}
		t.Logf("refused: %v", err)
		if got := fdsOn(t, h.pid, dir); !slices.Equal(got, fds) {
			t.Errorf("fds now %v, were %v", got, fds)
		}
		h.requireAlive(t)
		return
	}
	revoke(t, r, h.pid, Targets{FDs: fds})
	if line := h.v.WaitLine(t, "read:", 5*time.Second); line != "read: EBADF" {
		t.Errorf("holder reported %q", line)
	}
	if st, _ := testProc.processStatus(h.pid); st.seccomp != 2 {
		t.Errorf("Seccomp: %d after revoke, want 2 (filter back on)", st.seccomp)
	}
	h.requireAlive(t)
}

// reusePID kills the tracee h, waits until its pid is free, and starts
// another tracee in role with the same pid (testns.StartTraceeAt, in a pid
// namespace of our own).
func reusePID(t *testing.T, h holder, role string, args ...string) holder {
	t.Helper()
	if err := unix.Kill(h.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.v.Wait(10 * time.Second); !ok { // the wrapper exits with it
		t.Fatal("the first holder did not exit")
	}
	v, pid := testns.StartTraceeAt(t, h.pid, role, args...)
	return holder{v: v, pid: pid}
}

// A pid reused between the scan and the revoke (issue 9.2): the targets
// carry the start time of the process they were found in, and the process
// that now has its pid is left alone (ErrReused), neither seized nor
// touched: its fd of the same number on the same mount stays open.
func TestRevokePidReused(t *testing.T) {
	if !testns.InNewPIDNamespace(t) {
		return
	}
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHolder(t, testns.RoleFD, file, "r")
	scanned, err := testProc.startTime(h.pid)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := mountOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	h2 := reusePID(t, h, testns.RoleFD, file, "r")
	// What the scan saw in the first process, with the fd numbers of the
	// second (the Go runtime's own fds may differ between the two), so
	// that only the start time tells them apart.
	targets := Targets{FDs: fdsOn(t, h2.pid, dir), StartTime: scanned, Mounts: []uint64{id}}
	rep, err := newRevoker(t).Revoke(context.Background(), h2.pid, targets)
	if !errors.Is(err, ErrReused) {
		t.Fatalf("Revoke of a reused pid: %v (report %+v), want ErrReused", err, rep)
	}
	t.Logf("refused: %v", err)
	if len(rep.Closed) > 0 || rep.Threads > 0 {
		t.Errorf("the new process was stopped or touched: %+v", rep)
	}
	if got := fdsOn(t, h2.pid, dir); !slices.Equal(got, targets.FDs) {
		t.Errorf("the new process's fds on the mount: %v, want %v untouched", got, targets.FDs)
	}
	if st, _ := testProc.processStatus(h2.pid); st.tracerPid != 0 {
		t.Errorf("the new process is traced by %d", st.tracerPid)
	}
	h2.requireAlive(t)
}

// Signals that arrive while a thread is being injected into are held and
// handed back with their siginfo (issue 9.8): two sigqueue(3)d real-time
// signals reach the victim's SA_SIGINFO handler with si_code SI_QUEUE and
// their own si_value, in order; the read still fails with EBADF.
func TestRevokeSiginfoKept(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeSiginfo, mkfifo(t, dir))
	values := []uint64{0x5151, 0x7272}
	var sent bool
	r := newRevoker(t)
	r.hooks.inject = func(pid, tid int) {
		if sent || pid != h.pid {
			return
		}
		sent = true
		for _, v := range values {
			if err := testns.SigQueue(pid, tid, v); err != nil {
				t.Error(err)
			}
		}
	}
	revoke(t, r, h.pid, Targets{FDs: fdsOn(t, h.pid, dir)})
	if !sent {
		t.Fatal("nothing was injected")
	}
	for i, v := range values {
		want := fmt.Sprintf("siginfo %d: code=-1 value=%#x", i, v)
		if line := h.v.WaitLine(t, fmt.Sprintf("siginfo %d:", i), 5*time.Second); line != want {
			t.Errorf("%q, want %q", line, want)
		}
	}
	if line := h.v.WaitLine(t, "read:", 5*time.Second); line != "read: EBADF" {
		t.Errorf("holder reported %q", line)
	}
	h.requireAlive(t)
}

// A process that can open no more fds (RLIMIT_NOFILE reached) cannot be
// handed the empty directory: its fd is left alone and the reason
// reported, rather than closed (which would free the number for reuse);
// the process runs on, still blocked in its read.
func TestRevokePlaceholderNoRoom(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	h := startHolder(t, testns.RoleRevokeFDLimit, mkfifo(t, dir))
	h.v.WaitLine(t, "limited", 5*time.Second)
	fds := fdsOn(t, h.pid, dir)
	rep, err := newRevoker(t).Revoke(context.Background(), h.pid, Targets{FDs: fds, Placeholder: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Closed) > 0 || len(rep.Failed) != len(fds) || !strings.Contains(rep.Failed[0], "EMFILE") {
		t.Errorf("report %+v: want every fd left alone with EMFILE", rep)
	}
	if got := fdsOn(t, h.pid, dir); !slices.Equal(got, fds) {
		t.Errorf("fds on the mount %v, want %v untouched", got, fds)
	}
	h.requireAlive(t)
	if slices.ContainsFunc(h.v.Seen(), func(l string) bool { return strings.HasPrefix(l, "read:") }) {
		t.Errorf("the read ended: %q", h.v.Seen())
	}
}
