package unmount

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/unmount/release"
)

// fakeSys is a System over an in-memory mount table. It records every call
// in order, so a test can assert the engine's sequence of system calls, and
// it plays scripted holders and errors.
type fakeSys struct {
	mu     sync.Mutex
	calls  []string
	mounts []inspect.Mount
	nextID inspect.MountID

	// holders[i] is what the i-th Scan finds on the target (the last
	// entry repeats); nil: nobody.
	holders   [][]inspect.Holder
	scans     int
	target    inspect.MountID
	umountErr map[string][]error // per path, consumed in order
	fenceErr  []error            // per Fence call, consumed in order
	revokeErr map[int]error
	revokeSeq map[int][]error // per pid, consumed in order before revokeErr
	selfExe   inspect.MountID
	selfCwd   inspect.MountID
	selfProc  inspect.MountID
	onSyncfs  func()
	syncErr   error

	// kernel: the target's kernel holders (a release removes its own);
	// namespaces: other namespaces' tables; copyHolders[i] is what the
	// i-th Scan finds holding the copy with reusable ID copyOld there (the
	// last entry repeats).
	kernel      []inspect.KernelHolder
	namespaces  []inspect.Namespace
	copyOld     int
	copyHolders [][]inspect.Holder
	releaseErr  map[string][]error // per "loop DEV", "swap PATH", "copy PID", consumed in order

	// The filesystem's server. stopAt: once the server is stopped (the
	// stop hook ran or stopped was set), Statfs, OpenRoot and Syncfs
	// block until the connection is aborted (AbortFuse, or Umount2 with
	// MNT_FORCE: umount_begin) and then fail with ENOTCONN, and a Revoke
	// of a holder fails as a revoke whose injected close hung
	// (ErrTransient). fuseConns lists the connections fusectl shows.
	stopped   bool
	aborted   chan struct{}
	fuseConns map[uint64]bool
	// blocked counts the calls that blocked on the stopped server.
	blocked int
	// stopAfterProbes > 0: the server stops once that many Statfs calls
	// were answered. afterSyncfs runs after Syncfs returned.
	stopAfterProbes int
	probes          int
	afterSyncfs     func()
	// swapBlock, if set, holds Swapoff until it is closed; shutdownBlock
	// holds a plain Umount2 after the mount left the table.
	swapBlock     chan struct{}
	shutdownBlock chan struct{}

	// restored: what the tracer process did to a pid it held inside an
	// injected syscall, once it released it (RestoreReporter), taken once.
	restored map[int]Restore

	// scanWarnings are the scan's warnings (inspect's raw texts).
	scanWarnings []inspect.Warning
}

func (f *fakeSys) Restored(pid int) (Restore, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	what, ok := f.restored[pid]
	delete(f.restored, pid)
	return what, ok
}

func newFake() *fakeSys {
	f := &fakeSys{nextID: 100, umountErr: map[string][]error{}, revokeErr: map[int]error{}, revokeSeq: map[int][]error{}, releaseErr: map[string][]error{}, restored: map[int]Restore{},
		aborted: make(chan struct{}), fuseConns: map[uint64]bool{}}
	f.mounts = []inspect.Mount{{ID: 1, ParentID: 1, Mountpoint: "/", FSType: "ext4", Major: 8, Minor: 1}}
	return f
}

// addMount adds a mount at mp on top of whatever is there.
func (f *fakeSys) addMount(mp, fstype string, shared bool) inspect.Mount {
	f.nextID++
	parent := f.topAt(mp)
	if parent == nil {
		parent = f.containing(mp)
	}
	m := inspect.Mount{ID: f.nextID, ParentID: parent.ID, Mountpoint: mp, FSType: fstype, Source: "src", Major: 0, Minor: int(f.nextID)}
	if shared {
		m.Propagation.Shared = int(f.nextID)
	}
	f.mounts = append(f.mounts, m)
	return m
}

