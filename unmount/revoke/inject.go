//go:build linux && amd64

package revoke

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
)

// act runs the targets' syscalls inside the stopped process: it picks
// the thread to inject into and checks it (injectInto), re-reads what the
// targets still are (verify), hands in the empty directory when
// placeholders or cwds need it (handInDir), then covers or closes the fds,
// the threads' own tables' fds, the mappings and the cwds, in that order.
// What act made in the process (the scratch page, its fds of the
// socketpair and the directory) is taken back before it returns, also on
// an error, while the thread is still ours.
func (s *session) act() error {
	inj, maps, err := s.injectInto()
	if err != nil {
		return err
	}
	fds, ranges, cwds := s.verify(maps, inj.tid)
	threadFDs := s.verifyThreadFDs()

	dir := -1 // the empty directory's fd in the process
	if s.t.Placeholder && (len(fds) > 0 || len(threadFDs) > 0) || len(cwds) > 0 {
		var undo func()
		dir, fds, cwds, undo, err = s.handInDir(inj, fds, cwds)
		defer undo()
		if err != nil {
			return err
		}
	}
	if err := s.takeFDs(inj, fds, dir); err != nil {
		return err
	}
	for _, g := range threadFDs {
		if err := s.takeThreadFDs(g); err != nil {
			return err
		}
	}
	if err := s.unmapRanges(inj, ranges); err != nil {
		return err
	}
	return s.moveCwds(inj, cwds, dir)
}

