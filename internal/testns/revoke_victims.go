package testns

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Victim roles for the revoke (ptrace injection) tests.
const (
	// RoleRevokeHolder ROLE ARGS...: runs ROLE as its own child and
	// reports "holder: PID" first. The holder then is no child of the test
	// process. That matters when the test process also traces it: for a
	// tracee whose real parent is in the tracer's thread group, the kernel
	// reports ptrace stops to every waiter in that group
	// (wait_consider_task: "pretend the caller is ptrace_do_wait"), so
	// exec.Cmd.Wait's waitid(P_PIDFD, WEXITED) in StartVictim would reap
	// the tracer's stops and take the process for exited.
	RoleRevokeHolder = "revoke-holder"
	// RoleRevokeMmapTouch is RoleMmapTouch: maps the file, closes the fd,
	// reads the page every 10ms, reports "fault: ..." after SIGSEGV and
	// keeps running.
	RoleRevokeMmapTouch = RoleMmapTouch
	// RoleRevokeVfork: one thread sits in vfork(2) waiting for a child
	// that never execs or exits; it sleeps uninterruptibly (D state) and
	// cannot reach a ptrace stop. Reports "vfork child: PID", then
	// "ready"; "vfork returned" once the child is killed.
	RoleRevokeVfork = "revoke-vfork"
	// RoleRevokeSpawner FIFO: one thread blocked in read(2) on the FIFO
	// while others are created and exit all the time. Reports
	// "read: ERRNO", then "spawned N more" once N more threads came and
	// went after the read ended.
	RoleRevokeSpawner = "revoke-spawner"
	// RoleRevokeCwdThread DIR: one thread unshares its filesystem
	// attributes (unshare(CLONE_FS)) and chdirs into DIR; the others stay
	// where they are. Reports "tid: TID" of that thread, then "ready".
	RoleRevokeCwdThread = "revoke-cwd-thread"
	// RoleRevokeSignal FIFO: blocked in read(2) on the FIFO, with a SIGUSR1
	// handler; reports "signal: NAME" for each SIGUSR1 and "read: ERRNO".
	RoleRevokeSignal = "revoke-signal"

	// RoleRevokeSeccomp FIFO: blocked in read(2) on the FIFO under a
	// seccomp filter (all threads) that fails close(2) with EPERM; reports
	// "read: ERRNO".
	RoleRevokeSeccomp = "revoke-seccomp"

	// RoleRevokeChrootCwd ROOT DIR: chroot(ROOT), then chdir(DIR), DIR
	// taken inside the new root; reports "ready".
	RoleRevokeChrootCwd = "revoke-chroot-cwd"

	// RoleRevokeLogger LOG RECORDS: a process that logs to a file on the
	// target while it writes records elsewhere, as in the fd-reuse attack:
	// opens LOG (append) and reports "log fd: N", then over and over opens
	// RECORDS/rec-I, writes "DB RECORD I" to it, writes "LOG line I" to
	// the log fd, closes the record. It reports "log write: ERRNO" the
	// first time a log write fails, and "done" 50 records later.
	RoleRevokeLogger = "revoke-logger"
	// RoleRevokeCwdWriter ROOT DIR: chroot(ROOT), chdir(DIR) (inside the
	// new root), then creates probe-I by relative path every few
	// milliseconds, reporting "created" after the first and, once a create
	// fails, "create failed: ERRNO" and "getcwd: PATH" (the raw getcwd(2)
	// result), and stops.
	RoleRevokeCwdWriter = "revoke-cwd-writer"
	// RoleRevokeFlip PATH OTHER: opens PATH and reports "fd: N"; on
	// SIGUSR1 puts OTHER on that number (dup2) and reports "flipped".
	RoleRevokeFlip = "revoke-flip"
	// RoleRevokeFDLimit FIFO: blocked in read(2) on the FIFO, with its
	// RLIMIT_NOFILE lowered to its lowest free fd number, so it can open
	// nothing more (EMFILE); reports "read: ERRNO".
	RoleRevokeFDLimit = "revoke-fd-limit"

	// RoleRevokeThreadFiles FILE: one thread does unshare(CLONE_FILES)
	// and then opens FILE read-write, so the fd is in that thread's table
	// only (the leader holds nothing); it reports "tid: T", "fd: N",
	// "ready", then reads the fd every 20 ms and says "read: ERRNO" once
	// a read fails.
	RoleRevokeThreadFiles = "revoke-thread-files"
	// RoleRevokeLeaderExit DIR FILE: a thread chdirs to DIR, opens FILE
	// and maps its first page, then the main thread (tid == pid) ends with SYS_exit, leaving
	// the leader a zombie while that thread runs on; it reports "tid: T",
	// "fd: N", "leader exiting", and "read: ERRNO" once a read fails.
	RoleRevokeLeaderExit = "revoke-leader-exit"

	// roleKeepAlive ROLE ARGS...: what the holder runs: ROLE, with a
	// goroutine that always has a timer pending. Roles that end in
	// forever() (select {}) would otherwise die of Go's deadlock detector
	// ("all goroutines are asleep") once the syscall they were blocked in
	// returns, e.g. with the EBADF a revoke gives them.
	roleKeepAlive = "revoke-keepalive"
)

