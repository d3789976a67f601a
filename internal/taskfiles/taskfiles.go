// Package taskfiles reads every task's open files in one pass, through the
// kernel's task_file BPF iterator (bpf-iterators in the kernel's BPF
// documentation; kernel/bpf/task_iter.c), instead of a statx(2) of every
// /proc/PID/fd/N link.
//
// Why: a scan's cost is the per-fd statx, each a path walk through procfs
// (lookup, revalidate, follow the magic link, getattr), plus the getdents
// of every fd directory; on a machine with 200,000 open files that is
// over two thirds of a scan's CPU (perf at 2,000 processes: 4,429 of
// 6,374 samples; bench/README.md, issue 12). The iterator
// walks each task's fd table in the kernel and hands every open file to a
// small program, which copies what a scan needs (the unique mount ID, the
// device and inode, the link count, the access mode) into one read buffer:
// no path, no lookup, no call into any filesystem (a dead server is never
// asked; the program only reads kernel memory with bpf_probe_read_kernel).
//
// It needs CAP_BPF and CAP_PERFMON (root), a kernel with BTF and
// STATX_MNT_ID_UNIQUE's mnt_id_unique (6.8+). Load says why it cannot, and
// the caller scans procfs instead: an ordinary user, a user namespace,
// an older kernel.
//
// The program is written here with cilium/ebpf's assembler (asm), with
// the field offsets of the running kernel's BTF (btf.go), and loaded with
// bpf(2) directly: no compiler, no object file, no offsets baked in for
// one kernel build. cilium/ebpf's loader would do the loading too, but it
// reads the BTF with its btf package, whose 10 MB of peak memory is more
// than a scan's own (btf.go says why).
package taskfiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// recordSize is the size of one record the program writes (see program).
const recordSize = 64

// Iterator is a loaded task_file iterator: open it once, read it for every
// scan. Reads may run at once: each is a pass of its own (BPF_ITER_CREATE
// makes a new seq file from the link every time).
type Iterator struct {
	prog, link int // the program's and the link's fds
}

// Load loads the iterator program into the kernel. The error says why it
// cannot be (no permission, no BTF, an older kernel); it is not fatal to a
// scan, which reads procfs instead.
func Load() (*Iterator, error) {
	facts, err := readBTF(vmlinuxBTF,
		[]string{"bpf_iter__task_file", "file", "path", "inode", "super_block", "mount", "task_struct", "pid", "upid"},
		[]string{"task", "fd", "file", "f_inode", "f_mode", "f_path", "mnt", "i_ino", "__i_nlink", "i_sb", "s_dev",
			"mnt_id_unique", "thread_pid", "group_leader", "start_boottime", "files", "level", "numbers", "nr"},
		"bpf_iter_task_file")
	if err != nil {
		return nil, fmt.Errorf("taskfiles: kernel BTF: %w", err)
	}
	off, err := readOffsets(facts)
	if err != nil {
		return nil, fmt.Errorf("taskfiles: kernel BTF: %w", err)
	}
	prog, err := loadProgram(program(off), facts.funcID)
	if err != nil {
		return nil, fmt.Errorf("taskfiles: loading the task_file iterator: %w", err)
	}
	l, err := attachIter(prog)
	if err != nil {
		unix.Close(prog)
		return nil, fmt.Errorf("taskfiles: attaching the task_file iterator: %w", err)
	}
	return &Iterator{prog: prog, link: l}, nil
}

// Close releases the program and its link.
func (it *Iterator) Close() error {
	if it == nil {
		return nil
	}
	return errors.Join(unix.Close(it.link), unix.Close(it.prog))
}

// bpf is the bpf(2) system call with an attribute block of the kernel's
// union bpf_attr layout for cmd.
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	runtime.KeepAlive(attr)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// progLoadAttr is union bpf_attr's BPF_PROG_LOAD part, up to the fields
// used (include/uapi/linux/bpf.h).
type progLoadAttr struct {
	progType, insnCnt   uint32
	insns, license      uint64
	logLevel, logSize   uint32
	logBuf              uint64
	kernVersion, flags  uint32
	name                [16]byte
	ifindex, attachType uint32
	btfFD, funcInfoSize uint32
	funcInfo            uint64
	funcInfoCnt, lineSz uint32
	lineInfo            uint64
	lineInfoCnt         uint32
	attachBTFID         uint32
	attachFD, coreCnt   uint32
}

