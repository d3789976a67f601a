package inspect

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// read is one kind of file a scan reads under /proc/PID. A read of a
// process stuck in the kernel can block: the mm ones take the process's
// mmap_lock (fs/proc/base.c: cmdline and environ through access_remote_vm,
// map_files' lookup; maps through the same lock or, since Linux 6.17,
// per-VMA locks), so a process stuck in a page fault with that lock held (a
// fault on a mapping of a FUSE or NFS file whose server does not answer,
// taken inside a system call) blocks them all behind the writer that
// queues after it.
type read uint8

const (
	readNone read = iota
	readStat
	readNS
	readCwd
	readRoot
	readExe
	readTask
	readFD
	readFDInfo
	readMountinfo
	readCgroup
	readMaps
	readMapFiles
	readCmdline
)

// file is the file under /proc/PID; a %d stands for the fd or thread.
func (r read) file() string {
	switch r {
	case readStat:
		return "stat"
	case readNS:
		return "ns/mnt"
	case readCwd:
		return "cwd"
	case readRoot:
		return "root"
	case readExe:
		return "exe"
	case readTask:
		return "task/%d"
	case readFD:
		return "fd/%d"
	case readFDInfo:
		return "fdinfo/%d"
	case readMountinfo:
		return "mountinfo"
	case readCgroup:
		return "cgroup"
	case readMaps:
		return "maps"
	case readMapFiles:
		return "map_files/"
	case readCmdline:
		return "cmdline"
	}
	return "" // readNone: the open of /proc/PID itself
}

// mm reports a read that takes the process's mmap_lock.
func (r read) mm() bool { return r == readMaps || r == readMapFiles || r == readCmdline }

// name is the file under /proc/PID, with arg in place of %d.
func (r read) name(arg int) string {
	if f := r.file(); strings.Contains(f, "%d") {
		return fmt.Sprintf(f, arg)
	}
	return r.file()
}

// job is one process being read by a scan worker, watched by the scan's
// watchdog. claimed decides, once, whether the worker delivers the result
// or the watchdog abandons the worker.
type job struct {
	pid     int
	start   time.Time
	retry   bool // a second look at a process abandoned earlier in the same scan
	claimed atomic.Bool
	// What the worker is reading now, for the watchdog to name if it
	// abandons the worker: the read, its argument, since when (Unix ns),
	// and the process's start time once stat was read (0 before).
	now       atomic.Uint32 // a read
	arg       atomic.Int64
	since     atomic.Int64
	procStart atomic.Uint64
}

// idleSince is when the read under way started (the job's start before
// the first).
func (j *job) idleSince() time.Time {
	if ns := j.since.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return j.start
}

// reading records that the worker starts r (arg: the fd or thread, or 0).
// The watchdog's deadline runs from here: one read that does not return,
// not a process that has many to make (19,000 fds on a busy machine take
// longer than the deadline, each read returning at once).
func (j *job) reading(r read, arg int) {
	if j == nil {
		return
	}
	j.arg.Store(int64(arg))
	j.since.Store(time.Now().UnixNano())
	j.now.Store(uint32(r))
}

// stuckRead is a read of a process's /proc file that a scan abandoned and
// that has not returned yet: its worker's goroutine, and the OS thread
// under it, are still blocked in the kernel.
type stuckRead struct {
	job   *job
	pid   int
	start uint64 // the process's start time in clock ticks (proc(5) stat field 22); 0 if stat was not read yet
	what  read
	arg   int
	since time.Time
}

// stuckReads is what an Inspector remembers between scans: the processes
// (pid and start time, so that a reused pid is a new process) with a read
// still out. A scan does not ask such a process again what could block (the
// read that is out, and with an mm read all the mm reads) until the read
// returns; so next to a process stuck for good, each scan costs no new
// thread, and the number of threads blocked is at most one per read kind
// per stuck process, not one per scan.
type stuckReads struct {
	mu    sync.Mutex
	byPID map[int][]*stuckRead
}

// abandon claims j for the watchdog and records what it is stuck in; false
// if its worker delivered first. The claim and the record are one step, so
// that a worker that finds itself abandoned (returned) always finds the
// record to remove.
func (s *stuckReads) abandon(j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !j.claimed.CompareAndSwap(false, true) {
		return false
	}
	r := read(j.now.Load())
	if r == readNone {
		r = readStat // not even started: the open of /proc/PID, then stat
	}
	if s.byPID == nil {
		s.byPID = map[int][]*stuckRead{}
	}
	s.byPID[j.pid] = append(s.byPID[j.pid], &stuckRead{job: j, pid: j.pid, start: j.procStart.Load(),
		what: r, arg: int(j.arg.Load()), since: time.Unix(0, j.since.Load())})
	return true
}

// returned forgets the read of an abandoned job whose worker came back.
func (s *stuckReads) returned(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.byPID[j.pid]
	for i, r := range list {
		if r.job == j {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byPID, j.pid)
	} else {
		s.byPID[j.pid] = list
	}
}

// of returns the reads still out for the process with this pid and start
// time (0: stat not read yet, which matches only reads stuck before it).
func (s *stuckReads) of(pid int, start uint64) []stuckRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stuckRead
	for _, r := range s.byPID[pid] {
		if r.start == start {
			out = append(out, *r)
		}
	}
	return out
}

// skipFor is the set of reads a scan leaves out for a process with these
// reads stuck: each stuck read, and every mm read if one of them is one.
func skipFor(stuck []stuckRead) map[read]bool {
	if len(stuck) == 0 {
		return nil
	}
	skip := map[read]bool{}
	for _, r := range stuck {
		skip[r.what] = true
		if r.what.mm() {
			for _, m := range []read{readMaps, readMapFiles, readCmdline} {
				skip[m] = true
			}
		}
	}
	return skip
}

// stuckWarning says which reads of pid are stuck since when, and what the
// scan leaves out because of them (WarnStuck).
func stuckWarning(pid int, stuck []stuckRead, skip map[read]bool, now time.Time) Warning {
	sort.Slice(stuck, func(i, j int) bool { return stuck[i].since.Before(stuck[j].since) })
	w := Warning{Kind: WarnStuck, PID: pid}
	for _, r := range stuck {
		w.Stuck = append(w.Stuck, StuckRead{File: fmt.Sprintf("/proc/%d/%s", pid, r.what.name(r.arg)),
			Since: r.since, For: now.Sub(r.since).Round(time.Second)})
	}
	for _, r := range []read{readCmdline, readMaps, readMapFiles, readCwd, readRoot, readExe, readTask, readFD, readFDInfo, readCgroup, readMountinfo, readNS} {
		if skip[r] {
			w.LeftOut = append(w.LeftOut, strings.TrimSuffix(strings.TrimSuffix(r.file(), "%d"), "/"))
		}
	}
	return w
}
