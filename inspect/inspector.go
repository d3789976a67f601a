package inspect

import (
	"context"
	"errors"
	"fmt"
	"mounttop/internal/kindname"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Inspector scans one /proc tree; a Snapshot is the whole result of a scan.
// The one thing it keeps between scans is the reads of processes stuck in
// the kernel that a scan abandoned and that have not returned (stuckReads):
// use one Inspector for every scan (the view's refresher, the engine's
// drain) so that such a process costs one blocked thread in all, not one
// per scan. Scans may run concurrently.
type Inspector struct {
	procRoot   string
	workers    int
	perProcess time.Duration
	detail     Detail
	focus      map[MountID]bool
	internal   map[uint64]bool // devices of internal kernel filesystems
	anon       uint64          // anon_inodefs device
	stuck      *stuckReads
	boot       time.Time // boot time of procRoot's kernel (its stat's btime)
	users      *sync.Map // uid -> user name, looked up once per Inspector
	files      *kernelFiles
}

// Detail is how much a scan records about each use.
type Detail int

const (
	// DetailFull records every use with its path, access mode, ranges and
	// locks (the TUI, `holders`).
	DetailFull Detail = iota
	// DetailCounts records which processes hold which mounts and the kind
	// of each use, without resolving paths (`list`): fewer syscalls per fd.
	DetailCounts
)

// Option configures an Inspector.
type Option func(*Inspector)

// WithDetail sets how much is recorded per use (default DetailFull).
func WithDetail(d Detail) Option { return func(in *Inspector) { in.detail = d } }

// WithFocus records full detail for these mounts only and counts for the
// rest: `holders PATH` pays for paths of one mount, not all.
func WithFocus(ids ...MountID) Option {
	return func(in *Inspector) {
		in.focus = map[MountID]bool{}
		for _, id := range ids {
			in.focus[id] = true
		}
	}
}

// WithWorkers sets how many goroutines read processes at once (default
// 2 x the CPUs, at least 4). The interactive view scans with fewer, so
// that a scan leaves a CPU to the goroutine that answers keys.
func WithWorkers(n int) Option { return func(in *Inspector) { in.workers = n } }

// New returns an Inspector of the proc filesystem mounted at procRoot
// (normally "/proc"). It checks that procRoot looks like procfs.
func New(procRoot string, opts ...Option) (*Inspector, error) {
	in := &Inspector{procRoot: filepath.Clean(procRoot), perProcess: 2 * time.Second, stuck: &stuckReads{}, users: &sync.Map{}, files: &kernelFiles{}}
	in.workers = 2 * runtime.NumCPU()
	if in.workers < 4 {
		in.workers = 4
	}
	if os.Getenv("MOUNTTOP_OPEN_FILES") == "procfs" {
		// The operator's way around the task_file iterator, for every
		// command (README: "How it works").
		WithoutIterator()(in)
	}
	for _, o := range opts {
		o(in)
	}
	if in.workers < 1 {
		return nil, errors.New("inspect: workers must be at least 1")
	}
	if _, err := os.Stat(filepath.Join(in.procRoot, "self", "mountinfo")); err != nil {
		return nil, fmt.Errorf("inspect: %s is not a proc filesystem: %w", procRoot, err)
	}
	in.internal, in.anon = probeInternalDevices()
	in.boot = readBootTime(in.procRoot)
	return in, nil
}

// wantDetail reports whether uses of mount id get full detail.
func (in *Inspector) wantDetail(id MountID) bool {
	if in.focus != nil {
		return in.focus[id]
	}
	return in.detail == DetailFull
}

// Scan reads the mount table and every process's holds at once. Partial
// results are normal (Warnings); the error is for a scan that could not
// read the mount table at all. ctx bounds the whole scan: on expiry, the
// processes not yet read are listed in Warnings.
func (in *Inspector) Scan(ctx context.Context) (*Snapshot, error) {
	s, err := in.scan(ctx, true)
	if s != nil {
		in.nameNamespaces(s)
		in.markAutomounts(s)
	}
	return s, err
}

// ScanFocus is Scan with full detail (paths, access modes, ranges,
// locks) for the mounts ids only and counts for every other mount,
// whatever the Inspector's own detail: what a view that shows one
// mount's holders and every mount's count needs, at a fraction of the
// memory of a full scan (every fd's path of every process). The
// Inspector's state across scans (stuck reads, user names) is shared.
func (in *Inspector) ScanFocus(ctx context.Context, ids ...MountID) (*Snapshot, error) {
	c := *in
	c.focus = make(map[MountID]bool, len(ids))
	for _, id := range ids {
		c.focus[id] = true
	}
	return c.Scan(ctx)
}

// Mounts reads the mount table only (no processes): cheap, and walks no
// path, so it is safe between the two steps of an expire.
func (in *Inspector) Mounts(ctx context.Context) (*Snapshot, error) {
	s, err := in.scan(ctx, false)
	if s != nil {
		in.nameNamespaces(s)
		in.markAutomounts(s)
	}
	return s, err
}

// NewSnapshot builds a Snapshot from parts, filling in the index and the
// children lists: for tests and fakes outside this package.
func NewSnapshot(mounts []Mount, holders map[MountID][]Holder, warnings []Warning) *Snapshot {
	s := &Snapshot{Taken: time.Now(), UniqueIDs: true, Mounts: mounts, Holders: holders, Warnings: warnings}
	if s.Holders == nil {
		s.Holders = map[MountID][]Holder{}
	}
	s.buildIndex()
	return s
}

func (s *Snapshot) buildIndex() {
	s.index = make(map[MountID]int, len(s.Mounts))
	for i := range s.Mounts {
		s.Mounts[i].Children = nil
		s.index[s.Mounts[i].ID] = i
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.ParentID == m.ID {
			continue
		}
		if p, ok := s.index[m.ParentID]; ok {
			s.Mounts[p].Children = append(s.Mounts[p].Children, m.ID)
		}
	}
	s.markHidden()
}

// detailNames are the Detail values' names, for logs and tests (String).
var detailNames = [...]string{DetailFull: "full", DetailCounts: "counts"}

// String names the Detail (kindname.Of).
func (d Detail) String() string { return kindname.Of("Detail", detailNames[:], int(d), 0) }
