package inspect

import (
	"context"
	"errors"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mounttop/internal/taskfiles"

	"golang.org/x/sys/unix"
)

// scanTable is what every process worker needs to attribute a use to a
// mount: lookups by unique ID, by reusable ID and by device. Read-only
// while workers run.
type scanTable struct {
	byID     map[MountID]*Mount
	byOld    map[int]MountID
	byDev    map[uint64][]MountID
	locks    map[devIno]bool // files with a lock in /proc/locks
	lockDevs map[uint64]bool // their devices
	uniqueOK bool
	ourNS    uint64          // inode of our mount namespace
	foreign  sync.Map        // namespace inode -> *nsTable
	internal map[uint64]bool // devices of the kernel's internal filesystems
	anon     uint64          // anon_inodefs: io_uring, eventfd, epoll...
	// kfiles: every task's open files from the task_file iterator, read
	// once before the processes (nil: procfs only).
	kfiles *taskfiles.Snapshot
	// hiddenNS: some process's mount namespace could not be read (a user
	// namespace may not look at its parent's), so a mount in no table we
	// read is not necessarily detached.
	hiddenNS atomic.Bool
}

type devIno struct {
	dev uint64 // unix.Mkdev(major, minor)
	ino uint64
}

func (in *Inspector) scan(ctx context.Context, withProcs bool) (*Snapshot, error) {
	start := time.Now()
	mounts, uniqueOK, warnings, err := in.readTable(ctx)
	if err != nil {
		return nil, err
	}
	snap := NewSnapshot(mounts, nil, warnings)
	snap.Taken, snap.UniqueIDs = start, uniqueOK
	if withProcs {
		tbl := &scanTable{byID: map[MountID]*Mount{}, byOld: map[int]MountID{}, byDev: map[uint64][]MountID{},
			uniqueOK: uniqueOK, internal: in.internal, anon: in.anon}
		for i := range snap.Mounts {
			m := &snap.Mounts[i]
			tbl.byID[m.ID] = m
			tbl.byOld[m.OldID] = m.ID
			dev := unix.Mkdev(uint32(m.Major), uint32(m.Minor))
			tbl.byDev[dev] = append(tbl.byDev[dev], m.ID)
		}
		tbl.locks, err = readLockedFiles(in.procRoot + "/locks")
		if err != nil {
			snap.Warnings = append(snap.Warnings, Warning{Kind: WarnLocks, Err: err})
		}
		tbl.lockDevs = map[uint64]bool{}
		for k := range tbl.locks {
			tbl.lockDevs[k.dev] = true
		}
		var st unix.Stat_t
		if err := unix.Stat(in.procRoot+"/self/ns/mnt", &st); err == nil {
			tbl.ourNS = st.Ino
		}
		if ks, err := in.kernelSnapshot(ctx, tbl); err == nil {
			tbl.kfiles, snap.FilesBy = ks, FilesIterator
		} else {
			snap.FilesWhy = err
		}
		in.scanProcesses(ctx, tbl, snap)
		in.kernelHolders(snap)
	}
	snap.Duration = time.Since(start)
	return snap, nil
}

// procResult is one process's contribution to a snapshot.
type procResult struct {
	pid         int
	holder      Holder      // without Uses
	uses        []mountUses // by mount, in the order first seen
	warnings    []Warning
	ns          uint64                    // another mount namespace's inode, 0 for ours
	foreignUses map[int][]Use             // uses of mounts in that namespace, by reusable ID
	unknown     map[MountID]*unknownMount // uses of mounts in no table: detached?
	uring       []KernelHolder            // io_uring registered files (path only)
}

// mountUses is one mount's uses in a procResult. A process holds a few
// mounts: a list is smaller than a map and as quick to search.
type mountUses struct {
	id   MountID
	uses []Use
}