// injectInto picks the thread the process-wide syscalls run in
// (injector) and checks it can take them: a 64-bit process, and a seccomp
// filter suspended or absent (checkSeccomp). It returns the thread, the
// process's maps as that thread sees them, and finds a syscall
// instruction in them (findSyscall).
func (s *session) injectInto() (*thread, []mapping, error) {
	inj := s.injector()
	if inj == nil {
		return nil, nil, fmt.Errorf("process %d: %w", s.pid, ErrGone)
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(inj.tid, &regs); err != nil {
		return nil, nil, fmt.Errorf("reading registers of %d: %w", inj.tid, err)
	}
	if regs.Cs != userCS64 {
		return nil, nil, fmt.Errorf("%w: process %d is not a 64-bit process (cs %#x)", ErrPermission, s.pid, regs.Cs)
	}
	if !s.suspended {
		if err := s.checkSeccomp(); err != nil {
			return nil, nil, err
		}
		s.note("seized without PTRACE_O_SUSPEND_SECCOMP (needs CAP_SYS_ADMIN in the initial user namespace); the process has no seccomp filter")
	}
	maps, err := s.proc.taskMaps(s.pid, inj.tid)
	if err != nil {
		return nil, nil, fmt.Errorf("reading maps of %d: %w", s.pid, err)
	}
	if s.sysAddr, err = s.findSyscall(inj.tid, maps); err != nil {
		return nil, nil, err
	}
	return inj, maps, nil
}

// handInDir maps the scratch page in the process and hands in the empty
// directory (handInEmptyDir), returning its fd there. undo takes back
// what was made (the fds, then the page) and is to be called in any case
// once dir is no longer needed, also when err is set. Without the
// directory there is nothing to put on an fd or move a cwd to: those uses
// are left alone and reported (plain closes still go ahead), and the fds
// and cwds returned are what is still to be done.
func (s *session) handInDir(inj *thread, fds, cwds []int) (dir int, fdsLeft, cwdsLeft []int, undo func(), err error) {
	undo = func() {}
	if err := s.mapScratch(inj); err != nil {
		return -1, fds, cwds, undo, err
	}
	var ours []int
	undo = func() {
		s.closeOurs(inj, ours, "")
		// Also on an error path, while the thread is still ours.
		if !inj.gone && !inj.reap {
			if _, err := s.call(inj, unix.SYS_MUNMAP, uintptr(s.scratch), pageSize); err != nil {
				s.fail("unmapping the scratch page at %#x: %v", s.scratch, err)
			}
		}
	}
	var why string
	dir, why, ours, err = s.handInEmptyDir(inj)
	if err != nil || why == "" {
		return dir, fds, cwds, undo, err
	}
	for _, fd := range fds {
		s.fail("placeholder for fd %d: %s", fd, why)
	}
	for _, tid := range cwds {
		s.fail("cwd of thread %d: %s", tid, why)
	}
	if s.t.Placeholder {
		fds = nil
	}
	return dir, fds, nil, undo, nil
}

// unmapRanges covers each mapping of a targeted file with an anonymous
// PROT_NONE mapping at the same address (mmap(2) MAP_FIXED): the file is
// let go, and a later access faults (SIGSEGV) instead of reaching it.
func (s *session) unmapRanges(inj *thread, ranges []Range) error {
	for _, rg := range ranges {
		ret, err := s.call(inj, unix.SYS_MMAP, uintptr(rg.Start), uintptr(rg.End-rg.Start), unix.PROT_NONE,
			unix.MAP_FIXED|unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, ^uintptr(0), 0)
		if err != nil {
			return err
		}
		if e := errnoOf(ret); e != 0 {
			s.fail("mmap PROT_NONE over %v: %s", rg, errnoName(e))
			continue
		}
		if uint64(ret) != rg.Start {
			s.fail("mmap PROT_NONE over %v: mapped at %#x instead", rg, ret)
			continue
		}
		s.rep.Unmapped = append(s.rep.Unmapped, rg)
	}
	return nil
}

// moveCwds moves each thread's cwd to the empty directory dir (fchdir(2)
// injected into that thread: cwd is per fs_struct).
func (s *session) moveCwds(inj *thread, cwds []int, dir int) error {
	for _, tid := range cwds {
		ret, err := s.call(s.threads[tid], unix.SYS_FCHDIR, uintptr(dir))
		if errors.Is(err, ErrGone) && tid != inj.tid {
			s.fail("cwd of thread %d: it exited", tid)
			continue
		}
		if err != nil {
			return err
		}
		if e := errnoOf(ret); e != 0 {
			s.fail("cwd of thread %d: fchdir: %s", tid, errnoName(e))
			continue
		}
		s.rep.Chdir = append(s.rep.Chdir, tid)
	}
	return nil
}

// closeOurs closes the fds the revoke made in the fd table thread th uses
// (the socketpair's ends, the empty directory's fd), while th is still
// ours: by one close_range(2) (Linux 5.9) when they are consecutive
// numbers, as they usually are (the lowest free numbers, open(2)), so
// that only fds made here are in the range; else, or if close_range is
// refused, one close(2) each. in names the table for a failure ("" for
// the process's, " in thread N" for a thread's own).
func (s *session) closeOurs(th *thread, fds []int, in string) {
	if len(fds) == 0 || th.gone || th.reap {
		return
	}
	lo, hi := slices.Min(fds), slices.Max(fds)
	if len(fds) > 1 && hi-lo+1 == len(fds) {
		ret, err := s.call(th, unix.SYS_CLOSE_RANGE, uintptr(lo), uintptr(hi), 0)
		if err != nil {
			s.fail("closing our fds %d-%d%s: %v", lo, hi, in, err)
			return
		}
		if errnoOf(ret) == 0 {
			return
		}
	}
	for _, fd := range fds {
		if _, err := s.call(th, unix.SYS_CLOSE, uintptr(fd)); err != nil {
			s.fail("closing our fd %d%s: %v", fd, in, err)
			return
		}
	}
}

const pageSize = 4096

// injector picks the thread the process-wide syscalls (fds and memory are
// shared by all threads) run in: the main thread, or if it has exited,
// the first stopped one.
func (s *session) injector() *thread {
	if th := s.threads[s.pid]; th != nil && th.stopped && !th.gone {
		return th
	}
	for _, tid := range s.order {
		if th := s.threads[tid]; th.stopped && !th.gone {
			return th
		}
	}
	return nil
}

// checkSeccomp refuses a process with seccomp on in a thread we would
// inject into, when the filter could not be suspended: a filter that
// kills on close(2) or mmap(2), or strict mode, would kill it.
func (s *session) checkSeccomp() error {
	tids := append([]int{s.pid}, s.t.CwdTIDs...)
	if inj := s.injector(); inj != nil {
		tids = append(tids, inj.tid)
	}
	for _, g := range s.t.ThreadFDs {
		tids = append(tids, g.TID)
	}
	for _, tid := range tids {
		if st, err := s.proc.threadStatus(s.pid, tid); err == nil && st.seccomp != 0 {
			return s.seccompRefusal()
		}
	}
	return nil
}

// takeFDs closes each fd, or with Targets.Placeholder covers it with dir,
// the process's fd of the empty directory (dup3(2), keeping each fd's
// FD_CLOEXEC as verify read it from fdinfo).
func (s *session) takeFDs(inj *thread, fds []int, dir int) error {
	for _, fd := range fds {
		if !s.t.Placeholder {
			ret, err := s.call(inj, unix.SYS_CLOSE, uintptr(fd))
			if err != nil {
				return err
			}
			// close(2): on Linux the fd is released whatever close
			// reports but EBADF (it was not open); the other errors
			// (EINTR, EIO, ENOTCONN from a FUSE connection that was
			// aborted) are the flush's, which failed.
			switch e := errnoOf(ret); e {
			case unix.EBADF:
				s.fail("close fd %d: %s", fd, errnoName(e))
				continue
			case 0, unix.EINTR:
			default:
				s.rep.Notes = append(s.rep.Notes, fmt.Sprintf("close fd %d reported %s: the fd is released, its last flush failed", fd, errnoName(e)))
			}
			s.rep.Closed = append(s.rep.Closed, fd)
			continue
		}
		flags := 0
		if s.fds[fdKey{inj.tid, fd}].Flags&unix.O_CLOEXEC != 0 {
			flags = unix.O_CLOEXEC
		}
		ret, err := s.call(inj, unix.SYS_DUP3, uintptr(dir), uintptr(fd), uintptr(flags))
		if err != nil {
			return err
		}
		if e := errnoOf(ret); e != 0 {
			s.fail("placeholder over fd %d: dup3: %s", fd, errnoName(e))
			continue
		}
		s.rep.Closed = append(s.rep.Closed, fd)
	}
	return nil
}

// mapScratch maps one page in the process for the data of the injected
// calls (handInEmptyDir), instead of writing below a thread's stack
// pointer: a Go goroutine stack may have little room below it.
func (s *session) mapScratch(inj *thread) error {
	ret, err := s.call(inj, unix.SYS_MMAP, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		return err
	}
	if e := errnoOf(ret); e != 0 {
		return fmt.Errorf("mapping a scratch page in %d: %s", s.pid, errnoName(e))
	}
	s.scratch = uint64(ret)
	return nil
}

// fdKey names an fd in the fd table thread tid uses.
type fdKey struct{ tid, fd int }

// openFD reads fd's fdinfo in the table of thread tid (the process
// stopped, so it stays what is read here until the revoke's own calls)
// and keeps it for takeFDs (its FD_CLOEXEC) and for a StuckError (its
// mount); false if it is not open any more.
func (s *session) openFD(tid, fd int) bool {
	fi, err := s.proc.fdInfo(s.pid, tid, fd)
	if err != nil {
		return false
	}
	if s.fds == nil {
		s.fds = map[fdKey]inspect.FDInfo{}
	}
	s.fds[fdKey{tid, fd}] = fi
	return true
}

// verify drops the targets that are no longer what the caller saw: fds not
// open any more, ranges that are not (only) file mappings now, threads that
// are not ours, and with Targets.Mounts, anything now on another mount. The
// process is stopped, so what is checked here is what the syscalls hit.
func (s *session) verify(maps []mapping, inj int) (fds []int, ranges []Range, cwds []int) {
	mapFilesNoted := false
	for _, fd := range s.t.FDs {
		if !s.openFD(inj, fd) {
			s.fail("fd %d: not open any more", fd)
			continue
		}
		if !s.onMount(s.proc.fdLink(s.pid, inj, fd), fmt.Sprintf("fd %d", fd)) {
			continue
		}
		fds = append(fds, fd)
	}
	for _, rg := range s.t.Maps {
		if rg.Start >= rg.End || rg.Start%pageSize != 0 || rg.End%pageSize != 0 {
			s.fail("mapping %v: not a page-aligned range", rg)
			continue
		}
		covered, vmas := coverage(maps, rg)
		if !covered {
			s.fail("mapping %v: not a file mapping any more", rg)
			continue
		}
		ok := true
		if s.checksMounts() {
			for _, v := range vmas {
				link := s.proc.mapFile(s.pid, v.start, v.end)
				_, _, err := mountOf(link)
				if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
					if !mapFilesNoted {
						s.note("mappings not checked against the mount: /proc/PID/map_files needs CAP_SYS_ADMIN")
						mapFilesNoted = true
					}
					break
				}
				if inj != s.pid && (errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)) {
					// The leader exited: map_files (only in /proc/PID,
					// not per thread) reads its mm, which is gone.
					if !mapFilesNoted {
						s.note("mappings not checked against the mount: the main thread exited, so /proc/PID/map_files is empty")
						mapFilesNoted = true
					}
					break
				}
				if !s.onMount(link, fmt.Sprintf("mapping %v", rg)) {
					ok = false
					break
				}
			}
		}
		if ok {
			ranges = append(ranges, rg)
		}
	}
	for _, tid := range s.t.CwdTIDs {
		th := s.threads[tid]
		if th == nil || th.gone || !th.stopped {
			s.fail("cwd of thread %d: no such thread of process %d", tid, s.pid)
			continue
		}
		if !s.onMount(s.proc.cwdLink(s.pid, tid), fmt.Sprintf("cwd of thread %d", tid)) {
			continue
		}
		if !slices.Contains(cwds, tid) {
			cwds = append(cwds, tid)
		}
	}
	return fds, ranges, cwds
}

