//go:build linux && amd64

package revoke

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ptrace(2) calls x/sys/unix has no wrapper for with the arguments we
// need (PTRACE_SEIZE with options, PTRACE_DETACH with a signal, siginfo).

const (
	seizeOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE

	// Restart codes a syscall interrupted by a signal or ptrace leaves in
	// rax (include/linux/errno.h); arch_do_signal_or_restart
	// (arch/x86/kernel/signal.c) turns them into a re-run of the syscall.
	errRestartSys          = 512
	errRestartNoIntr       = 513
	errRestartNoHand       = 514
	errRestartRestartBlock = 516

	// x86_64 user code segment selector: a 64-bit process. A 32-bit one
	// (0x23) has other syscall numbers and is refused.
	userCS64 = 0x33
)

func ptrace(req int, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func ptraceSeize(tid, options int) error {
	return ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options))
}

// ptraceDetach releases a stopped tracee; sig, if not 0, is delivered as
// it goes (from a signal-delivery-stop, with the siginfo set last).
func ptraceDetach(tid, sig int) error {
	return ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig))
}

func ptraceGetSiginfo(tid int) (unix.Siginfo, error) {
	var si unix.Siginfo
	err := ptrace(unix.PTRACE_GETSIGINFO, tid, 0, uintptr(unsafe.Pointer(&si)))
	return si, err
}

func ptraceSetSiginfo(tid int, si *unix.Siginfo) error {
	return ptrace(unix.PTRACE_SETSIGINFO, tid, 0, uintptr(unsafe.Pointer(si)))
}

// siTkill is the si_code of tgkill(2) (SI_TKILL, include/uapi/asm-generic/siginfo.h).
const siTkill = -6

// rtTgsigqueueinfo queues the signal si describes to thread tid of process
// tgid, with that siginfo (rt_tgsigqueueinfo(2)).
func rtTgsigqueueinfo(tgid, tid int, si *unix.Siginfo) error {
	_, _, e := unix.Syscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(tgid), uintptr(tid), uintptr(si.Signo), uintptr(unsafe.Pointer(si)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ptraceEvent is the PTRACE_EVENT_* of a stop status (status>>16).
func ptraceEvent(ws unix.WaitStatus) int { return int(uint32(ws)>>16) & 0xff }

// poll reports, without blocking, whether tid has a wait status for us.
// ok is false while there is none; err is ECHILD once tid is no tracee of
// ours any more (reaped).
func poll(tid int) (ws unix.WaitStatus, ok bool, err error) {
	for {
		got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		return ws, got == tid, nil
	}
}

// backoff paces a wait4(WNOHANG) loop. wait4 cannot time out and a blocked
// tracer thread could not give up on a tracee, so the tracer polls, and in
// between waits for wake: the Revoker's SIGCHLD wakeups (wakeups), which
// the kernel sends the tracer for every ptrace stop and exit of a tracee
// (do_notify_parent_cldstop, do_notify_parent in kernel/signal.c), so a
// stop is seen as soon as it happens without spinning on the CPU the
// tracees need. A timer doubling from 1ms up to max (5ms by default) is
// the fallback for an exit announced with another signal than SIGCHLD
// (clone(2)'s exit signal) or none. Without wake (nil) it polls as
// before: a few yields, then nanosleep(2)s doubling from 20µs up to max.
type backoff struct {
	n     int
	max   time.Duration
	wake  <-chan struct{}
	timer *time.Timer
}

func (b *backoff) pause() {
	b.n++
	limit := b.max
	if b.wake != nil {
		if limit == 0 {
			limit = 5 * time.Millisecond
		}
		d := min(time.Millisecond<<min(b.n-1, 16), limit)
		if b.timer == nil {
			b.timer = time.NewTimer(d)
		} else {
			b.timer.Reset(d)
		}
		select {
		case <-b.wake:
			b.timer.Stop()
		case <-b.timer.C:
		}
		return
	}
	if b.n <= 16 {
		_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		return
	}
	if limit == 0 {
		limit = 2 * time.Millisecond
	}
	ts := unix.NsecToTimespec(int64(min(20*time.Microsecond<<min(b.n-17, 16), limit)))
	_ = unix.Nanosleep(&ts, nil)
}