func (f *fakeSys) topAt(mp string) *inspect.Mount {
	snap := inspect.NewSnapshot(append([]inspect.Mount(nil), f.mounts...), nil, nil)
	m, ok := snap.MountAt(mp)
	if !ok {
		return nil
	}
	for i := range f.mounts {
		if f.mounts[i].ID == m.ID {
			return &f.mounts[i]
		}
	}
	return nil
}

func (f *fakeSys) containing(p string) *inspect.Mount {
	snap := inspect.NewSnapshot(append([]inspect.Mount(nil), f.mounts...), nil, nil)
	m, _ := snap.MountContaining(p)
	for i := range f.mounts {
		if f.mounts[i].ID == m.ID {
			return &f.mounts[i]
		}
	}
	return nil
}

func (f *fakeSys) record(format string, a ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fakeSys) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSys) snapshot(withHolders bool) *inspect.Snapshot {
	var hs map[inspect.MountID][]inspect.Holder
	if withHolders && len(f.holders) > 0 {
		i := f.scans
		if i >= len(f.holders) {
			i = len(f.holders) - 1
		}
		hs = map[inspect.MountID][]inspect.Holder{f.target: f.holders[i]}
	}
	mounts := append([]inspect.Mount(nil), f.mounts...)
	if withHolders {
		// A detached mount is in a snapshot only through its holders.
		kept := mounts[:0]
		for _, m := range mounts {
			if !m.Detached || len(hs[m.ID]) > 0 {
				kept = append(kept, m)
			}
		}
		mounts = kept
	} else {
		kept := mounts[:0]
		for _, m := range mounts {
			if !m.Detached {
				kept = append(kept, m)
			}
		}
		mounts = kept
	}
	var warnings []inspect.Warning
	if withHolders {
		warnings = f.scanWarnings
	}
	snap := inspect.NewSnapshot(mounts, hs, warnings)
	// Ours and pid 1's namespaces, both known: the fake's copies are in
	// neither unless a test says so.
	snap.MountNS, snap.HostNS = 4026531840, 4026531841
	if withHolders {
		if len(f.kernel) > 0 {
			snap.Kernel = map[inspect.MountID][]inspect.KernelHolder{f.target: append([]inspect.KernelHolder(nil), f.kernel...)}
		}
		for _, ns := range f.namespaces {
			ns.Holders = map[int][]inspect.Holder{}
			if n := len(f.copyHolders); n > 0 {
				i := f.scans
				if i >= n {
					i = n - 1
				}
				ns.Holders[f.copyOld] = f.copyHolders[i]
			}
			snap.Namespaces = append(snap.Namespaces, ns)
		}
		if len(f.holders) > 0 || len(f.copyHolders) > 0 {
			f.scans++
		}
	}
	return snap
}

// releaseResult consumes the scripted error for key; on success the
// matching kernel holder or copy is gone.
func (f *fakeSys) releaseResult(key string, drop func()) error {
	if errs := f.releaseErr[key]; len(errs) > 0 {
		f.releaseErr[key] = errs[1:]
		if errs[0] != nil {
			return errs[0]
		}
	}
	drop()
	return nil
}

func (f *fakeSys) dropKernel(name string) {
	for i, k := range f.kernel {
		if k.Name == name {
			f.kernel = append(f.kernel[:i:i], f.kernel[i+1:]...)
			return
		}
	}
}

func (f *fakeSys) UnmountCopy(c release.Copy, flags int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("umount-copy %d %s %d %s", c.PID, c.Mountpoint, c.OldID, flagNames(flags|unix.UMOUNT_NOFOLLOW))
	return f.releaseResult(fmt.Sprintf("copy %d", c.PID), func() {
		for i := range f.namespaces {
			var kept []inspect.Mount
			for _, m := range f.namespaces[i].Mounts {
				if m.OldID != c.OldID {
					kept = append(kept, m)
				}
			}
			f.namespaces[i].Mounts = kept
		}
	})
}

func (f *fakeSys) DetachLoop(dev string, _ release.FileID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("detach-loop %s", dev)
	return f.releaseResult("loop "+dev, func() { f.dropKernel(dev) })
}