// verifyThreadFDs is verify for Targets.ThreadFDs: each fd is checked in
// its thread's own table (/proc/PID/task/TID/fd), the thread stopped.
func (s *session) verifyThreadFDs() []ThreadFDs {
	var out []ThreadFDs
	for _, g := range s.t.ThreadFDs {
		th := s.threads[g.TID]
		if th == nil || th.gone || !th.stopped {
			s.fail("fds %v of thread %d: no such thread of process %d", g.FDs, g.TID, s.pid)
			continue
		}
		ok := ThreadFDs{TID: g.TID}
		for _, fd := range g.FDs {
			if !s.openFD(g.TID, fd) {
				s.fail("fd %d of thread %d: not open any more", fd, g.TID)
				continue
			}
			if s.onMount(s.proc.fdLink(s.pid, g.TID, fd), fmt.Sprintf("fd %d of thread %d", fd, g.TID)) {
				ok.FDs = append(ok.FDs, fd)
			}
		}
		if len(ok.FDs) > 0 {
			out = append(out, ok)
		}
	}
	return out
}

// takeThreadFDs takes away fds of one thread's own fd table: the calls run
// in that thread, the only one whose syscalls see that table; with
// Targets.Placeholder the empty directory is handed into that table
// first, and closed there after.
func (s *session) takeThreadFDs(g ThreadFDs) error {
	th := s.threads[g.TID]
	dir := -1
	if s.t.Placeholder {
		d, why, ours, err := s.handInEmptyDir(th)
		defer s.closeOurs(th, ours, fmt.Sprintf(" in thread %d", g.TID))
		if err != nil {
			return err
		}
		if why != "" {
			for _, fd := range g.FDs {
				s.fail("placeholder for fd %d of thread %d: %s", fd, g.TID, why)
			}
			return nil
		}
		dir = d
	}
	return s.takeFDs(th, g.FDs, dir)
}