// scanProcesses reads every process with a fixed pool of in.workers
// goroutines that take pids in turn. Each read of a pid has a deadline (perProcess, from job.reading):
// a watchdog abandons a worker stuck on one (a hung filesystem), records
// the read it is stuck in with the Inspector (in.stuck), starts a fresh
// worker in its place and queues the pid once more: the second look
// leaves out what can block (see stuckReads), so the process is still
// reported with what is known. A scan never waits on a dead server much
// longer than the deadline, and later scans do not wait on it at all.
//
// The workers live for the whole scan on purpose: a goroutine per pid
// behind a semaphore parked and woke OS threads for every process, which
// left one of two CPUs idle much of the time (bench/README.md: the scan of
// 500 processes took 1.5x as long in wall time for the same CPU).
func (in *Inspector) scanProcesses(ctx context.Context, tbl *scanTable, snap *Snapshot) {
	pids, err := listPIDs(in.procRoot)
	if err != nil {
		snap.Warnings = append(snap.Warnings, Warning{Kind: WarnListPIDs, Err: err})
		return
	}
	self := os.Getpid()
	// Room for every result, so that no worker ever blocks on a send,
	// even one that finishes after the scan stopped waiting; pointers,
	// so the buffer is 8 bytes a process.
	results := make(chan *procResult, len(pids))
	type next struct {
		pid   int
		retry bool
	}
	var (
		workers  sync.WaitGroup // live, not abandoned, workers
		mu       sync.Mutex     // guards queue, active and timedOut
		queue    = make([]next, 0, len(pids))
		active   = map[*job]struct{}{}
		timedOut []int
	)
	for _, pid := range pids {
		if pid != self {
			queue = append(queue, next{pid: pid})
		}
	}
	work := func() {
		sc := newScratch() // an abandoned worker keeps its own: never shared
		for ctx.Err() == nil {
			mu.Lock()
			if len(queue) == 0 {
				mu.Unlock()
				break
			}
			n := queue[0]
			queue = queue[1:]
			j := &job{pid: n.pid, retry: n.retry, start: time.Now()}
			active[j] = struct{}{}
			mu.Unlock()
			r := in.scanProcess(j, tbl, sc)
			mu.Lock()
			delete(active, j)
			mu.Unlock()
			if !j.claimed.CompareAndSwap(false, true) {
				// Abandoned: the watchdog recorded us and replaced us.
				// Our read returned after all: the process may be
				// asked everything again.
				in.stuck.returned(j)
				return
			}
			results <- &r
		}
		workers.Done()
	}
	for w := 0; w < in.workers; w++ {
		workers.Add(1)
		go work()
	}
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	// Results are merged as they come, while the workers read on: a
	// process's own result is garbage as soon as it is merged, so the
	// scan never holds every process's result and the snapshot at once.
	byCause := map[groupKey][]int{}
	var order []Warning
	m := merger{snap: snap, tbl: tbl, nsIndex: map[uint64]int{}, unknown: map[MountID]int{}}
	take := func(r *procResult) {
		snap.Processes++
		m.add(r)
		for _, w := range r.warnings {
			key := w.groupKey()
			if _, seen := byCause[key]; !seen {
				order = append(order, w)
			}
			byCause[key] = append(byCause[key], r.pid)
		}
	}
	tick := time.NewTicker(max(in.perProcess/4, time.Millisecond))
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case r := <-results:
			take(r)
		case <-done:
			waiting = false
		case <-ctx.Done():
			snap.Warnings = append(snap.Warnings, Warning{Kind: WarnCutShort, Err: ctx.Err()})
			// The workers still reading are left behind: record them, so
			// that one stuck for good is not asked again by the next scan.
			mu.Lock()
			for j := range active {
				if in.stuck.abandon(j) {
					delete(active, j)
					workers.Done() // counted out, so the waiter above ends too
				}
			}
			mu.Unlock()
			waiting = false
		case now := <-tick.C:
			mu.Lock()
			for j := range active {
				if now.Sub(j.idleSince()) >= in.perProcess && in.stuck.abandon(j) {
					delete(active, j)
					if j.retry {
						timedOut = append(timedOut, j.pid)
					} else {
						queue = append(queue, next{pid: j.pid, retry: true})
					}
					workers.Add(1) // the replacement, before the stuck one is counted out
					go work()
					workers.Done()
				}
			}
			mu.Unlock()
		}
	}
	mu.Lock()
	notScanned := len(queue)
	mu.Unlock()
	// What was sent before the workers were done (or before the deadline)
	// is in the buffer; a result sent later is not waited for.
	for n := len(results); n > 0; n-- {
		take(<-results)
	}
	for _, w := range order {
		snap.Warnings = append(snap.Warnings, grouped(w, byCause[w.groupKey()]))
	}
	m.finish()
	mu.Lock()
	if len(timedOut) > 0 {
		sort.Ints(timedOut)
		snap.Warnings = append(snap.Warnings, Warning{Kind: WarnGaveUp, PIDs: timedOut, Limit: in.perProcess})
	}
	mu.Unlock()
	if notScanned > 0 {
		snap.Warnings = append(snap.Warnings, Warning{Kind: WarnNotScanned, Count: notScanned})
	}
	for id := range snap.Holders {
		hs := snap.Holders[id]
		sort.Slice(hs, func(i, j int) bool { return hs[i].PID < hs[j].PID })
	}
}

func listPIDs(procRoot string) ([]int, error) {
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// gone reports errors that mean the process (or the fd) went away while
// we looked: normal, not worth a warning.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}