// ClaimDevice: the fake's filesystems have no block device.
func (f *fakeSys) ClaimDevice(major, minor int) (string, error) { return "", ErrNotBlockDevice }

func (f *fakeSys) Swapoff(p string, _ release.FileID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("swapoff %s", p)
	block := f.swapBlock
	f.mu.Unlock()
	if block != nil {
		<-block // reading the swapped pages back from a server that does not answer
	}
	f.mu.Lock()
	return f.releaseResult("swap "+p, func() {
		for _, k := range f.kernel {
			if k.Kind == "swap" {
				f.dropKernel(k.Name)
				return
			}
		}
	})
}

func (f *fakeSys) Scan(ctx context.Context) (*inspect.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("scan")
	return f.snapshot(true), nil
}

func (f *fakeSys) Mounts(ctx context.Context) (*inspect.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snapshot(false), nil
}

func (f *fakeSys) StatMount(id inspect.MountID) (inspect.MountID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.mounts {
		if m.ID == id {
			return m.ParentID, nil
		}
	}
	return 0, unix.ENOENT
}

// Anchor plays System.Anchor on the table: the directory of rel lies on
// the mount containing it, or on the one on top of it.
func (f *fakeSys) Anchor(base *Anchor, rel string) (*Anchor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	full := rel
	if base != nil {
		full = path.Join(base.Dir, rel)
	}
	dir, name, err := splitMountPath(full)
	if err != nil {
		return nil, err
	}
	on := f.containing(dir)
	if m := f.topAt(dir); m != nil {
		on = m
	}
	return &Anchor{Dir: dir, Name: name, On: on.ID, fd: -1}, nil
}

func (f *fakeSys) MountIDAt(a *Anchor) (inspect.MountID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := a.Path()
	if m := f.topAt(p); m != nil {
		return m.ID, nil
	}
	return f.containing(p).ID, nil
}

func (f *fakeSys) Umount2(a *Anchor, flags int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := a.Path()
	f.record("umount2 %s %s", p, flagNames(flags|unix.UMOUNT_NOFOLLOW))
	if flags&unix.MNT_FORCE != 0 {
		f.abort() // umount_begin
	}
	if errs := f.umountErr[p]; len(errs) > 0 {
		f.umountErr[p] = errs[1:]
		if errs[0] != nil {
			return errs[0]
		}
	}
	m := f.topAt(p)
	if m == nil {
		return unix.EINVAL
	}
	id := m.ID
	for i := range f.mounts {
		if f.mounts[i].ID == id {
			f.mounts = append(f.mounts[:i], f.mounts[i+1:]...)
			break
		}
	}
	if block := f.shutdownBlock; block != nil && flags&(unix.MNT_FORCE|unix.MNT_DETACH) == 0 {
		// Out of the namespace; the superblock's shutdown (its last
		// writeback) waits on the server on the way out of umount2.
		f.mu.Unlock()
		<-block
		f.mu.Lock()
	}
	return nil
}

func flagNames(flags int) string {
	var s []string
	for _, fl := range []struct {
		v    int
		name string
	}{{unix.MNT_FORCE, "FORCE"}, {unix.MNT_DETACH, "DETACH"}, {unix.MNT_EXPIRE, "EXPIRE"}, {unix.UMOUNT_NOFOLLOW, "NOFOLLOW"}} {
		if flags&fl.v != 0 {
			s = append(s, fl.name)
		}
	}
	return strings.Join(s, "|")
}

func (f *fakeSys) Self() (Own, error) {
	return Own{Exe: f.selfExe, Cwd: f.selfCwd, Proc: f.selfProc}, nil
}

