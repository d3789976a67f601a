package testns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Victim is a real process started from the test binary in a helper role.
// It prints "ready" once it holds what its role says, then reports what
// happens to it ("read: EBADF", "fault", ...) one line at a time.
type Victim struct {
	PID   int
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	state *os.ProcessState
	mu    sync.Mutex
	seen  []string
}

// Victim roles, each documented where it is implemented.
const (
	RoleSleep     = "sleep"      // no args: just lives (exe and chroot tests)
	RoleFD        = "fd"         // PATH MODE(r|w|rw): holds an open fd
	RoleCwd       = "cwd"        // DIR: cwd in DIR
	RoleRoot      = "root"       // DIR: chroot(DIR)
	RoleMmap      = "mmap"       // PATH: maps the file, closes the fd
	RoleMmapTouch = "mmap-touch" // PATH: maps and reads it every 10ms, reports "fault"
	RoleLock      = "lock"       // PATH KIND(flock|posix|ofd) MODE(r|w)
	RoleFifoRead  = "fifo-read"  // PATH: blocked in read(2) on a FIFO, reports its result
	RoleThreads   = "threads"    // PATH N: N threads each blocked in read(2) on the FIFO
	RoleReopen    = "reopen"     // DIR NAME: cwd in DIR, reopens NAME by relative path
	RoleDirfd     = "dirfd"      // DIR NAME: holds a dirfd on DIR, reopens NAME through it
	RoleFDEcho    = "fd-echo"    // PATH FIFO: holds PATH open, answers each line written to FIFO with "echo: LINE" ("read": reads PATH, "read: RESULT"), reports "signal: NAME" for SIGUSR1
)

// StartVictim starts the test binary as a victim in the given role and waits
// until it is ready. It is killed (by pid) when the test ends.
func StartVictim(t testing.TB, role string, args ...string) *Victim {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return StartVictimExe(t, exe, role, args...)
}

// StartVictimExe is StartVictim running the binary at exe (a copy of the test
// binary, see CopySelf), so that the victim's executable lies on a mount.
func StartVictimExe(t testing.TB, exe, role string, args ...string) *Victim {
	t.Helper()
	return startVictim(t, exe, 0, role, args...)
}

// StartVictimInNewNS is StartVictim in a new mount namespace of its own
// (clone(2) CLONE_NEWNS): a copy of the test's, where mounts under a shared
// parent stay peers of ours (Go's Unshareflags would make them all private).
// The victim is the copy's only process, like a container's or a service's
// with PrivateTmp.
func StartVictimInNewNS(t testing.TB, role string, args ...string) *Victim {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startVictim(t, exe, unix.CLONE_NEWNS, role, args...)
}

func startVictim(t testing.TB, exe string, cloneflags uintptr, role string, args ...string) *Victim {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envVictim+"="+role)
	cmd.Stdout = w
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL, Cloneflags: cloneflags}
	if err := onSpawnThread(cmd.Start); err != nil {
		w.Close()
		r.Close()
		t.Fatalf("starting victim %s: %v", role, err)
	}
	w.Close()
	v := &Victim{PID: cmd.Process.Pid, cmd: cmd, lines: make(chan string, 256), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			v.lines <- sc.Text()
		}
		r.Close()
		close(v.lines)
	}()
	go func() {
		_ = cmd.Wait()
		v.mu.Lock()
		v.state = cmd.ProcessState
		v.mu.Unlock()
		close(v.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGCONT)
		_ = cmd.Process.Kill()
		<-v.done
	})
	if _, err := v.waitLine("ready", 15*time.Second); err != nil {
		t.Fatalf("victim %s %v: %v; stderr: %s", role, args, err, stderr.String())
	}
	return v
}

// spawnCalls carries cmd.Start calls to the spawn thread.
var (
	spawnCalls = make(chan func())
	spawnOnce  sync.Once
)

