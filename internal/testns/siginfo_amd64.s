#include "textflag.h"

// siginfoHandler is an SA_SIGINFO signal handler, called by the kernel as
// void handler(int sig, siginfo_t *info, void *ucontext): info in SI. It
// records info->si_code (offset 8) and info->si_value (offset 24, the
// rt fields after si_pid and si_uid) in the next slot of sigCodes and
// sigValues. It touches no Go state: it may run on any thread at any time.
TEXT ·siginfoHandler(SB),NOSPLIT|NOFRAME,$0
	MOVL	$1, AX
	LOCK
	XADDL	AX, ·sigSlots(SB)
	CMPL	AX, $16
	JAE	full
	MOVL	8(SI), CX
	LEAQ	·sigCodes(SB), DX
	MOVL	CX, (DX)(AX*4)
	MOVQ	24(SI), CX
	LEAQ	·sigValues(SB), DX
	MOVQ	CX, (DX)(AX*8)
	LEAQ	·sigDone(SB), DX
	MOVL	$1, CX
	XCHGL	CX, (DX)(AX*4)
full:
	RET

// sigReturn is the handler's SA_RESTORER: rt_sigreturn(2).
TEXT ·sigReturn(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX
	SYSCALL
	INT	$3

// func siginfoHandlerAddrs() (handler, restorer uintptr)
TEXT ·siginfoHandlerAddrs(SB),NOSPLIT,$0-16
	LEAQ	·siginfoHandler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·sigReturn(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