// loadProgram loads insns as a tracing program of the task_file iterator
// (attach point funcID in vmlinux's BTF); on a verifier refusal the error
// carries the verifier's last line.
func loadProgram(insns asm.Instructions, funcID uint32) (int, error) {
	var code bytes.Buffer
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		return -1, err
	}
	// bpf_probe_read_kernel and bpf_seq_write are GPL-only helpers: the
	// kernel loads the program only under a GPL-compatible license.
	license := []byte("GPL\x00")
	b := code.Bytes()
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_TRACING, insnCnt: uint32(len(b) / asm.InstructionSize),
		insns: uint64(uintptr(unsafe.Pointer(&b[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		attachType: unix.BPF_TRACE_ITER, attachBTFID: funcID,
	}
	copy(attr.name[:], "mounttop_files")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil && !errors.Is(err, unix.EPERM) {
		// Again with the verifier's log, to say why.
		logBuf := make([]byte, 64<<10)
		defer runtime.KeepAlive(logBuf)
		attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(logBuf)), uint64(uintptr(unsafe.Pointer(&logBuf[0])))
		if _, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err2 != nil {
			lines := strings.Split(strings.TrimRight(string(logBuf[:bytes.IndexByte(logBuf, 0)+1]), "\x00\n"), "\n")
			err = fmt.Errorf("%w: %s", err, lines[len(lines)-1])
		}
	}
	runtime.KeepAlive(b)
	runtime.KeepAlive(license)
	return fd, err
}

// attachIter makes the iterator's link (BPF_LINK_CREATE, attach type
// BPF_TRACE_ITER, no filter: every task).
func attachIter(prog int) (int, error) {
	attr := struct {
		progFD, targetFD, attachType, flags uint32
		iterInfo                            uint64
		iterInfoLen                         uint32
		_                                   uint32
	}{progFD: uint32(prog), attachType: unix.BPF_TRACE_ITER}
	return bpf(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// open starts one pass of the iterator: an fd to read (BPF_ITER_CREATE).
func (it *Iterator) open() (*os.File, error) {
	attr := struct{ linkFD, flags uint32 }{linkFD: uint32(it.link)}
	fd, err := bpf(unix.BPF_ITER_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "bpf_iter task_file"), nil
}

// offsets are the byte offsets of the kernel fields the program reads, from
// the running kernel's BTF.
type offsets struct {
	ctxTask, ctxFD, ctxFile int16 // struct bpf_iter__task_file
	fileInode, fileMode     int32 // struct file
	fileMnt                 int32 // file.f_path.mnt
	inodeIno, inodeNlink    int32 // struct inode (i_nlink is in an anonymous union)
	inodeSB                 int32
	sbDev                   int32 // struct super_block
	mountUnique             int32 // struct mount: mnt_id_unique, from its embedded vfsmount
	taskPid, taskLeader     int32 // struct task_struct
	taskStart, taskFiles    int32
	pidLevel, pidNumbers    int32 // struct pid
	upidSize, upidNr        int32 // struct upid
}

func readOffsets(b *btfFacts) (offsets, error) {
	var o offsets
	var errs []error
	get := func(typ, name string) int32 {
		v, err := b.offset(typ, name)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	o.ctxTask = int16(get("bpf_iter__task_file", "task"))
	o.ctxFD = int16(get("bpf_iter__task_file", "fd"))
	o.ctxFile = int16(get("bpf_iter__task_file", "file"))
	o.fileInode = get("file", "f_inode")
	o.fileMode = get("file", "f_mode")
	o.fileMnt = get("file", "f_path") + get("path", "mnt")
	o.inodeIno = get("inode", "i_ino")
	o.inodeNlink = get("inode", "__i_nlink")
	o.inodeSB = get("inode", "i_sb")
	o.sbDev = get("super_block", "s_dev")
	// container_of(vfsmount, struct mount, mnt)->mnt_id_unique, relative
	// to the vfsmount pointer that file.f_path.mnt holds.
	o.mountUnique = get("mount", "mnt_id_unique") - get("mount", "mnt")
	o.taskPid = get("task_struct", "thread_pid")
	o.taskLeader = get("task_struct", "group_leader")
	o.taskStart = get("task_struct", "start_boottime")
	o.taskFiles = get("task_struct", "files")
	o.pidLevel = get("pid", "level")
	o.pidNumbers = get("pid", "numbers")
	o.upidNr = get("upid", "nr")
	size, err := b.size("upid")
	if err != nil {
		errs = append(errs, err)
	}
	o.upidSize = size
	return o, errors.Join(errs...)
}

// The record, at rec(FP) on the program's stack, little-endian:
//
//	 0 tgid     u32  the process, in the reader's pid namespace
//	 4 tid      u32  the task whose fd table this is
//	 8 fd       u32
//	12 nlink    u32  0: the file was deleted
//	16 mount    u64  the unique mount ID (statx STATX_MNT_ID_UNIQUE's)
//	24 ino      u64
//	32 dev      u32  the superblock's dev_t, kernel encoding (major<<20|minor)
//	36 mode     u32  f_mode: FMODE_READ 1, FMODE_WRITE 2
//	40 start    u64  the process's start, ns since boot (start_boottime)
//	48 table    u64  the fd table's address: equal for tasks that share one
//	56 (zero)
const (
	rec      = -recordSize
	tmp      = rec - 8  // a pointer read, before it is loaded into a register
	nrOffset = tmp - 8  // pid.numbers[level].nr's offset in struct pid
	stackTop = nrOffset // the lowest stack slot used
)

// program is the iterator's program: for each (task, fd, file) the
// iterator visits it fills one record and writes it with bpf_seq_write.
// Every kernel field is read with bpf_probe_read_kernel, which never
// faults; the pids are read in the reader's own pid namespace, the one
// the task iterator walks (task_active_pid_ns of the reading task): at
// pid.numbers[current's level].
func program(o offsets) asm.Instructions {
	read := func(dst int16, size int32, base asm.Register, off int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, int32(dst)),
			asm.Mov.Imm(asm.R2, size),
			asm.Mov.Reg(asm.R3, base), asm.Add.Imm(asm.R3, off),
			asm.FnProbeReadKernel.Call(),
		}
	}
	// ptr reads a pointer at base+off into register into (0 if the read
	// failed: the slot is zeroed first).
	ptr := func(into, base asm.Register, off int32) asm.Instructions {
		return append(asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.StoreMem(asm.RFP, tmp, asm.R0, asm.DWord)},
			append(read(tmp, 8, base, off), asm.LoadMem(into, asm.RFP, tmp, asm.DWord))...)
	}
	// pidNr reads the pid number of struct pid *base in our namespace into
	// the record at dst.
	pidNr := func(dst int16, base asm.Register) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, int32(dst)),
			asm.Mov.Imm(asm.R2, 4),
			asm.LoadMem(asm.R3, asm.RFP, nrOffset, asm.DWord),
			asm.Add.Reg(asm.R3, base),
			asm.FnProbeReadKernel.Call(),
		}
	}
	var p asm.Instructions
	p = append(p, asm.Mov.Imm(asm.R0, 0))
	for s := int16(stackTop); s < 0; s += 8 {
		p = append(p, asm.StoreMem(asm.RFP, s, asm.R0, asm.DWord))
	}
	p = append(p,
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, o.ctxTask, asm.DWord),
		asm.LoadMem(asm.R8, asm.R6, o.ctxFile, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "out"), // the end of the iteration: no task
		asm.JEq.Imm(asm.R8, 0, "out"),
		asm.LoadMem(asm.R0, asm.R6, o.ctxFD, asm.Word),
		asm.StoreMem(asm.RFP, rec+8, asm.R0, asm.Word),
	)
	// Our level: current->thread_pid->level; the nr's offset follows.
	p = append(p, asm.FnGetCurrentTask.Call(), asm.Mov.Reg(asm.R9, asm.R0))
	p = append(p, ptr(asm.R9, asm.R9, o.taskPid)...)
	p = append(p, read(nrOffset, 4, asm.R9, o.pidLevel)...)
	p = append(p,
		asm.LoadMem(asm.R0, asm.RFP, nrOffset, asm.Word),
		asm.Mul.Imm(asm.R0, o.upidSize),
		asm.Add.Imm(asm.R0, o.pidNumbers+o.upidNr),
		asm.StoreMem(asm.RFP, nrOffset, asm.R0, asm.DWord),
	)
	// The file.
	p = append(p, read(rec+36, 4, asm.R8, o.fileMode)...)
	p = append(p, ptr(asm.R9, asm.R8, o.fileMnt)...)
	p = append(p, read(rec+16, 8, asm.R9, o.mountUnique)...)
	p = append(p, ptr(asm.R9, asm.R8, o.fileInode)...)
	p = append(p, read(rec+24, 8, asm.R9, o.inodeIno)...)
	p = append(p, read(rec+12, 4, asm.R9, o.inodeNlink)...)
	p = append(p, ptr(asm.R9, asm.R9, o.inodeSB)...)
	p = append(p, read(rec+32, 4, asm.R9, o.sbDev)...)
	// The task: its fd table, tid, and its process's tgid and start.
	p = append(p, read(rec+48, 8, asm.R7, o.taskFiles)...)
	p = append(p, ptr(asm.R9, asm.R7, o.taskPid)...)
	p = append(p, pidNr(rec+4, asm.R9)...)
	p = append(p, ptr(asm.R9, asm.R7, o.taskLeader)...)
	p = append(p, read(rec+40, 8, asm.R9, o.taskStart)...)
	p = append(p, ptr(asm.R9, asm.R9, o.taskPid)...)
	p = append(p, pidNr(rec+0, asm.R9)...)
	// bpf_seq_write(ctx->meta->seq, rec, recordSize)
	p = append(p,
		asm.LoadMem(asm.R1, asm.R6, 0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R1, 0, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, rec),
		asm.Mov.Imm(asm.R3, recordSize),
		asm.FnSeqWrite.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
	return p
}