func init() {
	RegisterRole(RoleRevokeHolder, 1, revokeHolder)
	RegisterRole(roleKeepAlive, 1, keepAlive)
	RegisterRole(RoleRevokeVfork, 0, revokeVfork)
	RegisterRole(RoleRevokeSpawner, 1, revokeSpawner)
	RegisterRole(RoleRevokeCwdThread, 1, revokeCwdThread)
	RegisterRole(RoleRevokeSignal, 1, revokeSignal)
	RegisterRole(RoleRevokeSeccomp, 1, revokeSeccomp)
	RegisterRole(RoleRevokeChrootCwd, 2, revokeChrootCwd)
	RegisterRole(RoleRevokeLogger, 2, revokeLogger)
	RegisterRole(RoleRevokeCwdWriter, 2, revokeCwdWriter)
	RegisterRole(RoleRevokeFlip, 2, revokeFlip)
	RegisterRole(RoleRevokeFDLimit, 1, revokeFDLimit)
	RegisterRole(RoleRevokeThreadFiles, 1, revokeThreadFiles)
	RegisterRole(RoleRevokeLeaderExit, 2, revokeLeaderExit)
	// RoleRevokeLeaderExit ends the main thread from the main goroutine:
	// LockOSThread in init keeps main on the main thread (runtime docs).
	if os.Getenv(envVictim) == RoleRevokeLeaderExit || os.Getenv(envVictim) == roleKeepAlive && len(os.Args) > 1 && os.Args[1] == RoleRevokeLeaderExit {
		runtime.LockOSThread()
	}
}

// readUntilFails reads fd every 20 ms until a read fails, says how, and
// sleeps on. It sleeps with nanosleep(2), not a Go timer, so that a thread
// with an fd table of its own never touches the runtime's netpoll fd.
func readUntilFails(fd int) {
	buf := make([]byte, 1)
	pause := unix.NsecToTimespec(int64(20 * time.Millisecond))
	failed := false
	for {
		if _, err := unix.Pread(fd, buf, 0); err != nil && !failed {
			say("read: %s", errName(err))
			failed = true
		}
		_ = unix.Nanosleep(&pause, nil)
	}
}

func revokeThreadFiles(args []string) error {
	runtime.LockOSThread() // the main goroutine keeps the shared table
	// The runtime's epoll fd is made on first use: make it now, in the
	// shared table, not later in the thread's own.
	time.Sleep(time.Millisecond)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread's fd table is its own
		if err := unix.Unshare(unix.CLONE_FILES); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		say("tid: %d", unix.Gettid())
		say("fd: %d", fd)
		say("ready")
		readUntilFails(fd)
	}()
	return <-errc
}

func revokeLeaderExit(args []string) error {
	if unix.Gettid() != os.Getpid() {
		return fmt.Errorf("the main goroutine runs on thread %d, not the main thread %d", unix.Gettid(), os.Getpid())
	}
	errc := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := unix.Chdir(args[0]); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Open(args[1], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		if _, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ, unix.MAP_SHARED); err != nil {
			errc <- err
			return
		}
		say("tid: %d", unix.Gettid())
		say("fd: %d", fd)
		close(ready)
		readUntilFails(fd)
	}()
	select {
	case err := <-errc:
		return err
	case <-ready:
	}
	say("leader exiting")
	say("ready")
	// exit(2) ends this thread only; the leader stays a zombie until the
	// last thread exits. Syscall (not RawSyscall) so the runtime counts
	// this thread as in a syscall for good and never waits for it.
	_, _, e := syscall.Syscall(unix.SYS_EXIT, 0, 0, 0)
	return e
}

