package taskfiles

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The main goroutine keeps the leader thread (it only waits for the
// tests): a goroutine that unshares its fd table never runs on the leader,
// whose table is the process's for every other test.
func init() { runtime.LockOSThread() }

// load loads the iterator: root on these machines (a kernel with BTF,
// 6.8+) must be able to; anyone else is refused by the kernel (CAP_BPF,
// CAP_PERFMON), and the test says so and skips.
func load(t *testing.T) *Iterator {
	t.Helper()
	it, err := Load()
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("the task_file iterator needs root (CAP_BPF and CAP_PERFMON): %v", err)
		}
		t.Fatalf("Load as root: %v", err)
	}
	t.Cleanup(func() { it.Close() })
	return it
}

func read(t *testing.T, it *Iterator) *Snapshot {
	t.Helper()
	s, err := it.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func filesOf(s *Snapshot, task *Task) map[int]File {
	out := map[int]File{}
	s.Files(task, func(f File) { out[f.FD] = f })
	return out
}

func openT(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// startTicks is /proc/self/stat's start time (field 22), in clock ticks.
func startTicks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestReadAgreesWithStatx: for every fd of this process, the iterator
// says what statx of /proc/self/fd/N says (unique mount ID, device, inode,
// a deleted file's link count) and the access mode the fd was opened
// with; the process's start time is /proc/PID/stat's.
func TestReadAgreesWithStatx(t *testing.T) {
	it := load(t)
	dir := t.TempDir()
	for _, n := range []string{"r", "w", "rw", "gone"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int]string{
		openT(t, filepath.Join(dir, "r"), unix.O_RDONLY):    "r",
		openT(t, filepath.Join(dir, "w"), unix.O_WRONLY):    "w",
		openT(t, filepath.Join(dir, "rw"), unix.O_RDWR):     "rw",
		openT(t, filepath.Join(dir, "gone"), unix.O_RDONLY): "r",
		openT(t, "/dev/null", unix.O_WRONLY):                "w",
	}
	if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	want[p[0]], want[p[1]] = "r", "w"

	s := read(t, it)
	tasks := s.Tasks(os.Getpid())
	if len(tasks) == 0 || tasks[0].TID != os.Getpid() || tasks[0].TGID != os.Getpid() {
		t.Fatalf("tasks of pid %d: %+v, want the leader's table first", os.Getpid(), tasks)
	}
	if got, want := tasks[0].Start/uint64(1e7), startTicks(t); got != want {
		t.Errorf("start %d ticks, /proc/self/stat says %d", got, want)
	}
	files := filesOf(s, tasks[0])
	for fd, mode := range want {
		f, ok := files[fd]
		if !ok {
			t.Errorf("fd %d not read", fd)
			continue
		}
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), 0,
			unix.STATX_INO|unix.STATX_NLINK|unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
			t.Fatal(err)
		}
		if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
			t.Skip("this kernel has no STATX_MNT_ID_UNIQUE")
		}
		w := File{FD: fd, Mount: stx.Mnt_id, Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino,
			Deleted: stx.Nlink == 0, Read: strings.Contains(mode, "r"), Write: strings.Contains(mode, "w")}
		if f != w {
			t.Errorf("fd %d: iterator %+v, statx and open mode %+v", fd, f, w)
		}
	}
	if !files[p[0]].Read || files[p[0]].Write {
		t.Errorf("pipe read end %+v", files[p[0]])
	}
}

// TestThreadOwnTable: a thread that did unshare(CLONE_FILES) has a table
// of its own, read as its own task (its tid, another table address),
// while threads that share the leader's table are not read again.
func TestThreadOwnTable(t *testing.T) {
	it := load(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	type own struct{ tid, fd int }
	ready, done := make(chan own), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		// Locked and never unlocked: the thread exits with its table
		// when this goroutine returns.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FILES); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Open(file, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		ready <- own{unix.Gettid(), fd}
		<-done
	}()
	var o own
	select {
	case err := <-errc:
		t.Fatal(err)
	case o = <-ready:
	}
	defer close(done)
	s := read(t, it)
	tasks := s.Tasks(os.Getpid())
	if o.tid == os.Getpid() {
		t.Fatal("the unsharing goroutine ran on the leader thread")
	}
	var leader, thread *Task
	for _, task := range tasks {
		switch task.TID {
		case os.Getpid():
			leader = task
		case o.tid:
			thread = task
		}
	}
	for _, task := range tasks {
		// The iterator leaves out the threads that share the leader's
		// table (task_seq_get_next's skip_if_dup_files).
		if leader != nil && task != leader && task.Table == leader.Table {
			t.Errorf("task %d read, which shares the leader's table", task.TID)
		}
	}
	if leader == nil || thread == nil {
		t.Fatalf("tasks %+v: want the leader %d and the thread %d", tasks, os.Getpid(), o.tid)
	}
	if thread.Table == leader.Table || thread.TGID != os.Getpid() {
		t.Errorf("thread %+v, leader %+v: want one process, two tables", thread, leader)
	}
	f, ok := filesOf(s, thread)[o.fd]
	if !ok || !f.Read || !f.Write {
		t.Errorf("thread's fd %d: %+v (read %v)", o.fd, f, ok)
	}
	if lf, ok := filesOf(s, leader)[o.fd]; ok && lf.Ino == f.Ino && lf.Mount == f.Mount {
		t.Errorf("the thread's file is in the leader's table too: %+v", lf)
	}
}

// TestProgramRefused: a program the verifier refuses is an error that
// says why (the verifier's last line), not a crash or a silent procfs.
func TestProgramRefused(t *testing.T) {
	load(t)
	facts, err := readBTF(vmlinuxBTF, nil, nil, "bpf_iter_task_file")
	if err != nil {
		t.Fatal(err)
	}
	// Offsets all 0: the program reads ctx->task as the file and the
	// fd as a pointer, which the verifier sees through.
	_, err = loadProgram(program(offsets{upidSize: 8}), facts.funcID)
	if err == nil {
		t.Skip("the verifier took a program of zero offsets (reads are probe reads): nothing to refuse")
	}
	if !strings.Contains(err.Error(), ":") {
		t.Errorf("error %q does not say why", err)
	}
}