// File is one open file of a task, as the iterator saw it.
type File struct {
	FD      int
	Mount   uint64 // the unique mount ID
	Dev     uint64 // the filesystem's device, unix.Mkdev's encoding
	Ino     uint64 // the kernel's inode number (i_ino, as /proc/locks shows it); 0 where Read's keepIno said no
	Deleted bool   // no link is left (nlink 0)
	Read    bool   // opened for reading (FMODE_READ)
	Write   bool   // opened for writing (FMODE_WRITE)
}

// Task is one task's fd table, as the iterator saw it: the process's
// leader, and each other thread whose table is not its leader's
// (unshare(CLONE_FILES)). The iterator skips a thread only when its table
// is the leader's (task_seq_get_next's skip_if_dup_files): threads that
// share another table each come, with the same Table (verified on 6.18:
// a leader that unshared its table leaves every other thread read, one
// table among them), so callers tell tables apart by Table.
type Task struct {
	TGID, TID int
	// Start is the process's start in ns since boot, which names it with
	// its pid: /proc/PID/stat's start time is Start/(1e9/USER_HZ) ticks.
	Start uint64
	// Table is the fd table's kernel address: tasks with the same Table
	// share one table. A key, never shown.
	Table      uint64
	start, end int // its files' indices in Snapshot.files
}