func revokeHolder(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	// The holder dies with the thread that started it (PR_SET_PDEATHSIG
	// is per thread); keep that thread for good.
	runtime.LockOSThread()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envVictim+"="+roleKeepAlive)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if last := os.Getenv(envLastPID); last != "" {
		// StartTraceeAt: the pid to count on from.
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(last), 0); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	say("holder: %d", cmd.Process.Pid)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	return err
}

func keepAlive(args []string) error {
	r, ok := roles[args[0]]
	if !ok || len(args)-1 < r.nargs {
		return fmt.Errorf("bad role %q %q", args[0], args[1:])
	}
	go func() {
		for {
			time.Sleep(time.Hour)
		}
	}()
	return r.run(args[1:])
}

func revokeVfork(args []string) error {
	// The vfork thread is in a raw syscall the scheduler cannot preempt,
	// so a stop-the-world would wait for it forever: no GC in this role.
	debug.SetGCPercent(-1)
	child := make(chan uintptr, 1)
	go func() {
		runtime.LockOSThread()
		pid, errno := vforkPause(child)
		if errno != 0 {
			say("vfork: %v", errno)
			return
		}
		say("vfork returned: child %d", pid)
	}()
	pid := <-child
	say("vfork child: %d", pid)
	// Wait until the vfork parent thread really sleeps in D state.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if threadInState('D') {
			say("ready")
			forever()
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("no thread in D state")
}

// vforkPause vforks a child (clone(CLONE_VFORK) without CLONE_VM, so the
// child runs on its own copy of the memory) that pauses for good: the
// calling thread then waits in wait_for_vfork_done, killable but not
// interruptible. The child cannot tell the parent anything (it writes only
// its own copy of memory), so a goroutine finds it in /proc and sends its
// pid on c.
//
//go:norace
func vforkPause(c chan<- uintptr) (uintptr, syscall.Errno) {
	go func() {
		// Find the child from the outside: the only child of this
		// process in /proc/self/task/*/children.
		for {
			tasks, _ := os.ReadDir("/proc/self/task")
			for _, task := range tasks {
				b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
				var pid uintptr
				if _, err := fmt.Sscan(string(b), &pid); err == nil && pid != 0 {
					c <- pid
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return vforkRaw()
}

// vforkRaw is the clone itself. The child runs only raw syscalls on its
// copy of the stack: it never returns into the Go runtime.
//
//go:norace
//go:nosplit
func vforkRaw() (uintptr, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, syscall.CLONE_VFORK|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
		for {
			syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0) // ppoll(NULL, 0, NULL, NULL): sleeps until a signal
		}
	}
	return pid, errno
}

// threadInState reports whether a thread of this process is in state s
// (/proc/self/task/*/stat, the field after the command).
func threadInState(s byte) bool {
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		for i := len(b) - 1; i > 0; i-- {
			if b[i] == ')' {
				if i+2 < len(b) && b[i+2] == s {
					return true
				}
				break
			}
		}
	}
	return false
}

func revokeSpawner(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	var spawned atomic.Int64
	go func() {
		for {
			done := make(chan struct{})
			go func() {
				// A goroutine that ends locked takes its thread with it,
				// so every round creates and ends one OS thread.
				runtime.LockOSThread()
				close(done)
			}()
			<-done
			spawned.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	for spawned.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	say("read: %s", errName(<-readBlocked(fd)))
	after := spawned.Load()
	for spawned.Load() < after+20 {
		time.Sleep(time.Millisecond)
	}
	say("spawned %d more", spawned.Load()-after)
	forever()
	return nil
}

func revokeCwdThread(args []string) error {
	// Keep the main thread to the main goroutine, so the thread below is
	// another one.
	runtime.LockOSThread()
	tid := make(chan int)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread's fs is its own
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- err
			return
		}
		if err := unix.Chdir(args[0]); err != nil {
			errc <- err
			return
		}
		tid <- unix.Gettid()
		forever()
	}()
	select {
	case err := <-errc:
		return err
	case t := <-tid:
		say("tid: %d", t)
	}
	say("ready")
	forever()
	return nil
}

func revokeSignal(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGUSR1)
	go func() {
		for s := range sigs {
			say("signal: %v", s)
		}
	}()
	say("read: %s", errName(<-readBlocked(fd)))
	forever()
	return nil
}

func revokeSeccomp(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// seccomp(2): load the syscall number; close -> EPERM; else allow.
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_CLOSE},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&prog))); e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	say("read: %s", errName(<-readBlocked(fd)))
	forever()
	return nil
}

func revokeChrootCwd(args []string) error {
	if err := unix.Chroot(args[0]); err != nil {
		return err
	}
	if err := unix.Chdir(args[1]); err != nil {
		return err
	}
	say("ready")
	forever()
	return nil
}

