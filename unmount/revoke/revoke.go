// Package revoke takes a mount away from the processes that hold it while
// they keep running: the "revoke" stage of mounttop's staged forced unmount,
// done from userspace the way the never-merged fumount patch did it in the
// kernel. After a revoke the holder's fds on the mount give EBADF (each
// number covered by a placeholder, or closed), its file mappings there
// fault (SIGSEGV), and its threads' working directories are an empty
// read-only directory that belongs to no mounted tree.
//
// It works by ptrace(2) syscall injection. Every thread of the process is
// seized (PTRACE_SEIZE) and stopped (PTRACE_INTERRUPT), because a thread
// blocked in read(2) holds its own reference to the file: closing the fd
// from another thread does not wake it, interrupting it does, and when the
// interrupted read is restarted it finds the fd gone and returns EBADF. The
// syscalls (dup3, close, mmap, fchdir) are then run inside the process
// through a `syscall` instruction found in its [vdso], with its registers
// saved before and restored after, and every thread is detached.
//
// It acts only on what the caller inspected. Targets carry the process's
// start time, checked before seizing and again once every thread is
// stopped (a reused pid is ErrReused, the new process left alone), and the
// mounts they were found on: each fd, mapping and cwd is checked against
// them once nothing can change any more, and one that moved elsewhere is
// left alone and reported.
//
// The empty directory is a detached read-only tmpfs (fsmount(2), never
// attached), one per Revoker. A process, usually not root, may not take an
// fd from mounttop (pidfd_getfd(2) needs ptrace rights over it), so the fd
// is handed in as SCM_RIGHTS through a socketpair made in the process.
// Placeholders are O_PATH fds of it: read(2) and write(2) give EBADF, the
// number stays taken (the next open(2) gets another, so nothing meant for
// the old file lands in a new one), and paths relative to it find nothing
// (ENOENT) and create nothing (EROFS), as from a moved cwd; ".." stays in
// it.
//
// ptrace requests are bound to the tracer thread (ptrace(2): "the tracer"
// is a thread), so a Revoker owns goroutines each locked to an OS thread
// (Workers, 8 by default), and every ptrace call to a process comes from
// the one thread that seized it; requests reach them over a channel, and
// several processes are revoked at once, each by one thread.
//
// mounttop does not trace from its own process: a Tracer runs the Revoker
// in a tracer process, this program re-executed from /proc/self/exe
// (TracerMain is its entry point), and talks to it over a socketpair. A
// tracee inside an injected syscall cannot be handed back until the call
// returns; if its tracer exits first, the tracee returns into the
// single-step trap and dies of SIGTRAP (DESIGN.md, "Dead servers"). The
// tracer process outlives mounttop for exactly that case: when mounttop
// goes away, however (its connection's end is closed by the kernel even on
// SIGKILL), the tracer process takes no new request, waits for every
// injected call to return, restores registers, hands back held signals,
// detaches, and only then exits. It runs in a session of its own, with no
// parent-death signal, cwd "/" and no inherited fds, and SIGINT, SIGTERM
// and SIGHUP only make it stop taking requests. Idle, it exits as soon as
// mounttop closes the connection.
//
// Limits, all kernel behaviour:
//   - Stopping a process wakes its interruptible sleeps, as strace -p does.
//     Syscalls that restart (read, futex, nanosleep, ...) are re-run
//     transparently; those the kernel never restarts (epoll_wait, poll and
//     select with a timeout) return EINTR once, which programs handle.
//   - A thread in uninterruptible sleep (D state: a hung filesystem,
//     vfork) cannot be stopped: ErrNoStop, the process untouched. An
//     injected syscall that blocks (close(2) flushing to a dead server)
//     keeps the process stopped until it returns: a *StuckError names
//     the call, its fd and the filesystem's server ("left inside
//     close(fd 7), waiting on the FUSE server"), and the process is
//     restored when the call returns (Restored).
//   - fds are taken in the main thread's fd table; a thread that
//     unshared it (unshare(CLONE_FILES)) keeps its own.
//   - A signal that arrives while the process is stopped is held and
//     handed back on release with its siginfo. Of several held by one
//     thread, those the kernel would not accept from another process with
//     their siginfo (kill(2), tgkill(2) and kernel-sent ones after the
//     first: rt_tgsigqueueinfo(2) refuses a non-negative si_code) go back
//     by tgkill, their sender shown as mounttop.
//   - A process whose fd limit is reached, or whose LSM policy refuses it
//     a unix socket, cannot be handed the empty directory: its fds and
//     cwds are then left alone and reported (with placeholders off, its
//     fds are still closed).
//   - The start time has clock-tick resolution (USER_HZ, 10ms): a pid
//     reused within the same tick by a new process is not told apart.
//   - Only 64-bit x86 processes. A process under seccomp is revoked only
//     where PTRACE_O_SUSPEND_SECCOMP is permitted (CAP_SYS_ADMIN in the
//     initial user namespace), since an injected syscall could trip its
//     filter.
//   - A process whose executable or root directory is on the mount keeps
//     the mount busy whatever is revoked; the caller signals those instead.
//   - A process calling Revoker.Revoke must not itself wait(2) for a
//     process it revokes (its own child): the kernel reports a traced
//     child's ptrace stops to any waiter in the tracer's thread group,
//     and that waiter would take them. Through a Tracer this does not
//     arise: the tracer is another process.
//   - The tracer process itself can still be killed (SIGKILL by hand, the
//     OOM killer); a process it then held inside an injected syscall dies
//     of SIGTRAP when the call returns. Nothing in mounttop kills it.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Range is a mapping's address range [Start, End), page aligned, as in
// /proc/PID/maps (proc(5)).
type Range struct{ Start, End uint64 }