func (f *fakeSys) Fence(target *inspect.Mount, over bool) (*Fence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := "beneath"
	if over {
		kind = "over"
	}
	f.record("fence %s %s", kind, target.Mountpoint)
	if len(f.fenceErr) > 0 {
		err := f.fenceErr[0]
		f.fenceErr = f.fenceErr[1:]
		if err != nil {
			return nil, err
		}
	}
	f.nextID++
	fence := inspect.Mount{ID: f.nextID, Mountpoint: target.Mountpoint, FSType: "tmpfs", Source: "fence"}
	fc := &Fence{Target: target.Mountpoint, FenceID: fence.ID}
	dir, name, err := splitMountPath(target.Mountpoint)
	if err != nil {
		return nil, err
	}
	fc.Top = &Anchor{Dir: dir, Name: name, On: target.ParentID, fd: -1}
	if over {
		fence.ParentID = target.ID
		fc.Kind, fc.RealPath, fc.Real = FenceOver, target.Mountpoint, fc.Top
	} else {
		fence.ParentID = target.ParentID
		fc.Kind, fc.Stash, fc.RealPath = FenceBeneath, "/stash", "/stash/mnt"
		fc.Real = &Anchor{Dir: "/stash", Name: "mnt", On: 1, fd: -1}
		for i := range f.mounts {
			if f.mounts[i].ID == target.ID {
				f.mounts[i].Mountpoint = "/stash/mnt"
				f.mounts[i].ParentID = 1
			}
		}
	}
	f.mounts = append(f.mounts, fence)
	return fc, nil
}

func (f *fakeSys) Syncfs(root *os.File) error {
	f.mu.Lock()
	f.record("syncfs")
	hook, after := f.onSyncfs, f.afterSyncfs
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err := f.server(); err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return f.syncErr
}

// server plays the filesystem's server for a call that asks it something:
// nil while it answers; while stopped, it blocks until the connection is
// aborted, then ENOTCONN.
func (f *fakeSys) server() error {
	f.mu.Lock()
	stopped := f.stopped
	if stopped {
		f.blocked++
	}
	f.mu.Unlock()
	if !stopped {
		select {
		case <-f.aborted:
			return unix.ENOTCONN
		default:
			return nil
		}
	}
	<-f.aborted
	return unix.ENOTCONN
}

// abort cuts the connection (once).
func (f *fakeSys) abort() {
	select {
	case <-f.aborted:
	default:
		close(f.aborted)
	}
}

// stop stops the server.
func (f *fakeSys) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
}

func (f *fakeSys) OpenRoot(path string, id inspect.MountID) (*os.File, error) {
	if err := f.server(); err != nil {
		return nil, err
	}
	return os.Open(os.DevNull)
}

func (f *fakeSys) Statfs(path string, id inspect.MountID) error {
	if err := f.server(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes++
	if f.stopAfterProbes > 0 && f.probes >= f.stopAfterProbes {
		f.stopped = true
	}
	return nil
}

func (f *fakeSys) FuseWaiting(conn uint64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fuseConns[conn] {
		return 0, fs.ErrNotExist
	}
	if f.stopped {
		return 1, nil
	}
	return 0, nil
}

func (f *fakeSys) AbortFuse(conn uint64) error {
	f.mu.Lock()
	f.record("abort-fuse %d", conn)
	ok := f.fuseConns[conn]
	f.mu.Unlock()
	if !ok {
		return fs.ErrNotExist
	}
	f.abort()
	return nil
}

func (f *fakeSys) Rollback(fc *Fence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("rollback")
	for i := range f.mounts {
		if f.mounts[i].ID == f.target {
			f.mounts[i].Mountpoint = fc.Target
		}
	}
	f.dropMount(fc.FenceID)
	return nil
}

func (f *fakeSys) RemoveFence(fc *Fence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove-fence")
	f.dropMount(fc.FenceID)
	return nil
}

func (f *fakeSys) dropMount(id inspect.MountID) {
	for i := range f.mounts {
		if f.mounts[i].ID == id {
			f.mounts = append(f.mounts[:i], f.mounts[i+1:]...)
			return
		}
	}
}

func (f *fakeSys) Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("revoke %d %s", pid, describeTargets(t))
	if f.stopped {
		select {
		case <-f.aborted:
		default:
			return Revoked{}, transient{fmt.Errorf("process %d: an injected syscall did not return: close(fd) waits on the server", pid)}
		}
	}
	if seq := f.revokeSeq[pid]; len(seq) > 0 {
		f.revokeSeq[pid] = seq[1:]
		if seq[0] != nil {
			return Revoked{}, seq[0]
		}
		return revokedAll(t), nil
	}
	if err := f.revokeErr[pid]; err != nil {
		return Revoked{}, err
	}
	return revokedAll(t), nil
}