func (s *session) checksMounts() bool { return len(s.t.Mounts) > 0 || len(s.t.CopyIDs) > 0 }

// onMount checks a /proc magic link against Targets.Mounts and CopyIDs,
// reporting a mismatch as a failure of what.
func (s *session) onMount(link, what string) bool {
	if !s.checksMounts() {
		return true
	}
	id, ok, err := mountOf(link)
	switch {
	case err != nil:
		s.fail("%s: checking its mount: %v", what, err)
		return false
	case !ok:
		return true // no unique mount IDs on this kernel: trust the scan
	case slices.Contains(s.t.Mounts, id):
		return true
	}
	if len(s.t.CopyIDs) > 0 {
		old, err := oldMountOf(link)
		if err != nil {
			s.fail("%s: checking its mount: %v", what, err)
			return false
		}
		if slices.Contains(s.t.CopyIDs, old) {
			return true
		}
	}
	s.fail("%s: now on mount %d, none of those revoked; left alone", what, id)
	return false
}

// coverage reports whether rg is exactly covered by file-backed mappings,
// and which.
func coverage(maps []mapping, rg Range) (bool, []mapping) {
	var vmas []mapping
	next := rg.Start
	for _, m := range maps {
		if m.end <= rg.Start || m.start >= rg.End {
			continue
		}
		if m.start > next || m.inode == 0 {
			return false, nil
		}
		vmas = append(vmas, m)
		next = m.end
	}
	return next >= rg.End && len(vmas) > 0, vmas
}

