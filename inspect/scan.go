package inspect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	uniqueOK bool
	ourNS    uint64          // inode of our mount namespace
	foreign  sync.Map        // namespace inode -> *nsTable
	internal map[uint64]bool // devices of the kernel's internal filesystems
	anon     uint64          // anon_inodefs: io_uring, eventfd, epoll...
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
	snap := &Snapshot{Taken: start, UniqueIDs: uniqueOK, Mounts: mounts, Holders: map[MountID][]Holder{}, Warnings: warnings}
	snap.buildIndex()
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
			snap.Warnings = append(snap.Warnings, Warning{What: "reading /proc/locks; locks are not shown", Err: err})
		}
		var st unix.Stat_t
		if err := unix.Stat(in.procRoot+"/self/ns/mnt", &st); err == nil {
			tbl.ourNS = st.Ino
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
	holder      Holder            // without Uses
	uses        map[MountID][]Use // by mount
	warnings    []Warning
	ns          uint64                    // another mount namespace's inode, 0 for ours
	foreignUses map[int][]Use             // uses of mounts in that namespace, by reusable ID
	unknown     map[MountID]*unknownMount // uses of mounts in no table: detached?
	uring       []KernelHolder            // io_uring registered files (path only)
}

// scanProcesses reads every process in a bounded pool of workers. Each pid
// has a deadline (perProcess): one stuck on a hung filesystem is abandoned
// and reported, and its slot in the pool is given to the next pid, so a
// scan never waits on a dead server longer than that.
func (in *Inspector) scanProcesses(ctx context.Context, tbl *scanTable, snap *Snapshot) {
	pids, err := listPIDs(in.procRoot)
	if err != nil {
		snap.Warnings = append(snap.Warnings, Warning{What: "listing processes", Err: err})
		return
	}
	self := os.Getpid()
	results := make(chan procResult, len(pids))
	sem := make(chan struct{}, in.workers)
	var pending sync.WaitGroup
	var timedOut []int
	var mu sync.Mutex
	bufs := sync.Pool{New: func() any { return newScratch() }}
	notScanned := 0
	for i, pid := range pids {
		if pid == self {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			notScanned = len(pids) - i
		}
		if notScanned > 0 {
			break
		}
		var claimed atomic.Bool
		release := func() bool {
			if claimed.CompareAndSwap(false, true) {
				<-sem
				pending.Done()
				return true
			}
			return false
		}
		pending.Add(1)
		timer := time.AfterFunc(in.perProcess, func() {
			if release() {
				mu.Lock()
				timedOut = append(timedOut, pid)
				mu.Unlock()
			}
		})
		go func(pid int) {
			sc := bufs.Get().(*scratch)
			r := in.scanProcess(pid, tbl, sc)
			timer.Stop()
			if release() {
				results <- r
				bufs.Put(sc) // an abandoned worker's scratch is never reused
			}
		}(pid)
	}
	done := make(chan struct{})
	go func() { pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		snap.Warnings = append(snap.Warnings, Warning{What: "scan cut short", Err: ctx.Err()})
	}
	close(sem) // nothing sends on sem any more
	n := len(results)
	byCause := map[string][]int{}
	var order []string
	m := merger{snap: snap, tbl: tbl, nsIndex: map[uint64]int{}, unknown: map[MountID]int{}}
	for i := 0; i < n; i++ {
		r := <-results
		snap.Processes++
		m.add(&r)
		for _, w := range r.warnings {
			key := w.What
			if w.Err != nil {
				key += ": " + w.Err.Error()
			}
			if _, seen := byCause[key]; !seen {
				order = append(order, key)
			}
			byCause[key] = append(byCause[key], r.pid)
		}
	}
	for _, key := range order {
		snap.Warnings = append(snap.Warnings, Warning{What: groupWarning(key, byCause[key])})
	}
	m.finish()
	mu.Lock()
	if len(timedOut) > 0 {
		sort.Ints(timedOut)
		snap.Warnings = append(snap.Warnings, Warning{What: fmt.Sprintf("gave up on %s after %v (stuck in the kernel, e.g. on a hung filesystem; state D?)",
			pidList(timedOut), in.perProcess)})
	}
	mu.Unlock()
	if notScanned > 0 {
		snap.Warnings = append(snap.Warnings, Warning{What: fmt.Sprintf("%d processes not scanned before the deadline", notScanned)})
	}
	for id := range snap.Holders {
		hs := snap.Holders[id]
		sort.Slice(hs, func(i, j int) bool { return hs[i].PID < hs[j].PID })
	}
}

func groupWarning(key string, pids []int) string {
	sort.Ints(pids)
	if len(pids) == 1 {
		return fmt.Sprintf("pid %d: %s", pids[0], key)
	}
	return fmt.Sprintf("%s (%s)", key, pidList(pids))
}

func pidList(pids []int) string {
	const show = 8
	var b strings.Builder
	if len(pids) == 1 {
		b.WriteString("pid ")
	} else {
		fmt.Fprintf(&b, "%d processes: pids ", len(pids))
	}
	for i, p := range pids {
		if i == show {
			fmt.Fprintf(&b, ", … %d more", len(pids)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
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