// defaultProcRoot is the /proc of the tracer's own pid namespace.
const defaultProcRoot = "/proc"

func (r Range) String() string { return fmt.Sprintf("%x-%x", r.Start, r.End) }

// Targets is what to take away from one process. It is a plain value of
// exported fields, so it can be sent to a revoker in another process.
type Targets struct {
	FDs  []int   // fds to take away (the fd table is shared by threads: done once)
	Maps []Range // file mappings to replace with PROT_NONE anonymous memory
	// ThreadFDs are fds in the fd table of one thread: a thread that did
	// unshare(CLONE_FILES) (unshare(2)) has a table no other thread
	// reaches, so its fds are taken away by syscalls injected into that
	// thread; and when the leader has exited (a zombie leader with live
	// threads) the process's fds are only reachable through them.
	ThreadFDs []ThreadFDs
	// CwdTIDs are the threads (TID; the pid itself for the main thread)
	// whose cwd is on the mount; each is moved into the Revoker's empty
	// directory (see Placeholder). Threads that called unshare(CLONE_FS)
	// have a cwd of their own, so every listed thread is done, not just
	// one.
	CwdTIDs []int
	// Placeholder: instead of closing each fd, dup3(2) an O_PATH fd of the
	// Revoker's empty directory over it. The number stays taken, so the
	// process's next open(2) gets another one and nothing it writes to the
	// old number lands in a file it opened since (the lowest free number
	// is reused, open(2)); read(2) and write(2) on it give EBADF, as on
	// any O_PATH fd. Without it the fd is closed and the number is free.
	//
	// The empty directory is the root of a tiny read-only tmpfs made with
	// fsopen(2)/fsmount(2) (MOUNT_ATTR_RDONLY) and never attached
	// anywhere: it belongs to no mounted tree, so paths relative to it
	// lead nowhere (creates give EROFS, lookups ENOENT), and ".." from it
	// stays in it.
	Placeholder bool
	// StartTime, if non-zero, is the process's start time as the scan that
	// found these targets read it: /proc/PID/stat field 22 (starttime,
	// clock ticks after boot, proc(5)), fixed for the life of a process.
	// The pid is checked against it before seizing and again once every
	// thread is stopped (a traced process cannot be reaped, so its pid
	// cannot change hands meanwhile); a pid that now names a process
	// started at another time is ErrReused, that process left alone.
	StartTime uint64
	// Mounts are the unique mount IDs (statx(2) STATX_MNT_ID_UNIQUE) of
	// every mount the caller targets: the mount, its submounts. CopyIDs
	// are copies of them in other mount namespaces, whose unique IDs a
	// scan of /proc/PID/mountinfo does not learn, by their reusable ID
	// (mountinfo field 1, statx STATX_MNT_ID): those come from one
	// system-wide allocator, so while a copy is mounted its ID names it
	// alone. Once every thread is stopped, so nothing can change any
	// more, each fd, cwd and (where /proc/PID/map_files is readable:
	// CAP_SYS_ADMIN) mapping is checked against them again; one that no
	// longer lies on any of them (the process closed the fd and the number
	// was reused, or dup2'd another file over it) is left alone and
	// reported in Failed. Both empty trusts the caller's scan.
	Mounts  []uint64
	CopyIDs []int
	// InjectTimeout, if positive, is how long this revoke's injected
	// syscalls may take before the caller gets a *StuckError, in place of
	// the Revoker's InjectTimeout: a caller with a deadline of its own (a
	// staged run's --timeout) gets its answer before it, and its
	// CallTimeout, not the Revoker's 10s, is how long a call that waits on
	// a dead server holds it up.
	InjectTimeout time.Duration
}

