//go:build linux && amd64

package revoke

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// emptyDirFile returns the Revoker's empty directory, made on first use
// and kept until Close: the root of a tiny tmpfs made with fsopen(2),
// fsconfig(2) and fsmount(2) with MOUNT_ATTR_RDONLY, and never attached
// by move_mount(2). It belongs to no mount namespace's tree, so a thread
// whose cwd it is finds nothing by a relative path, cannot create anything
// (EROFS), and ".." leads back into it (the root of its own mount, with no
// parent). The fd is O_PATH, as every fsmount fd is; it lives as long as
// something uses it (a moved cwd, a placeholder).
func (r *Revoker) emptyDirFile() (*os.File, error) {
	r.emptyMu.Lock()
	defer r.emptyMu.Unlock()
	if r.emptyDir != nil {
		return r.emptyDir, nil
	}
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	for _, kv := range [][2]string{{"size", "4k"}, {"nr_inodes", "2"}, {"mode", "0555"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("fsconfig tmpfs %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("fsconfig create tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC,
		unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsmount tmpfs: %w", err)
	}
	r.emptyDir = os.NewFile(uintptr(mfd), "mounttop-empty-dir")
	return r.emptyDir, nil
}

// pidfdThread is PIDFD_THREAD (O_EXCL), include/uapi/linux/pidfd.h.
const pidfdThread = unix.O_EXCL

// Where handInEmptyDir keeps its data in the scratch page.
const (
	scratchPair    = 0   // int32[2] from socketpair(2)
	scratchByte    = 64  // the one byte of the datagram
	scratchIov     = 128 // struct iovec
	scratchMsg     = 192 // struct msghdr
	scratchControl = 256 // the control buffer: one SCM_RIGHTS fd
)

// handInEmptyDir gives the process an fd of the Revoker's empty directory,
// for fchdir(2) and the placeholders. A root process can take a tracee's
// fds (pidfd_getfd(2)), but the tracee, usually not root, may not take
// ours, so the fd goes in the other way round, as SCM_RIGHTS (unix(7)):
// the process makes a socketpair, we take one end with pidfd_getfd and
// send the fd through it, and the process receives it with recvmsg. It
// returns the fd number in the process, or why not (in words: the
// process's fd limit, an LSM denying the socket) with fd -1; err is for a
// ptrace failure that ends the revoke. ours are the fds made in the
// process (the socketpair's ends, the received fd), which the caller
// closes (closeOurs) once it is done with dir, also after an error.
func (s *session) handInEmptyDir(inj *thread) (fd int, why string, ours []int, err error) {
	dir, derr := s.r.emptyDirFile()
	if derr != nil {
		return -1, "making the empty directory: " + derr.Error(), nil, nil
	}
	ret, err := s.call(inj, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, uintptr(s.scratch+scratchPair))
	if err != nil {
		return -1, "", nil, err
	}
	if e := errnoOf(ret); e != 0 {
		return -1, "socketpair: " + errnoName(e), nil, nil
	}
	pair := make([]byte, 8)
	if perr := s.peek(inj, s.scratch+scratchPair, pair); perr != nil {
		return -1, "", nil, s.lost(inj, perr)
	}
	ends := []int{int(int32(binary.LittleEndian.Uint32(pair))), int(int32(binary.LittleEndian.Uint32(pair[4:])))}
	ours = ends
	if why := sendDir(s.pid, inj.tid, ends[1], dir); why != "" {
		return -1, why, ours, nil
	}
	page := make([]byte, scratchControl+unix.CmsgSpace(4))
	le := binary.LittleEndian
	le.PutUint64(page[scratchIov:], s.scratch+scratchByte) // iov_base
	le.PutUint64(page[scratchIov+8:], 1)                   // iov_len
	le.PutUint64(page[scratchMsg+16:], s.scratch+scratchIov)
	le.PutUint64(page[scratchMsg+24:], 1) // msg_iovlen
	le.PutUint64(page[scratchMsg+32:], s.scratch+scratchControl)
	le.PutUint64(page[scratchMsg+40:], uint64(unix.CmsgSpace(4))) // msg_controllen
	if perr := s.poke(inj, s.scratch+scratchByte, page[scratchByte:]); perr != nil {
		return -1, "", ours, s.lost(inj, perr)
	}
	ret, err = s.call(inj, unix.SYS_RECVMSG, uintptr(ends[0]), uintptr(s.scratch+scratchMsg), unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
	if err != nil {
		return -1, "", ours, err
	}
	if e := errnoOf(ret); e != 0 {
		return -1, "recvmsg: " + errnoName(e), ours, nil
	}
	if perr := s.peek(inj, s.scratch+scratchMsg, page[scratchMsg:]); perr != nil {
		return -1, "", ours, s.lost(inj, perr)
	}
	if flags := le.Uint32(page[scratchMsg+48:]); flags&unix.MSG_CTRUNC != 0 {
		// The fd did not fit (RLIMIT_NOFILE reached): the kernel drops it.
		return -1, "recvmsg: the fd was not received (MSG_CTRUNC: fd limit reached?)", ours, nil
	}
	n := le.Uint64(page[scratchMsg+40:])
	msgs, perr := unix.ParseSocketControlMessage(page[scratchControl : scratchControl+int(min(n, uint64(unix.CmsgSpace(4))))])
	if perr != nil || len(msgs) != 1 {
		return -1, fmt.Sprintf("recvmsg: no fd received (%d control messages, %v)", len(msgs), perr), ours, nil
	}
	got, perr := unix.ParseUnixRights(&msgs[0])
	if perr != nil || len(got) != 1 {
		return -1, fmt.Sprintf("recvmsg: no fd received (%v)", perr), ours, nil
	}
	return got[0], "", append(ours, got[0]), nil
}

// peek reads len(b) bytes at addr in the stopped process: by one
// process_vm_readv(2) (the tracer may: ptrace access), or word by word
// with PTRACE_PEEKDATA where that is refused.
func (s *session) peek(th *thread, addr uint64, b []byte) error {
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	if n, err := unix.ProcessVMReadv(th.tid, local, remote, 0); err == nil && n == len(b) {
		return nil
	}
	_, err := unix.PtracePeekData(th.tid, uintptr(addr), b)
	return err
}

// poke writes b at addr in the stopped process, as peek reads.
func (s *session) poke(th *thread, addr uint64, b []byte) error {
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	if n, err := unix.ProcessVMWritev(th.tid, local, remote, 0); err == nil && n == len(b) {
		return nil
	}
	_, err := unix.PtracePokeData(th.tid, uintptr(addr), b)
	return err
}

// sendDir takes end (an fd of thread tid of process pid: one end of its
// socketpair) with pidfd_getfd(2) and sends dir through it as SCM_RIGHTS.
// pidfd_getfd takes the fd from the fd table of the pidfd's task: for a
// thread other than the leader (one with a table of its own, or any when
// the leader exited and has none) that is a thread pidfd (pidfd_open(2)
// PIDFD_THREAD, Linux 6.9).
func sendDir(pid, tid, end int, dir *os.File) (why string) {
	flags := 0
	if tid != pid {
		flags = pidfdThread
	}
	pidfd, err := unix.PidfdOpen(tid, flags)
	if err != nil {
		return "pidfd_open: " + err.Error()
	}
	defer unix.Close(pidfd)
	sock, err := unix.PidfdGetfd(pidfd, end, 0)
	if err != nil {
		return "pidfd_getfd: " + err.Error()
	}
	defer unix.Close(sock)
	if err := unix.Sendmsg(sock, []byte{0}, unix.UnixRights(int(dir.Fd())), nil, unix.MSG_DONTWAIT); err != nil {
		return "sendmsg: " + err.Error()
	}
	return ""
}
