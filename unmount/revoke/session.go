//go:build linux && amd64

package revoke

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
)

// thread is one seized thread of the process being revoked.
type thread struct {
	tid     int
	stopped bool // in a ptrace stop, ours to inject into or detach
	gone    bool // exited and reaped, nothing left to do
	reap    bool // vanished (ESRCH): its exit may still have to be reaped
	zombie  bool // exited but not reportable yet: reaped on release
	// saved are its registers before the first injection; they are put
	// back before it is detached.
	saved *unix.PtraceRegs
	// signals were on their way to the thread when it stopped (a
	// signal-delivery-stop) or while it was being stepped; they are
	// delivered when it is released.
	signals []unix.Siginfo
}

// session is the revoke of one process, run on the tracer thread.
type session struct {
	r       *Revoker
	pid     int
	t       Targets
	me      int // our tracer thread's TID, which /proc shows as TracerPid
	proc    procFS
	threads map[int]*thread
	order   []int // TIDs in the order seized
	start   time.Time
	rep     Report

	// fds are the fdinfo of the targeted fds, read once the process is
	// stopped (openFD).
	fds map[fdKey]inspect.FDInfo

	suspended bool // seized with PTRACE_O_SUSPEND_SECCOMP
	sysAddr   uint64
	scratch   uint64 // a page mapped in the process for path strings

	wake    chan struct{} // told of every SIGCHLD (wakeups); nil: poll on a timer
	retire  bool          // some tracee could not be released by PTRACE_DETACH
	replied bool          // stuck was called: the caller has its answer
	stuck   func(error)
}

func newSession(r *Revoker, pid int, t Targets) *session {
	return &session{r: r, pid: pid, t: t, me: unix.Gettid(), proc: procFS(r.procRoot), threads: map[int]*thread{},
		start: time.Now(), rep: Report{PID: pid}}
}

// injectTimeout is how long an injected syscall of this revoke may take
// before the caller is answered with a *StuckError (Targets.InjectTimeout,
// or the Revoker's).
func (s *session) injectTimeout() time.Duration {
	if s.t.InjectTimeout > 0 {
		return s.t.InjectTimeout
	}
	return s.r.injectTimeout
}

func (s *session) report() Report {
	rep := s.rep
	rep.Placeholder = s.t.Placeholder
	rep.Duration = time.Since(s.start)
	for _, th := range s.threads {
		if th.stopped {
			rep.Threads++
		}
	}
	rep.Closed = append([]int(nil), rep.Closed...)
	rep.Unmapped = append([]Range(nil), rep.Unmapped...)
	rep.Chdir = append([]int(nil), rep.Chdir...)
	rep.Failed = append([]string(nil), rep.Failed...)
	rep.Notes = append([]string(nil), rep.Notes...)
	return rep
}

func (s *session) fail(format string, a ...any) {
	s.rep.Failed = append(s.rep.Failed, fmt.Sprintf(format, a...))
}

func (s *session) note(format string, a ...any) {
	s.rep.Notes = append(s.rep.Notes, fmt.Sprintf(format, a...))
}

// runGuarded is run, except that a panic in it (a bug) does not leave the
// process stopped with injected registers: the process is released, the
// tracer thread retires (its exit detaches whatever release could not),
// and the panic comes back as an error.
func (s *session) runGuarded() (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.retire = true
			func() {
				defer func() { _ = recover() }()
				_ = s.release()
			}()
			err = fmt.Errorf("revoking process %d: internal error: %v", s.pid, p)
		}
	}()
	return s.run()
}

