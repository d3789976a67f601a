package inspect

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"mounttop/internal/kindname"
	"mounttop/internal/taskfiles"
)

// FilesSource says how a scan read the processes' open files.
type FilesSource int

const (
	// FilesProcfs: a statx(2) of every /proc/PID/fd/N link.
	FilesProcfs FilesSource = iota
	// FilesIterator: one pass of the kernel's task_file BPF iterator
	// (internal/taskfiles), with procfs for what it did not see.
	FilesIterator
)

var filesSourceNames = [...]string{FilesProcfs: "procfs", FilesIterator: "task_file iterator"}

// String names the source, as `list --json` and the README say it
// (kindname.Of, as every kind's).
func (f FilesSource) String() string {
	return kindname.Of("FilesSource", filesSourceNames[:], int(f), 0)
}

// WithoutIterator makes the Inspector read open files through procfs
// only, even where the task_file iterator would load: for comparisons
// (tests, bench/) and as the operator's way around a kernel whose
// iterator misbehaves (MOUNTTOP_OPEN_FILES=procfs).
func WithoutIterator() Option { return func(in *Inspector) { in.files = &kernelFiles{off: true} } }

// kernelFiles is an Inspector's task_file iterator, loaded at its first
// scan of processes and kept for the next ones (the view scans every few
// seconds). It is shared by the copies ScanFocus makes.
type kernelFiles struct {
	once sync.Once
	it   *taskfiles.Iterator
	err  error // why the iterator is not used
	off  bool
}

// errOtherPIDNS: the iterator names tasks by their pids in our pid
// namespace, which is the one procRoot shows only if /proc/self is us.
var errOtherPIDNS = errors.New("the proc filesystem is not our pid namespace's")

// Close releases the task_file iterator, if one was loaded. An Inspector
// that is not closed keeps it until the process exits.
func (in *Inspector) Close() error {
	if in.files == nil {
		return nil
	}
	return in.files.it.Close()
}

// kernelSnapshot reads every task's open files through the iterator, or
// returns nil (and why) for a scan through procfs. It loads the iterator
// at the first call. The read runs where it can be abandoned: it never
// reaches a filesystem, but a file whose last reference the iterator held
// is released in the reading thread; past the deadline (perProcess) the
// scan goes on through procfs, whose reads have deadlines of their own.
func (in *Inspector) kernelSnapshot(ctx context.Context, tbl *scanTable) (*taskfiles.Snapshot, error) {
	kf := in.files
	if kf == nil || kf.off {
		return nil, errors.New("disabled")
	}
	if !tbl.uniqueOK {
		return nil, errors.New("the kernel has no unique mount IDs")
	}
	kf.once.Do(func() {
		self, err := os.Readlink(in.procRoot + "/self")
		if err != nil || self != strconv.Itoa(os.Getpid()) {
			kf.err = errOtherPIDNS
			return
		}
		kf.it, kf.err = taskfiles.Load()
	})
	if kf.err != nil {
		return nil, kf.err
	}
	type answer struct {
		s   *taskfiles.Snapshot
		err error
	}
	ctx, cancel := context.WithTimeout(ctx, in.perProcess)
	defer cancel()
	done := make(chan answer, 1) // never blocks the reader, even abandoned
	go func() {
		s, err := kf.it.Read(ctx, func(mount, dev uint64) bool {
			// useFD reads the inode for a use kept in detail, a lock
			// (tbl.locks, by device and inode) and a file on a mount of
			// no table of ours.
			_, known := tbl.byID[MountID(mount)]
			return !known || in.wantDetail(MountID(mount)) || tbl.lockDevs[dev]
		})
		done <- answer{s, err}
	}()
	select {
	case a := <-done:
		return a.s, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// clockTick is /proc/PID/stat's time unit: USER_HZ, 100 on Linux
// (proc(5); sysconf(_SC_CLK_TCK)), whatever the kernel's HZ.
const clockTick = uint64(time.Second / 100)

// kernelTasks are the iterator's fd tables of this process, if the
// iterator saw it: the same pid and the same start time (a pid reused
// since the read is another process, read through procfs).
func (p *proc) kernelTasks() []*taskfiles.Task {
	if p.tbl.kfiles == nil {
		return nil
	}
	ts := p.tbl.kfiles.Tasks(p.pid)
	if len(ts) == 0 || ts[0].Start/clockTick != p.startTicks {
		return nil
	}
	return ts
}

// kernelTask is the iterator's fd table of thread tid (0: the process's
// leader), or nil.
func (p *proc) kernelTask(tid int) *taskfiles.Task {
	if tid == 0 {
		tid = p.pid
	}
	for _, t := range p.kernel {
		if t.TID == tid {
			return t
		}
	}
	return nil
}

// sharesTable reports whether thread tid's fd table is one of the tables
// already read (the threads in tables): by the iterator's table address
// where it saw both, else by kcmp(2) KCMP_FILES.
func (p *proc) sharesTable(tid int, tables []int) bool {
	kt := p.kernelTask(tid)
	for _, other := range tables {
		if ko := p.kernelTask(other); kt != nil && ko != nil {
			if kt.Table == ko.Table {
				return true
			}
			continue
		}
		if sameAs(other, tid, kcmpFiles) {
			return true
		}
	}
	return false
}

// useKernelFiles attributes the open files the iterator saw in task t, as
// scanFDs does those it statx()es: the same uses, the same detail. The fd
// directory (dir/fd) is opened only for what needs a name: the path of a
// use shown in detail, an io_uring's fdinfo, a file on no mount of ours.
func (p *proc) useKernelFiles(dir, tid int, t *taskfiles.Task) {
	fds := lazyDir{parent: dir, name: "fd"}
	defer fds.close()
	p.tbl.kfiles.Files(t, func(f taskfiles.File) {
		p.job.reading(readFD, f.FD)
		tg := target{mount: MountID(f.Mount), dev: f.Dev, ino: f.Ino, nlink: 1}
		_, tg.known = p.tbl.byID[tg.mount]
		if f.Deleted {
			tg.nlink = 0
		}
		acc := AccessUnknown
		switch {
		case f.Read && f.Write:
			acc = AccessReadWrite
		case f.Read:
			acc = AccessRead
		case f.Write:
			acc = AccessWrite
		}
		p.useFD(dir, &fds, f.FD, tid, tg, acc)
	})
}