// ThreadFDs are fds of the fd table thread TID uses.
type ThreadFDs struct {
	TID int
	FDs []int
}

func (t Targets) empty() bool {
	return len(t.FDs) == 0 && len(t.Maps) == 0 && len(t.CwdTIDs) == 0 && len(t.ThreadFDs) == 0
}

// Report is what was done to one process.
type Report struct {
	PID    int
	Closed []int // fds taken away (closed, or covered by a placeholder)
	// Placeholder: the fds in Closed got a placeholder (Targets.Placeholder)
	// rather than a plain close.
	Placeholder bool
	Unmapped    []Range // ranges now PROT_NONE anonymous memory
	Chdir       []int   // threads moved into the empty directory
	Threads     int     // threads that were stopped for the revoke
	Duration    time.Duration
	Failed      []string // per-item failures, in words ("close fd 7: EBADF")
	Notes       []string // what the operator should know but is no failure
}

// Refusal reasons; Revoke wraps them with the details, test with errors.Is.
var (
	// ErrTraced: the process is already being traced (strace, gdb, a
	// debugger): a thread can have only one tracer (ptrace(2) EPERM).
	// Nothing was changed.
	ErrTraced = errors.New("already traced by another process")
	// ErrNoStop: a thread did not reach a ptrace stop within the stop
	// timeout, typically because it sleeps uninterruptibly (D state: a
	// hung filesystem, vfork). Every thread was released untouched.
	ErrNoStop = errors.New("did not stop in time (uninterruptible sleep?)")
	// ErrGone: the process exited (before or while being revoked).
	ErrGone = errors.New("process exited")
	// ErrReused: the pid names another process than the one the targets
	// were found in (Targets.StartTime): the scanned one exited and its
	// pid was given to a new process, which was left alone.
	ErrReused = errors.New("pid reused by another process")
	// ErrPermission: not allowed to trace the process, or to inject into it
	// safely (a seccomp filter that PTRACE_O_SUSPEND_SECCOMP could not be
	// used to suspend; a 32-bit process).
	ErrPermission = errors.New("not permitted")
	// ErrStuck: an injected syscall did not return within the inject
	// timeout (close(2) flushing to a dead NFS or FUSE server); Revoke
	// returns it as a *StuckError naming the call. The process stays
	// stopped until the call returns; then the rest of its revoke is done,
	// its registers are restored and it is released by a tracer thread of
	// its own, while the Revoker carries on with a new one.
	ErrStuck = errors.New("an injected syscall did not return")
	// ErrClosed: the Revoker was closed.
	ErrClosed = errors.New("revoker closed")
	// ErrUnsupported: syscall injection is implemented for linux/amd64 only.
	ErrUnsupported = errors.New("revoke by syscall injection is not supported on this platform")
)

// Option sets a parameter of a Revoker or a Tracer.
type Option func(*config)

type config struct {
	stopTimeout   time.Duration
	injectTimeout time.Duration
	workers       int
	procRoot      string
	restored      func(Restore)
	log           *os.File // Tracer only: where the tracer process writes what it did
}

func newConfig(opts []Option) config {
	c := config{stopTimeout: 2 * time.Second, injectTimeout: 10 * time.Second, workers: DefaultWorkers, procRoot: defaultProcRoot}
	for _, o := range opts {
		o(&c)
	}
	c.workers = max(c.workers, 1)
	return c
}