// findSyscall finds the address of a `syscall` instruction (0f 05) in the
// process, where an injected syscall is run from: in [vdso], whose bytes are
// the same in every process of this kernel, so the offset found once is
// reused after checking it with one PTRACE_PEEKTEXT. Without a vdso (vdso=0)
// the executable mappings are searched.
func (s *session) findSyscall(tid int, maps []mapping) (uint64, error) {
	for _, m := range maps {
		if m.path != "[vdso]" {
			continue
		}
		size := m.end - m.start
		s.r.vdsoMu.Lock()
		off, ok := s.r.vdsoCache[size]
		s.r.vdsoMu.Unlock()
		if ok && isSyscallAt(tid, m.start+off) {
			return m.start + off, nil
		}
		if addr, err := s.searchSyscall(tid, m); err == nil {
			s.r.vdsoMu.Lock()
			s.r.vdsoCache[size] = addr - m.start
			s.r.vdsoMu.Unlock()
			return addr, nil
		}
	}
	for _, m := range maps {
		if len(m.perms) > 2 && m.perms[2] == 'x' && m.path != "[vdso]" && m.path != "[vsyscall]" {
			if addr, err := s.searchSyscall(tid, m); err == nil {
				return addr, nil
			}
		}
	}
	return 0, fmt.Errorf("no syscall instruction found in process %d", s.pid)
}

func isSyscallAt(tid int, addr uint64) bool {
	buf := make([]byte, 2)
	n, err := unix.PtracePeekText(tid, uintptr(addr), buf)
	return err == nil && n == 2 && buf[0] == 0x0f && buf[1] == 0x05
}