// Snapshot is every task's open files at one read of the iterator.
type Snapshot struct {
	tasks map[int]*Task // by tid
	byPID map[int][]*Task
	// files are every task's files in chunks of chunkLen: a slice
	// grown by append would copy itself and double, which at 200,000
	// files is 3 MB more at the peak; chunks grow by what is read.
	files [][]file
	n     int // files read
	keys  []fileKey
	// inos are the inode numbers kept (Read's keepIno), by file index.
	inos map[int]uint64
}

const chunkLen = 8192

// file is a File, compact: 200,000 of them are 1.6 MB. The inode number,
// which only a use shown in detail, a lock or a file on an unknown mount
// needs, is kept aside (Snapshot.inos).
type file struct {
	key uint32 // index into keys: the mount and device
	fd  uint32 // fd; bit 31 read, bit 30 write, bit 29 deleted
}

type fileKey struct {
	mount uint64
	dev   uint64
}

const (
	fdRead    = 1 << 31
	fdWrite   = 1 << 30
	fdDeleted = 1 << 29
	fdMask    = fdDeleted - 1 // NR_OPEN's bound (fs.nr_open <= 2^30) fits
)

// Tasks lists the fd tables of process tgid: its leader's first, then
// each thread's own, in tid order; nil if the iterator saw none.
func (s *Snapshot) Tasks(tgid int) []*Task { return s.byPID[tgid] }

// Files calls fn for each open file of task t, in fd order.
func (s *Snapshot) Files(t *Task, fn func(File)) {
	for i := t.start; i < t.end; i++ {
		f := s.files[i/chunkLen][i%chunkLen]
		k := s.keys[f.key]
		fn(File{FD: int(f.fd & fdMask), Mount: k.mount, Dev: k.dev, Ino: s.inos[i],
			Deleted: f.fd&fdDeleted != 0, Read: f.fd&fdRead != 0, Write: f.fd&fdWrite != 0})
	}
}

