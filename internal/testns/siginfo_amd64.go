package testns

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RoleRevokeSiginfo FIFO: blocked in read(2) on the FIFO, with an
// SA_SIGINFO handler for SigInfoSignal that records each signal's si_code
// and si_value; reports "siginfo N: code=C value=V" for the Nth, and
// "read: ERRNO".
const RoleRevokeSiginfo = "revoke-siginfo"

// SigInfoSignal is the real-time signal RoleRevokeSiginfo handles
// (SIGRTMIN+8: queued, so two of them sent at once both arrive).
const SigInfoSignal = unix.Signal(40)

func init() { RegisterRole(RoleRevokeSiginfo, 1, revokeSiginfo) }

// What siginfoHandler records (see siginfo_amd64.s): slot i is written
// once sigSlots passed i, and readable once sigDone[i] is 1.
var (
	//lint:ignore U1000 written by siginfoHandler in siginfo_amd64.s
	sigSlots  uint32
	sigCodes  [16]int32
	sigValues [16]uint64
	sigDone   [16]uint32
)

//lint:ignore U1000 its address is taken in siginfo_amd64.s
func siginfoHandler()

//lint:ignore U1000 its address is taken in siginfo_amd64.s
func sigReturn()
func siginfoHandlerAddrs() (handler, restorer uintptr)

// sa_flags of sigaction(2), x86_64 values.
const (
	saSiginfo  = 0x4
	saRestorer = 0x04000000
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
)

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// x86_64.
type kernelSigaction struct {
	handler, flags, restorer, mask uint64
}

func revokeSiginfo(args []string) error {
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// The Go runtime offers no SA_SIGINFO handler of one's own (os/signal
	// passes only the number), so the kernel gets ours directly. It runs
	// on the thread's alternate signal stack, which Go sets up on every
	// thread (SA_ONSTACK).
	h, r := siginfoHandlerAddrs()
	act := kernelSigaction{handler: uint64(h), restorer: uint64(r),
		flags: saSiginfo | saOnstack | saRestorer | saRestart}
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(SigInfoSignal), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		return e
	}
	go func() {
		for i := 0; i < len(sigDone); i++ {
			for atomic.LoadUint32(&sigDone[i]) == 0 {
				unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
			}
			say("siginfo %d: code=%d value=%#x", i, atomic.LoadInt32(&sigCodes[i]), atomic.LoadUint64(&sigValues[i]))
		}
	}()
	say("read: %s", errName(<-readBlocked(fd)))
	forever()
	return nil
}

// SigQueue sends SigInfoSignal to thread tid of process pid with si_code
// SI_QUEUE and si_value value, as sigqueue(3) does to a process
// (rt_tgsigqueueinfo(2)).
func SigQueue(pid, tid int, value uint64) error {
	var si unix.Siginfo
	si.Signo = int32(SigInfoSignal)
	si.Code = -1 // SI_QUEUE
	raw := (*[128]byte)(unsafe.Pointer(&si))
	*(*int32)(unsafe.Pointer(&raw[16])) = int32(unix.Getpid())
	*(*uint32)(unsafe.Pointer(&raw[20])) = uint32(unix.Getuid())
	*(*uint64)(unsafe.Pointer(&raw[24])) = value
	_, _, e := unix.Syscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(tid), uintptr(SigInfoSignal), uintptr(unsafe.Pointer(&si)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