// DefaultWorkers is how many processes a Revoker revokes at once unless
// told otherwise (Workers).
const DefaultWorkers = 8

// Workers is how many processes a Revoker revokes at once (default
// DefaultWorkers, at least 1): each on a tracer thread of its own, since
// ptrace requests are bound to the thread that seized the tracee
// (ptrace(2)). A revoke spends most of its time waiting for its process
// to run (to reach the stop, then once per injected syscall), so several
// at once overlap those waits; each process is still revoked by one
// thread from seize to detach, with the same checks, and one process is
// never revoked by two at once.
func Workers(n int) Option { return func(c *config) { c.workers = n } }

// ProcRoot is the proc(5) filesystem the tracees are read in (default
// /proc, the tracer's own pid namespace's), as inspect.New takes its root.
func ProcRoot(dir string) Option { return func(c *config) { c.procRoot = dir } }

// StopTimeout is how long every thread of a process gets to reach a ptrace
// stop after PTRACE_INTERRUPT (default 2s). A thread in uninterruptible
// sleep never gets there; the process is released and Revoke returns
// ErrNoStop.
func StopTimeout(d time.Duration) Option { return func(c *config) { c.stopTimeout = d } }

// InjectTimeout is how long one injected syscall may take before Revoke
// gives up waiting on it and returns a *StuckError (default 10s).
func InjectTimeout(d time.Duration) Option { return func(c *config) { c.injectTimeout = d } }

// Restored sets fn to be called when a process whose revoke was answered
// with a *StuckError has come out of the injected syscall, had the rest of
// its revoke done, and been released: the end of that revoke. fn must not
// block for long.
func Restored(fn func(Restore)) Option { return func(c *config) { c.restored = fn } }

// Restore is the late end of a revoke that was answered with a *StuckError.
type Restore struct {
	PID    int
	Stuck  *StuckError // what it was left inside
	Report Report      // everything done to it, the stuck call included
	Err    error       // the revoke's error once the call returned; nil if it completed
}

func (r Restore) String() string {
	s := fmt.Sprintf("process %d came out of %s(%s) and was restored and released", r.PID, r.Stuck.Syscall, r.Stuck.Arg)
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Revoker revokes processes' use of a mount, up to Workers processes at a
// time, each from one OS thread that makes every ptrace call to it. It is
// safe for concurrent use; requests beyond that wait their turn. It runs in the process that calls it: if
// that process dies while a tracee is inside an injected syscall, the
// tracee dies too (of SIGTRAP, once the call returns). mounttop therefore
// runs it in a tracer process of its own (Tracer, TracerMain).
type Revoker struct {
	config

	reqs   chan *request
	done   chan struct{}
	once   sync.Once
	active sync.WaitGroup // tracer goroutines serving reqs

	// mu guards busy, serving and stuck. busy counts the revokes taken up
	// and not yet ended (released, or left to the kernel by a retired
	// thread's exit); serving are their processes, by pid, so that no two
	// tracer threads revoke one process at once (the second waits for the
	// first to end); stuck are the processes among them whose revoke was
	// answered with a *StuckError.
	mu      sync.Mutex
	idle    *sync.Cond
	busy    int
	serving map[int]bool
	stuck   map[int]*StuckError

	// seccompSuspend remembers whether PTRACE_O_SUSPEND_SECCOMP is
	// permitted (it needs CAP_SYS_ADMIN in the initial user namespace):
	// 0 not yet known, 1 yes, 2 no.
	seccompSuspend atomic.Int32

	wakeups *wakeups // SIGCHLD, handed on to the sessions waiting for a stop

	hooks testHooks // tests only

	vdsoMu    sync.Mutex
	vdsoCache map[uint64]uint64 // [vdso] size -> offset of a syscall instruction

	emptyMu  sync.Mutex
	emptyDir *os.File // the empty read-only directory on no mounted tree, made on first use (Targets.Placeholder)
}

type request struct {
	ctx     context.Context
	pid     int
	targets Targets
	reply   chan result
}

type result struct {
	rep Report
	err error
}

// New starts a Revoker's tracer threads (Workers).
func New(opts ...Option) *Revoker {
	r := &Revoker{
		config:    newConfig(opts),
		reqs:      make(chan *request),
		done:      make(chan struct{}),
		serving:   map[int]bool{},
		stuck:     map[int]*StuckError{},
		vdsoCache: map[uint64]uint64{},
	}
	r.idle = sync.NewCond(&r.mu)
	r.wakeups = newWakeups()
	for i := 0; i < r.workers; i++ {
		r.startTracer()
	}
	return r
}

// Close stops taking requests and returns once the one being served, if
// any, is done and every process left inside an injected syscall
// (*StuckError) has come out of it and been restored and released, however
// long that takes: the process cannot be handed back before (DESIGN.md,
// "Dead servers"). Revoke calls after Close return ErrClosed.
func (r *Revoker) Close() {
	r.once.Do(func() { close(r.done) })
	r.active.Wait()
	r.mu.Lock()
	for r.busy > 0 {
		r.idle.Wait()
	}
	r.mu.Unlock()
	r.wakeups.stop()
	r.emptyMu.Lock()
	if r.emptyDir != nil {
		r.emptyDir.Close()
	}
	r.emptyMu.Unlock()
}

// holding returns the number of revokes under way and the processes left
// inside an injected syscall.
func (r *Revoker) holding() (busy int, stuck []*StuckError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.stuck {
		stuck = append(stuck, e)
	}
	return r.busy, stuck
}

// begin counts a revoke taken up; a process still held inside an injected
// syscall is not taken up again: its *StuckError is the answer. A process
// another tracer thread is revoking is waited for first.
func (r *Revoker) begin(pid int) *StuckError {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if e := r.stuck[pid]; e != nil {
			return e
		}
		if !r.serving[pid] {
			break
		}
		r.idle.Wait()
	}
	r.serving[pid] = true
	r.busy++
	return nil
}