// searchSyscall reads a mapping through /proc/PID/task/TID/mem of the
// stopped thread tid (allowed to its tracer; a leader that exited has no
// mm, so its own /proc/PID/mem reads nothing) and returns the address of
// the first 0f 05 in it. Where the bytes
// sit inside a longer instruction does not matter: the CPU decodes from rip,
// and only this one instruction is executed.
func (s *session) searchSyscall(tid int, m mapping) (uint64, error) {
	f, err := os.Open(s.proc.mem(s.pid, tid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const chunk = 1 << 20
	const limit = 64 << 20
	buf := make([]byte, chunk+1)
	for pos := m.start; pos < m.end && pos-m.start < limit; pos += chunk {
		n := int(min(uint64(len(buf)), m.end-pos))
		n, err := f.ReadAt(buf[:n], int64(pos))
		if n < 2 {
			return 0, fmt.Errorf("reading %x in %d: %v", pos, s.pid, err)
		}
		if i := bytes.Index(buf[:n], []byte{0x0f, 0x05}); i >= 0 {
			return pos + uint64(i), nil
		}
	}
	return 0, errors.New("no syscall instruction")
}

// call runs one syscall in a stopped thread and returns its raw result
// (-errno on failure, see errnoOf). The thread's registers are saved on the
// first call into it, and restored by release.
//
// The thread is pointed at the syscall instruction with the number in rax
// and the arguments in rdi, rsi, rdx, r10, r8, r9 (syscall(2)), orig_rax -1
// so that leaving the current stop does not take it for a syscall to
// restart, then single-stepped: the step trap (SIGTRAP) comes once the
// syscall has returned, with rip just past it. A signal that turns up
// meanwhile is held for release; a trap before the instruction ran (a stop
// reported on the way out of the kernel) just means stepping again.
func (s *session) call(th *thread, nr uintptr, args ...uintptr) (uintptr, error) {
	if th.saved == nil {
		var regs unix.PtraceRegs
		if err := unix.PtraceGetRegs(th.tid, &regs); err != nil {
			return 0, s.lost(th, err)
		}
		th.saved = &regs
	}
	regs := *th.saved
	var a [6]uint64
	for i, v := range args {
		a[i] = uint64(v)
	}
	in := s.describe(th, nr, args)
	regs.Rip, regs.Rax, regs.Orig_rax = s.sysAddr, uint64(nr), ^uint64(0)
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := unix.PtraceSetRegs(th.tid, &regs); err != nil {
		return 0, s.lost(th, err)
	}
	if s.r.hooks.inject != nil {
		s.r.hooks.inject(s.pid, th.tid)
	}
	for step := 0; ; step++ {
		if step > 64 {
			return 0, fmt.Errorf("thread %d of %d: injected syscall %d never completed a step", th.tid, s.pid, nr)
		}
		if err := unix.PtraceSingleStep(th.tid); err != nil {
			return 0, s.lost(th, err)
		}
		ws, err := s.waitInjected(th, in)
		if err != nil {
			return 0, err
		}
		if ptraceEvent(ws) != 0 {
			continue // a group-stop or interrupt trap: step on
		}
		if sig := ws.StopSignal(); sig != unix.SIGTRAP {
			if si, err := ptraceGetSiginfo(th.tid); err == nil {
				th.signals = append(th.signals, si)
			}
			continue
		}
		var now unix.PtraceRegs
		if err := unix.PtraceGetRegs(th.tid, &now); err != nil {
			return 0, s.lost(th, err)
		}
		switch now.Rip {
		case s.sysAddr + 2:
			return uintptr(now.Rax), nil
		case s.sysAddr:
			continue
		default:
			return 0, fmt.Errorf("thread %d of %d: stepped to %#x, not past the injected syscall at %#x", th.tid, s.pid, now.Rip, s.sysAddr)
		}
	}
}

// waitInjected waits for the thread to stop again after a step into the
// injected syscall in. Past the inject timeout the caller is told, with a
// StuckError naming the call, and the wait goes on without a limit: a
// thread inside an injected syscall cannot be handed back until it returns
// and its registers are restored (a tracer that left it there would have it
// return into the step trap and die of SIGTRAP).
func (s *session) waitInjected(th *thread, in injected) (unix.WaitStatus, error) {
	deadline := time.Now().Add(s.injectTimeout())
	b := backoff{wake: s.wake}
	for {
		ws, ok, err := poll(th.tid)
		switch {
		case err != nil:
			th.gone = true
			return 0, fmt.Errorf("process %d: %w", s.pid, ErrGone)
		case ok && (ws.Exited() || ws.Signaled()):
			th.gone = true
			return 0, fmt.Errorf("process %d: %w (killed while being revoked)", s.pid, ErrGone)
		case ok:
			return ws, nil
		}
		if !s.replied && time.Now().After(deadline) {
			s.replied = true
			b.max = 10 * time.Millisecond
			s.stuck(s.stuckError(th, in))
		}
		b.pause()
	}
}

// lost turns a failed ptrace call on a stopped thread into an error: ESRCH
// means it was killed (SIGKILL wakes even a traced thread).
func (s *session) lost(th *thread, err error) error {
	if err == unix.ESRCH {
		th.reap = true
		return fmt.Errorf("process %d: %w (thread %d vanished)", s.pid, ErrGone, th.tid)
	}
	return fmt.Errorf("ptrace on thread %d of %d: %w", th.tid, s.pid, err)
}

// errnoOf decodes a raw syscall return: -4095..-1 is -errno.
func errnoOf(ret uintptr) unix.Errno {
	if v := int64(ret); v < 0 && v >= -4095 {
		return unix.Errno(-v)
	}
	return 0
}