// run revokes the targets from the process: refuse early what must be
// refused, stop every thread, inject, release.
func (s *session) run() error {
	if s.pid == os.Getpid() {
		return fmt.Errorf("%w: process %d is mounttop itself", ErrPermission, s.pid)
	}
	st, err := s.proc.processStatus(s.pid)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("process %d: %w", s.pid, ErrGone)
	case err != nil:
		return fmt.Errorf("reading status of process %d: %w", s.pid, err)
	case st.tgid != s.pid:
		return fmt.Errorf("%d is a thread of process %d, not a process", s.pid, st.tgid)
	case (st.state == 'Z' || st.state == 'X') && !s.liveThreads():
		return fmt.Errorf("process %d: %w (zombie)", s.pid, ErrGone)
	case st.tracerPid != 0:
		return fmt.Errorf("process %d: %w (tracer pid %d)", s.pid, ErrTraced, st.tracerPid)
	case st.seccomp != 0 && s.r.seccompSuspend.Load() == 2:
		return s.seccompRefusal()
	}
	if err := s.checkStarted(); err != nil {
		return err
	}

	err = s.stopAll()
	if err == nil {
		// Stopped and traced, the process cannot be reaped, so its pid
		// stays its own from here on: this check is the one that counts
		// (the first spares a stranger from being stopped at all).
		err = s.checkStarted()
	}
	switch {
	case err == nil:
		if s.r.hooks.stopped != nil {
			s.r.hooks.stopped(s.pid)
		}
		err = s.act()
	case !errors.Is(err, ErrNoStop):
		// Refused part-way (a thread traced by someone else, no
		// permission): the threads already interrupted are on their way
		// to a stop; collect those stops so they can be detached.
		_ = s.waitStopped(time.Now().Add(250 * time.Millisecond))
	}
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

// checkStarted refuses a process whose start time is not the one the
// targets were found with (Targets.StartTime): its pid was reused.
func (s *session) checkStarted() error {
	if s.t.StartTime == 0 {
		return nil
	}
	got, err := s.proc.startTime(s.pid)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("process %d: %w", s.pid, ErrGone)
	case err != nil:
		return fmt.Errorf("reading the start time of process %d: %w", s.pid, err)
	case got != s.t.StartTime:
		return fmt.Errorf("process %d: %w (started at tick %d, the scanned one at %d); left alone", s.pid, ErrReused, got, s.t.StartTime)
	}
	return nil
}