// end counts a revoke ended, and reports a stuck one's end.
func (r *Revoker) end(pid int, rep Report, err error) {
	r.mu.Lock()
	e := r.stuck[pid]
	delete(r.stuck, pid)
	r.mu.Unlock()
	if e != nil && r.restored != nil {
		r.restored(Restore{PID: pid, Stuck: e, Report: rep, Err: err})
	}
	r.mu.Lock()
	r.busy--
	delete(r.serving, pid)
	r.idle.Broadcast()
	r.mu.Unlock()
}

// markStuck records that pid's revoke was answered with err.
func (r *Revoker) markStuck(pid int, err error) {
	var e *StuckError
	if !errors.As(err, &e) {
		return
	}
	r.mu.Lock()
	r.stuck[pid] = e
	r.idle.Broadcast() // a request for pid waiting in begin has its answer
	r.mu.Unlock()
}

// Revoke stops every thread of pid, takes the targets away and lets the
// process run on. ctx is honoured until the tracer takes the request up;
// from then on the revoke of this process runs to its end (a process is
// never left half-injected), and Revoke returns what was done. The Report
// is filled as far as the revoke got, also with an error. An injected
// syscall that does not return within the inject timeout is answered with
// a *StuckError at once, and the process is restored and released when the
// call returns (Restored); until then, Revoke of that process answers the
// same *StuckError.
func (r *Revoker) Revoke(ctx context.Context, pid int, t Targets) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{PID: pid}, err
	}
	if t.empty() {
		return Report{PID: pid}, nil
	}
	req := &request{ctx: ctx, pid: pid, targets: t, reply: make(chan result, 1)}
	select {
	case r.reqs <- req:
	case <-r.done:
		return Report{PID: pid}, ErrClosed
	case <-ctx.Done():
		return Report{PID: pid}, ctx.Err()
	}
	res := <-req.reply
	return res.rep, res.err
}

func (r *Revoker) startTracer() {
	r.active.Add(1)
	r.serve()
}

// testHooks are set by tests only, on their own Revoker before its first
// Revoke (the request's send orders the write before the tracer's read).
type testHooks struct {
	// stopped runs once every thread is stopped and before anything is
	// injected (to send a signal into that window).
	stopped func(pid int)
	// inject runs before each injected syscall in thread tid (to send
	// signals that arrive while it is being stepped).
	inject func(pid, tid int)
}