// Len is the number of open files read.
func (s *Snapshot) Len() int { return s.n }

// add appends f to the files.
func (s *Snapshot) add(f file) {
	if s.n%chunkLen == 0 {
		s.files = append(s.files, make([]file, 0, chunkLen))
	}
	last := &s.files[len(s.files)-1]
	*last = append(*last, f)
	s.n++
}

// Read reads every task's open files: one pass of the iterator, in
// 64 KiB reads. ctx is checked between reads: a read itself never waits
// on a filesystem (the program reads memory only), but a file put by the
// iterator whose last reference it was is released in the reading
// thread (fput's task work), so the caller runs Read where it can be
// abandoned. keepIno says which files' inode numbers the caller needs
// (nil: all); the others read as 0, and a snapshot of 200,000 files is
// half the size.
func (it *Iterator) Read(ctx context.Context, keepIno func(mount, dev uint64) bool) (*Snapshot, error) {
	r, err := it.open()
	if err != nil {
		return nil, fmt.Errorf("taskfiles: opening the iterator: %w", err)
	}
	defer r.Close()
	s := &Snapshot{tasks: map[int]*Task{}, byPID: map[int][]*Task{}, inos: map[int]uint64{}}
	keyOf := map[fileKey]uint32{}
	var cur *Task
	buf := make([]byte, 64<<10)
	have := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, rerr := r.Read(buf[have:])
		have += n
		used := 0
		for ; have-used >= recordSize; used += recordSize {
			rec := buf[used : used+recordSize]
			tid := int(binary.LittleEndian.Uint32(rec[4:]))
			if cur == nil || cur.TID != tid {
				if cur, err = s.task(tid, rec); err != nil {
					return nil, err
				}
			}
			kdev := binary.LittleEndian.Uint32(rec[32:])
			k := fileKey{mount: binary.LittleEndian.Uint64(rec[16:]), dev: unix.Mkdev(kdev>>20, kdev&(1<<20-1))}
			idx, ok := keyOf[k]
			if !ok {
				idx = uint32(len(s.keys))
				s.keys = append(s.keys, k)
				keyOf[k] = idx
			}
			fd := binary.LittleEndian.Uint32(rec[8:]) & fdMask
			mode := binary.LittleEndian.Uint32(rec[36:])
			if mode&1 != 0 {
				fd |= fdRead
			}
			if mode&2 != 0 {
				fd |= fdWrite
			}
			if binary.LittleEndian.Uint32(rec[12:]) == 0 {
				fd |= fdDeleted
			}
			if ino := binary.LittleEndian.Uint64(rec[24:]); keepIno == nil || keepIno(k.mount, k.dev) {
				s.inos[s.n] = ino
			}
			s.add(file{key: idx, fd: fd})
			cur.end = s.n
		}
		have = copy(buf, buf[used:have])
		if rerr == io.EOF || (rerr == nil && n == 0) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("taskfiles: reading the iterator: %w", rerr)
		}
	}
	if have != 0 {
		return nil, fmt.Errorf("taskfiles: the iterator ended inside a record (%d bytes)", have)
	}
	for _, ts := range s.byPID {
		// The leader first, then threads by tid: the iterator walks tids
		// in order, and the leader's tid is its tgid.
		if len(ts) > 1 {
			for i, t := range ts {
				if t.TID == t.TGID && i > 0 {
					ts[0], ts[i] = ts[i], ts[0]
				}
			}
		}
	}
	return s, nil
}

// task starts the task whose record rec is. The iterator visits one
// task's table at a time, so a task's files come together; a task seen
// twice is a reader out of step with the kernel, and no answer.
func (s *Snapshot) task(tid int, rec []byte) (*Task, error) {
	if _, ok := s.tasks[tid]; ok {
		return nil, fmt.Errorf("taskfiles: task %d came twice", tid)
	}
	t := &Task{TGID: int(binary.LittleEndian.Uint32(rec[0:])), TID: tid,
		Start: binary.LittleEndian.Uint64(rec[40:]), Table: binary.LittleEndian.Uint64(rec[48:]),
		start: s.n, end: s.n}
	s.tasks[tid] = t
	s.byPID[t.TGID] = append(s.byPID[t.TGID], t)
	return t, nil
}