// liveThreads reports whether a process whose leader is a zombie still
// has threads that run: the leader of a thread group that called
// pthread_exit(3) (SYS_exit) stays a zombie until the last thread exits
// (exit(2)), and the process holds what those threads hold. Such a
// process is revoked through them (its leader is not seized: ptrace
// refuses an exiting task); the tracer pid is then read from each of them
// as they are seized.
func (s *session) liveThreads() bool {
	tids, err := s.proc.threads(s.pid)
	if err != nil {
		return false
	}
	for _, tid := range tids {
		if tid == s.pid {
			continue
		}
		if st, err := s.proc.threadStatus(s.pid, tid); err == nil && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

func (s *session) seccompRefusal() error {
	return fmt.Errorf("%w: process %d runs under seccomp, which an injected syscall could trip (killing it); "+
		"suspending it (PTRACE_O_SUSPEND_SECCOMP) needs CAP_SYS_ADMIN in the initial user namespace",
		ErrPermission, s.pid)
}

// stopAll seizes every thread in /proc/PID/task and waits until each is in
// a ptrace stop. A thread that is not yet seized can create threads that
// are not traced (PTRACE_O_TRACECLONE only follows tracees), so the task
// list is read again once all are stopped, until it holds nothing new.
func (s *session) stopAll() error {
	deadline := time.Now().Add(s.r.stopTimeout)
	for {
		fresh, err := s.seizeListed()
		if err != nil {
			return err
		}
		if err := s.waitStopped(deadline); err != nil {
			return err
		}
		if !fresh {
			break
		}
	}
	if t := s.threads[s.pid]; t == nil || t.gone || !t.stopped {
		// The main thread exited; the others are on their way out
		// (exit_group) or it was the only one.
		if s.stoppedCount() == 0 {
			return fmt.Errorf("process %d: %w", s.pid, ErrGone)
		}
	}
	return nil
}

func (s *session) stoppedCount() int {
	n := 0
	for _, th := range s.threads {
		if th.stopped && !th.gone {
			n++
		}
	}
	return n
}

// seizeListed seizes and interrupts the threads in /proc/PID/task that are
// not ours yet; it reports whether there were any.
func (s *session) seizeListed() (fresh bool, err error) {
	tids, err := s.proc.threads(s.pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("process %d: %w", s.pid, ErrGone)
	}
	if err != nil {
		return false, fmt.Errorf("listing threads of %d: %w", s.pid, err)
	}
	for _, tid := range tids {
		if _, ok := s.threads[tid]; ok {
			continue
		}
		fresh = true
		if err := s.seize(tid); err != nil {
			return fresh, err
		}
	}
	return fresh, nil
}

// seize attaches to one thread and asks it to stop.
func (s *session) seize(tid int) error {
	opts := seizeOptions
	if s.r.seccompSuspend.Load() != 2 {
		opts |= unix.PTRACE_O_SUSPEND_SECCOMP
	}
	err := ptraceSeize(tid, opts)
	if err != nil && opts&unix.PTRACE_O_SUSPEND_SECCOMP != 0 && (err == unix.EPERM || err == unix.EINVAL) {
		// SUSPEND_SECCOMP needs CAP_SYS_ADMIN in the initial user
		// namespace and an unconfined tracer (ptrace_setoptions); in a
		// user namespace it is EPERM. Try without: if that works, it was
		// the option, not the tracee.
		if err2 := ptraceSeize(tid, seizeOptions); err2 == nil {
			s.r.seccompSuspend.Store(2)
			err = nil
		} else {
			err = err2
		}
	} else if err == nil && opts&unix.PTRACE_O_SUSPEND_SECCOMP != 0 {
		s.r.seccompSuspend.Store(1)
	}
	switch {
	case err == unix.ESRCH:
		return nil // exited between the listing and now
	case err == unix.EPERM:
		return s.seizeRefused(tid)
	case err != nil:
		return fmt.Errorf("PTRACE_SEIZE thread %d of %d: %w", tid, s.pid, err)
	}
	s.suspended = s.r.seccompSuspend.Load() == 1
	s.add(tid)
	if err := ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0); err != nil {
		s.threads[tid].reap = true // ESRCH: on its way out
	}
	return nil
}

func (s *session) add(tid int) *thread {
	th := &thread{tid: tid}
	s.threads[tid] = th
	s.order = append(s.order, tid)
	return th
}

// seizeRefused explains an EPERM from PTRACE_SEIZE: a thread that is
// exiting (ptrace_attach refuses a task with exit_state), one that is
// already ours (auto-attached by PTRACE_O_TRACECLONE before we saw the
// clone event), one traced by someone else, or no permission.
func (s *session) seizeRefused(tid int) error {
	st, err := s.proc.threadStatus(s.pid, tid)
	switch {
	case err != nil, st.state == 'Z', st.state == 'X':
		// Gone or exiting; a zombie leader whose threads run on stays
		// listed in /proc/PID/task: mark it done, or every look at the
		// task list would find it new again.
		s.add(tid).gone = true
		return nil
	case st.tracerPid == s.me:
		s.add(tid)
		return nil
	case st.tracerPid != 0:
		return fmt.Errorf("process %d: %w (thread %d, tracer pid %d)", s.pid, ErrTraced, tid, st.tracerPid)
	}
	return fmt.Errorf("%w: PTRACE_SEIZE thread %d of %d: %v", ErrPermission, tid, s.pid, unix.EPERM)
}

// waitStopped polls every seized thread until each has reported a stop (or
// its exit), adopting threads created meanwhile, until deadline.
func (s *session) waitStopped(deadline time.Time) error {
	b := backoff{wake: s.wake}
	for {
		pending := 0
		for i := 0; i < len(s.order); i++ { // s.order grows with clone events
			th := s.threads[s.order[i]]
			if th.stopped || th.gone || th.zombie {
				continue
			}
			ws, ok, err := poll(th.tid)
			switch {
			case err != nil: // ECHILD: exited and reaped (or never ours)
				th.gone = true
			case !ok:
				pending++
			case ws.Exited() || ws.Signaled():
				th.gone = true
			case ws.Stopped():
				th.stopped = true
				s.stoppedWith(th, ws)
			}
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if s.dropZombies() {
				continue
			}
			return s.noStop()
		}
		b.pause()
	}
}

// stoppedWith records what kind of stop a thread reported in the stop
// phase. Any ptrace stop satisfies the PTRACE_INTERRUPT ("any trap clears
// a pending STOP trap", ptrace_stop in kernel/signal.c), so the thread stays
// stopped here whatever the kind.
func (s *session) stoppedWith(th *thread, ws unix.WaitStatus) {
	switch ev := ptraceEvent(ws); {
	case ev == unix.PTRACE_EVENT_CLONE || ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_VFORK:
		// A new thread: auto-attached with a pending stop of its own
		// (ptrace_init_task), to be waited for like the others.
		if msg, err := unix.PtraceGetEventMsg(th.tid); err == nil && ev == unix.PTRACE_EVENT_CLONE {
			if _, ok := s.threads[int(msg)]; !ok {
				s.add(int(msg))
			}
		}
	case ev != 0:
		// PTRACE_EVENT_STOP: the interrupt, or group-stop.
	case ws.StopSignal() == unix.SIGTRAP|0x80:
		// syscall-stop; not requested, harmless.
	default:
		// signal-delivery-stop: the signal is held and handed back on
		// release, with its siginfo.
		if si, err := ptraceGetSiginfo(th.tid); err == nil {
			th.signals = append(th.signals, si)
		}
	}
}

// dropZombies marks threads that have not stopped but are zombies, to be
// reaped on release rather than waited for: a main thread that exited while
// others live is not reported to wait4 until they are gone too
// (delay_group_leader), so it would otherwise look like one that never
// stops. It reports whether it found any.
func (s *session) dropZombies() bool {
	found := false
	for _, tid := range s.order {
		th := s.threads[tid]
		if th.stopped || th.gone || th.zombie {
			continue
		}
		if st, err := s.proc.threadStatus(s.pid, tid); err != nil || st.state == 'Z' || st.state == 'X' {
			th.zombie = true
			found = true
		}
	}
	return found
}

// noStop builds the ErrNoStop refusal, naming the threads that did not stop.
func (s *session) noStop() error {
	var late []string
	for _, tid := range s.order {
		th := s.threads[tid]
		if th.stopped || th.gone || th.zombie {
			continue
		}
		st, _ := s.proc.threadStatus(s.pid, tid)
		w := fmt.Sprintf("thread %d (state %c", tid, st.state)
		if wchan := s.proc.wchan(s.pid, tid); wchan != "" {
			w += ", in " + wchan
		}
		late = append(late, w+")")
	}
	return fmt.Errorf("process %d: %w: %s did not stop within %v; released untouched",
		s.pid, ErrNoStop, strings.Join(late, ", "), s.r.stopTimeout)
}

// release restores the registers of every thread injected into and
// detaches every thread, handing back signals it held. Threads it cannot
// detach (never stopped, or stopped but killed meanwhile and not yet
// reaped) make the tracer thread retire: its exit detaches them.
func (s *session) release() error {
	var errs []string
	for _, tid := range s.order {
		th := s.threads[tid]
		if th.gone {
			continue
		}
		if th.zombie {
			th.reap = true
			continue
		}
		if !th.stopped {
			s.retire = true
			continue
		}
		if th.saved != nil {
			regs := restoreRegs(*th.saved, len(th.signals) > 0)
			if err := unix.PtraceSetRegs(tid, &regs); err != nil {
				if err != unix.ESRCH {
					errs = append(errs, fmt.Sprintf("restoring registers of thread %d: %v", tid, err))
				}
			}
		}
		s.requeue(th)
		sig := 0
		if len(th.signals) > 0 {
			si := th.signals[0]
			if ptraceSetSiginfo(tid, &si) == nil {
				sig = int(si.Signo)
			}
		}
		if err := ptraceDetach(tid, sig); err != nil {
			th.reap = true
			continue
		}
	}
	s.reapVanished()
	if len(errs) > 0 {
		return fmt.Errorf("releasing process %d: %s", s.pid, strings.Join(errs, "; "))
	}
	return nil
}

// requeue hands back the signals a thread held after the first (which
// PTRACE_DETACH delivers from the signal-delivery-stop it is in, with the
// siginfo set by PTRACE_SETSIGINFO): they are queued to the thread again
// while it is still stopped, so they follow the first in order, by
// rt_tgsigqueueinfo(2) with their siginfo, si_code and si_value included.
// The kernel takes a siginfo from another process only with a negative
// si_code other than SI_TKILL (sigqueue(3), timers, mq_notify, AIO:
// do_rt_tgsigqueueinfo gives EPERM otherwise, as such a siginfo would be
// forged), so a second kill(2)/tgkill(2) or kernel-sent signal of the same
// hold goes back by tgkill, its sender shown as us.
func (s *session) requeue(th *thread) {
	for _, si := range th.signals[min(1, len(th.signals)):] {
		if si.Code < 0 && si.Code != siTkill {
			if err := rtTgsigqueueinfo(s.pid, th.tid, &si); err == nil {
				continue
			}
		}
		_ = unix.Tgkill(s.pid, th.tid, unix.Signal(si.Signo))
	}
}

// reapVanished collects the exit of threads that vanished while traced: a
// traced thread that exits stays a zombie until its tracer waits for it
// (exit_notify), and would hold up its process's exit report to the parent.
func (s *session) reapVanished() {
	deadline := time.Now().Add(500 * time.Millisecond)
	b := backoff{wake: s.wake}
	for {
		left := 0
		for _, tid := range s.order {
			th := s.threads[tid]
			if !th.reap || th.gone {
				continue
			}
			ws, ok, err := poll(tid)
			switch {
			case err != nil || (ok && (ws.Exited() || ws.Signaled())):
				th.gone = true
			case ok && ws.Stopped():
				// It stopped after all (the ESRCH was from a race with
				// its stop); let it go.
				if ptraceDetach(tid, 0) == nil {
					th.gone = true
				} else {
					left++
				}
			default:
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.retire = true
			return
		}
		b.pause()
	}
}

// restoreRegs returns the registers to put back into a thread after
// injecting into it.
//
// A thread interrupted inside a syscall stops with rax = -ERESTART*
// and orig_rax = the syscall number; on the way out of the stop the kernel
// would re-run the syscall (arch_do_signal_or_restart), but only if it still
// finds those values when it gets there, which depends on the stop the
// thread is released from. So the re-run is set up here: rax = orig_rax and
// rip back over the 2-byte syscall instruction (-ERESTART_RESTARTBLOCK
// re-runs through restart_syscall(2) instead). The thread then executes the
// syscall again, and a read(2) on a fd just closed gets EBADF.
//
// When a signal is handed back on release (exact), the registers go back as
// they were: signal delivery then decides between restarting and EINTR by
// the handler's SA_RESTART, as it would have without us.
func restoreRegs(saved unix.PtraceRegs, exact bool) unix.PtraceRegs {
	r := saved
	if exact || int64(r.Orig_rax) < 0 {
		return r
	}
	switch int64(r.Rax) {
	case -errRestartSys, -errRestartNoIntr, -errRestartNoHand:
		r.Rax = r.Orig_rax
		r.Rip -= 2
	case -errRestartRestartBlock:
		r.Rax = unix.SYS_RESTART_SYSCALL
		r.Rip -= 2
	}
	return r
}