// onSpawnThread runs start on one OS thread that lives as long as the test
// process. PR_SET_PDEATHSIG (SysProcAttr.Pdeathsig) fires when the *thread*
// that forked the child exits, not the process (prctl(2)); Go ends a thread
// whenever a goroutine locked to it returns without unlocking, which is
// exactly what the setns(2) code under test does (unmount/release). A
// victim forked from such a thread would be killed at a random moment.
func onSpawnThread(start func() error) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: this thread never ends
			for call := range spawnCalls {
				call()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnCalls <- func() { errc <- start() }
	return <-errc
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// WaitLine waits for a line from the victim that starts with prefix and
// returns it; it fails the test after timeout.
func (v *Victim) WaitLine(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	line, err := v.waitLine(prefix, timeout)
	if err != nil {
		t.Fatalf("victim %d: %v (lines so far: %q)", v.PID, err, v.Seen())
	}
	return line
}

func (v *Victim) waitLine(prefix string, timeout time.Duration) (string, error) {
	v.mu.Lock()
	for _, l := range v.seen {
		if strings.HasPrefix(l, prefix) {
			v.mu.Unlock()
			return l, nil
		}
	}
	v.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-v.lines:
			if !ok {
				return "", fmt.Errorf("exited before printing %q", prefix)
			}
			v.mu.Lock()
			v.seen = append(v.seen, l)
			v.mu.Unlock()
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-timer.C:
			return "", fmt.Errorf("no line %q within %v", prefix, timeout)
		}
	}
}

// Seen returns the lines read so far.
func (v *Victim) Seen() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.seen...)
}

// Alive reports whether the victim is still running.
func (v *Victim) Alive() bool {
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// Wait waits up to timeout for the victim to exit and returns its state.
func (v *Victim) Wait(timeout time.Duration) (*os.ProcessState, bool) {
	select {
	case <-v.done:
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.state, true
	case <-time.After(timeout):
		return nil, false
	}
}

// CopySelf copies the test binary into dir (on a mount under test) so a
// victim can run with its executable there.
func CopySelf(t testing.TB, dir string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "victim.test")
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// RoleFunc is a victim role's body: it sets up what it holds, prints
// "ready", then reports what happens to it. It normally never returns.
type RoleFunc func(args []string) error

type role struct {
	nargs int
	run   RoleFunc
}

var roles = map[string]role{}

// RegisterRole adds a victim role (call it from an init func in the test
// harness or in a package's _test files). nargs is the minimum arg count.
func RegisterRole(name string, nargs int, run RoleFunc) { roles[name] = role{nargs, run} }

func init() {
	builtin := map[string]int{RoleSleep: 0, RoleFD: 2, RoleCwd: 1, RoleRoot: 1, RoleMmap: 1,
		RoleMmapTouch: 1, RoleLock: 3, RoleFifoRead: 1, RoleThreads: 2, RoleReopen: 2, RoleDirfd: 2, RoleFDEcho: 2}
	for name, n := range builtin {
		name := name
		RegisterRole(name, n, func(args []string) error { return victim(name, args) })
	}
}

// runVictim is the entry point of a victim process.
func runVictim(name string, args []string) int {
	r, ok := roles[name]
	if !ok || len(args) < r.nargs {
		fmt.Fprintf(os.Stderr, "victim: bad role %q %q\n", name, args)
		return 2
	}
	// The Go runtime makes its netpoll fds (an epoll and an eventfd) at
	// its first timer (runtime netpollGenericInit), which a role's
	// goroutine, the keep-alive or the scavenger may start at any time.
	// Made here, before the role opens anything, they never take the
	// number of an fd a test just closed in the victim: a close-plain
	// revoke's restarted read(2) then finds the fd closed (EBADF), not the
	// runtime's epoll (EINVAL), the flake of TestRevokeNoStop under load.
	// An AfterFunc timer goes on the timer heap at once (a channel timer
	// waits for a receiver).
	time.AfterFunc(time.Hour, func() {})
	if err := r.run(args); err != nil {
		fmt.Fprintf(os.Stderr, "victim %s: %v\n", name, err)
		return 1
	}
	return 0
}

// Say prints one report line from a victim role to the test.
func Say(format string, a ...any) { say(format, a...) }

// Forever blocks a victim role for good.
func Forever() { forever() }

func say(format string, a ...any) { fmt.Fprintf(os.Stdout, format+"\n", a...) }

func errName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// forever blocks for good. Not `select {}`: with no other goroutine
// runnable, Go's deadlock detector would kill the victim.
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}

func openMode(mode string) int {
	switch mode {
	case "w":
		return unix.O_WRONLY | unix.O_CREAT
	case "rw":
		return unix.O_RDWR | unix.O_CREAT
	}
	return unix.O_RDONLY
}