func revokeLogger(args []string) error {
	logFD, err := unix.Open(args[0], unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	say("log fd: %d", logFD)
	say("ready")
	failedAt := -1
	for i := 0; failedAt < 0 || i < failedAt+50; i++ {
		// Raw calls, as a C program makes them: the lowest free number
		// for each open (open(2)).
		rec, err := unix.Open(fmt.Sprintf("%s/rec-%d", args[1], i), unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		if _, err := unix.Write(rec, []byte(fmt.Sprintf("DB RECORD %d\n", i))); err != nil {
			return err
		}
		if _, err := unix.Write(logFD, []byte(fmt.Sprintf("LOG line %d\n", i))); err != nil && failedAt < 0 {
			failedAt = i
			say("log write: %s", errName(err))
		}
		unix.Close(rec)
		time.Sleep(2 * time.Millisecond)
	}
	say("done")
	forever()
	return nil
}

func revokeCwdWriter(args []string) error {
	if err := unix.Chroot(args[0]); err != nil {
		return err
	}
	if err := unix.Chdir(args[1]); err != nil {
		return err
	}
	say("ready")
	for i := 0; ; i++ {
		fd, err := unix.Open(fmt.Sprintf("probe-%d", i), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			say("create failed: %s", errName(err))
			buf := make([]byte, 4096)
			n, err := unix.Getcwd(buf)
			if err != nil {
				say("getcwd: %s", errName(err))
			} else {
				say("getcwd: %s", strings.TrimRight(string(buf[:n]), "\x00"))
			}
			forever()
		}
		unix.Close(fd)
		if i == 0 {
			say("created")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func revokeFlip(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGUSR1)
	say("fd: %d", fd)
	say("ready")
	<-sigs
	other, err := unix.Open(args[1], unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Dup3(other, fd, unix.O_CLOEXEC); err != nil {
		return err
	}
	unix.Close(other)
	say("flipped")
	forever()
	return nil
}

func revokeFDLimit(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	read := readBlocked(fd) // says "ready"
	free, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.Close(free)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = uint64(free) // every new fd would be >= free: EMFILE
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	say("limited")
	say("read: %s", errName(<-read))
	forever()
	return nil
}

// StartTracee starts a victim in role that is not a child of the test
// process (RoleRevokeHolder): a test that ptraces it must not be its
// parent, or exec.Cmd.Wait takes the ptrace stops. It returns the wrapper
// (whose lines carry the victim's) and the victim's pid.
func StartTracee(t testing.TB, role string, args ...string) (*Victim, int) {
	t.Helper()
	v := StartVictim(t, RoleRevokeHolder, append([]string{role}, args...)...)
	line := v.WaitLine(t, "holder:", 5*time.Second)
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "holder:")))
	if err != nil {
		t.Fatalf("holder line %q: %v", line, err)
	}
	return v, pid
}

// envLastPID is what RoleRevokeHolder writes to ns_last_pid before it
// forks (StartTraceeAt).
const envLastPID = "MOUNTTOP_TEST_LAST_PID"

// StartTraceeAt is StartTracee with the victim under pid, which must be
// free: only possible as root of a pid namespace of our own
// (InNewPIDNamespace), where the wrapper writes a pid just below to
// /proc/sys/kernel/ns_last_pid (pid_namespaces(7)) right before it forks.
// The threads the wrapper's runtime starts in between take pids too (one,
// as measured), so it tries from pid-1 downwards.
func StartTraceeAt(t *testing.T, pid int, role string, args ...string) (*Victim, int) {
	t.Helper()
	for try := 0; try < 12; try++ {
		t.Setenv(envLastPID, strconv.Itoa(pid-1-try%4))
		v, got := StartTracee(t, role, args...)
		if got == pid {
			return v, got
		}
		_ = unix.Kill(got, unix.SIGKILL)
		v.Wait(10 * time.Second)
	}
	t.Fatalf("could not start a process with pid %d", pid)
	return nil, 0
}

// Alive reports whether pid exists and is not a zombie (for processes that
// are not our children, whose exit we cannot wait for).
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// readBlocked starts a read(2) of fd on a thread of its own, waits until
// that thread is blocked in it, says "ready", and returns where the read's
// result will arrive.
func readBlocked(fd int) <-chan error {
	read := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		_, err := unix.Read(fd, make([]byte, 16))
		read <- err
	}()
	waitBlockedThreads(1)
	say("ready")
	return read
}