// revokedAll is a revoke that took every target away, one thread stopped.
func revokedAll(t RevokeTargets) Revoked {
	d := Revoked{Closed: slices.Clone(t.FDs), Placeholder: t.Placeholder, Unmapped: len(t.Maps), Chdir: len(t.CwdTIDs), Threads: 1}
	tids := slices.Sorted(maps.Keys(t.ThreadFDs))
	for _, tid := range tids {
		d.Closed = append(d.Closed, t.ThreadFDs[tid]...)
	}
	return d
}

func (f *fakeSys) OpenProcess(pid int, startTicks uint64) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("pidfd %d", pid)
	return &fakeProcess{f: f, pid: pid}, nil
}

// fakeProcess records the signals sent to it.
type fakeProcess struct {
	f   *fakeSys
	pid int
}

func (p *fakeProcess) Signal(sig unix.Signal) error {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.record("signal %d %s", p.pid, unix.SignalName(sig))
	return nil
}

func (p *fakeProcess) Close() error { return nil }

// stages renders an event sequence as "plan fence fence revoke ...".
func stages(evs []Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Stage.String())
	}
	return strings.Join(s, " ")
}

// collect reads a run's events until the channel closes.
func collect(ch <-chan Event) []Event {
	var evs []Event
	for ev := range ch {
		evs = append(evs, ev)
	}
	return evs
}

func holder(pid int, comm string, uses ...inspect.Use) inspect.Holder {
	return inspect.Holder{PID: pid, Comm: comm, State: 'S', Uses: uses}
}

func fdUse(fd int) inspect.Use { return inspect.Use{Kind: inspect.UseFD, FD: fd} }

// WatchRoot: the fake has no inotify; the check falls back to device
// numbers and unique IDs. Not recorded: it changes nothing.
func (f *fakeSys) WatchRoot(m *inspect.Mount) (RootWatch, error) {
	return nil, fmt.Errorf("no inotify in the fake")
}

// describeTargets is the fake revoker's word on what it took away, in the
// plan's wording (internal/present.TargetsText renders the real one; this
// package cannot import it).
func describeTargets(t RevokeTargets) string {
	verb := "close"
	if t.Placeholder {
		verb = "put a placeholder on"
	}
	var parts []string
	if len(t.FDs) > 0 {
		parts = append(parts, fmt.Sprintf("%s fd %s", verb, fdList(t.FDs)))
	}
	tids := make([]int, 0, len(t.ThreadFDs))
	for tid := range t.ThreadFDs {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	for _, tid := range tids {
		parts = append(parts, fmt.Sprintf("%s fd %s of thread %d", verb, fdList(t.ThreadFDs[tid]), tid))
	}
	if n := len(t.Maps); n > 0 {
		parts = append(parts, fmt.Sprintf("unmap %d %s", n, plural(n, "mapping")))
	}
	if n := len(t.CwdTIDs); n > 0 {
		parts = append(parts, fmt.Sprintf("cwd into an empty directory (%d %s)", n, plural(n, "thread")))
	}
	if len(parts) == 0 {
		return "nothing to revoke"
	}
	return strings.Join(parts, "; ")
}

func fdList(fds []int) string {
	s := make([]string, len(fds))
	for i, fd := range fds {
		s[i] = fmt.Sprint(fd)
	}
	return strings.Join(s, ", ")
}

// plural is the fake revoker's own wording's plural (the real wording is
// present's: RevokedText).
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