func victim(role string, args []string) error {
	switch role {
	case RoleSleep:
		say("ready")
		forever()
	case RoleFD:
		if _, err := unix.Open(args[0], openMode(args[1])|unix.O_CLOEXEC, 0o644); err != nil {
			return err
		}
		say("ready")
		forever()
	case RoleCwd:
		if err := unix.Chdir(args[0]); err != nil {
			return err
		}
		say("ready")
		forever()
	case RoleRoot:
		if err := unix.Chroot(args[0]); err != nil {
			return err
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
		say("ready")
		forever()
	case RoleMmap, RoleMmapTouch:
		fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		unix.Close(fd)
		say("ready")
		if role == RoleMmap {
			forever()
		}
		touchLoop(mem)
	case RoleLock:
		return lockVictim(args[0], args[1], args[2])
	case RoleFifoRead:
		fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		say("ready")
		buf := make([]byte, 16)
		_, err = unix.Read(fd, buf)
		say("read: %s", errName(err))
		forever()
	case RoleThreads:
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		var started sync.WaitGroup
		for i := 0; i < n; i++ {
			fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			started.Add(1)
			go func(i, fd int) {
				runtime.LockOSThread()
				started.Done()
				buf := make([]byte, 16)
				_, err := unix.Read(fd, buf)
				say("thread %d read: %s", i, errName(err))
				forever()
			}(i, fd)
		}
		started.Wait()
		waitBlockedThreads(n)
		say("ready")
		forever()
	case RoleReopen, RoleDirfd:
		return reopenLoop(role, args[0], args[1])
	case RoleFDEcho:
		return fdEcho(args[0], args[1])
	}
	return nil
}

// touchLoop reads the mapped page every 10ms. After a revoke replaces the
// mapping with PROT_NONE, the read faults (SIGSEGV); SetPanicOnFault turns
// the fault into a recoverable panic so the victim reports "fault" and keeps
// running, proving both the signal and the survival.
var touched atomic.Uint32

func touchLoop(mem []byte) {
	debug.SetPanicOnFault(true)
	faulted := false
	for {
		func() {
			defer func() {
				if r := recover(); r != nil && !faulted {
					faulted = true
					say("fault: %v", r)
				}
			}()
			touched.Store(uint32(mem[0])) // a real load: a discarded one is compiled away
		}()
		time.Sleep(10 * time.Millisecond)
	}
}

func lockVictim(path, kind, mode string) error {
	flags := unix.O_RDWR | unix.O_CREAT
	if mode == "r" {
		flags = unix.O_RDONLY | unix.O_CREAT
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	typ := int16(unix.F_WRLCK)
	how := unix.LOCK_EX
	if mode == "r" {
		typ, how = unix.F_RDLCK, unix.LOCK_SH
	}
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	switch kind {
	case "flock":
		err = unix.Flock(fd, how)
	case "posix":
		err = unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
	case "ofd":
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
	default:
		err = fmt.Errorf("unknown lock kind %q", kind)
	}
	if err != nil {
		return err
	}
	say("ready")
	forever()
	return nil
}

// reopenLoop keeps re-opening name, either relative to its cwd (reopen) or
// through a directory fd it holds (dirfd): the straggler a fence cannot stop.
// It holds each file for 50ms, and reports each change of outcome.
func reopenLoop(role, dir, name string) error {
	dirfd := unix.AT_FDCWD
	if role == RoleReopen {
		if err := unix.Chdir(dir); err != nil {
			return err
		}
	} else {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		dirfd = fd
	}
	last := ""
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		outcome := errName(err)
		if outcome != last {
			if last == "" {
				say("ready")
			}
			say("open: %s", outcome)
			last = outcome
		}
		time.Sleep(50 * time.Millisecond)
		if err == nil {
			unix.Close(fd)
		}
	}
}

// waitBlockedThreads waits (up to 5s) until n of this process's threads sit
// in read(2), as /proc/self/task/*/syscall tells.
func waitBlockedThreads(n int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := os.ReadDir("/proc/self/task")
		blocked := 0
		for _, task := range tasks {
			b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
			if strings.HasPrefix(string(b), "0 ") { // __NR_read on x86_64
				blocked++
			}
		}
		if blocked >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fdEcho holds path open and answers every line written to the FIFO with
// "echo: LINE", showing that the process still runs and does what it did;
// the line "read" has it read(2) the held file first (on a stopped FUSE
// daemon: blocked in the filesystem) and report "read: RESULT". Each
// SIGUSR1 it gets is reported as "signal: NAME".
func fdEcho(path, fifo string) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGUSR1)
	go func() {
		for sig := range sigs {
			say("signal: %v", sig)
		}
	}()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// O_RDWR: the open does not wait for a writer, and the read never
	// sees end-of-file between writers.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	say("ready")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == "read" {
			_, err := unix.Pread(fd, make([]byte, 1), 0)
			say("read: %s", errName(err))
		}
		say("echo: %s", sc.Text())
	}
	return sc.Err()
}
