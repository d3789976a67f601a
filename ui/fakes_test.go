package ui

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"mounttop/inspect"
	"mounttop/unmount"
)

// clock0 is the fixed time of every model test: 03:00, the hour this tool
// is for.
var clock0 = time.Date(2026, 11, 21, 3, 0, 0, 0, time.UTC)

// Mount IDs of the fake system.
const (
	idRoot     inspect.MountID = 1<<32 + 1
	idMnt      inspect.MountID = 1<<32 + 10
	idProjects inspect.MountID = 1<<32 + 11
	idCache    inspect.MountID = 1<<32 + 12
	idMedia    inspect.MountID = 1<<32 + 13
	idScratch  inspect.MountID = 1<<32 + 14
	idBackup   inspect.MountID = 1<<32 + 15
)

func mnt(id, parent inspect.MountID, mp, fstype, source string, minor int) inspect.Mount {
	return inspect.Mount{ID: id, OldID: int(id & 0xffff), ParentID: parent, Major: 0, Minor: minor,
		Root: "/", Mountpoint: mp, FSType: fstype, Source: source, Options: "rw,nosuid,nodev"}
}

// fakeMounts is a small system: / with a demo tree under /mnt.
func fakeMounts() []inspect.Mount {
	root := mnt(idRoot, idRoot, "/", "ext4", "/dev/vda1", 1)
	root.Major = 254
	root.Propagation.Shared = 1
	return []inspect.Mount{
		root,
		mnt(idMnt, idRoot, "/mnt", "tmpfs", "mounttop-demo", 40),
		mnt(idProjects, idMnt, "/mnt/projects", "tmpfs", "demo-projects", 41),
		mnt(idCache, idProjects, "/mnt/projects/cache", "tmpfs", "demo-cache", 42),
		mnt(idMedia, idMnt, "/mnt/media", "tmpfs", "demo-media", 43),
		mnt(idScratch, idMnt, "/mnt/scratch", "tmpfs", "demo-scratch", 44),
		mnt(idBackup, idMnt, "/mnt/backup", "tmpfs", "demo-projects", 41),
	}
}

func fakeHolders() map[inspect.MountID][]inspect.Holder {
	return map[inspect.MountID][]inspect.Holder{
		idProjects: {
			{PID: 4242, Comm: "reader", Cmdline: []string{"demo-reader", "/mnt/projects/queue"}, User: "root", State: 'S', Threads: 1,
				Uses: []inspect.Use{{Kind: inspect.UseFD, FD: 5, Path: "/mnt/projects/queue", Access: inspect.AccessReadWrite}}},
			{PID: 4250, Comm: "shell", Cmdline: []string{"demo-shell", "/mnt/projects/src"}, User: "alice", State: 'S', Threads: 1,
				Uses: []inspect.Use{
					{Kind: inspect.UseCwd, FD: -1, Path: "/mnt/projects/src"},
					{Kind: inspect.UseFD, FD: 5, Path: "/mnt/projects/build.log", Access: inspect.AccessWrite},
					{Kind: inspect.UseFD, FD: 7, Path: "/mnt/projects/old.log", Access: inspect.AccessRead, Deleted: true},
				}},
		},
		idMedia: {
			{PID: 4260, Comm: "player", Cmdline: []string{"demo-player", "/mnt/media/video.bin"}, User: "root", State: 'S', Threads: 4,
				Uses: []inspect.Use{{Kind: inspect.UseMmap, FD: -1, Path: "/mnt/media/video.bin", Start: 0x7f0000000000, End: 0x7f0000010000}}},
		},
		idBackup: {
			{PID: 4270, Comm: "dbserver", Cmdline: []string{"demo-dbserver"}, User: "postgres", State: 'D', Threads: 1,
				Uses: []inspect.Use{{Kind: inspect.UseLock, FD: 3, Path: "/mnt/backup/db.lock",
					Lock: &inspect.Lock{Type: "FLOCK", Mode: "WRITE", Start: "0", End: "EOF"}}}},
		},
	}
}

// fakeSnapshot is the fake system taken at clock0.
func fakeSnapshot() *inspect.Snapshot {
	s := inspect.NewSnapshot(fakeMounts(), fakeHolders(), []inspect.Warning{{PID: 1, What: "cannot read fds", Err: errPermission}})
	s.Taken = clock0
	return s
}

// snapshotWithout is the fake system with some mounts gone.
func snapshotWithout(ids ...inspect.MountID) *inspect.Snapshot {
	drop := map[inspect.MountID]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	var ms []inspect.Mount
	for _, m := range fakeMounts() {
		if !drop[m.ID] {
			ms = append(ms, m)
		}
	}
	hs := fakeHolders()
	for _, id := range ids {
		delete(hs, id)
	}
	s := inspect.NewSnapshot(ms, hs, nil)
	s.Taken = clock0
	return s
}

type permissionError struct{}

func (permissionError) Error() string { return "permission denied" }

var errPermission error = permissionError{}

// fakeScanner returns the snapshots it is given, in turn (the last one
// again and again). With gate set, each Scan waits for a value on gate or
// for its context.
type fakeScanner struct {
	mu    sync.Mutex
	snaps []*inspect.Snapshot
	calls int
	gate  chan struct{}
	cost  time.Duration // each Scan takes this long (a scan's known cost)
	last  *inspect.Snapshot
}

func (f *fakeScanner) Scan(ctx context.Context) (*inspect.Snapshot, error) {
	f.mu.Lock()
	f.calls++
	gate, cost := f.gate, f.cost
	var s *inspect.Snapshot
	if len(f.snaps) > 0 {
		s = f.snaps[0]
		if len(f.snaps) > 1 {
			f.snaps = f.snaps[1:]
		}
		f.last = s
	}
	f.mu.Unlock()
	if cost > 0 {
		time.Sleep(cost)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s, nil
}

// current is the snapshot the last Scan returned.
func (f *fakeScanner) current() *inspect.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil && len(f.snaps) > 0 {
		return f.snaps[0]
	}
	return f.last
}

func (f *fakeScanner) set(s ...*inspect.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snaps = s
}

func (f *fakeScanner) setCost(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cost = d
}

func (f *fakeScanner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// script plays one run's events on ch, after the plan event the fake
// sends first (as the engine does); the fake closes ch after it.
type script func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event)

// fakeUnmounter prepares plans from what the fake scanner shows now (scan,
// else the fake system) and plays a script.
type fakeUnmounter struct {
	mu      sync.Mutex
	scan    *fakeScanner
	planned []unmount.Plan // as asked
	runs    []unmount.Plan
	planErr error
	play    script
	marks   map[inspect.MountID]unmount.ExpiryMark
	ended   chan struct{} // closed when a run's script has returned

	// refuse makes Plan refuse the release of a loop device or swap file
	// of that name, or of a copy at that mount point, with that reason.
	refuse     map[string]unmount.Release // its Refusal and RefusedAt
	released   []unmount.Release
	releaseErr error
	releaseHit chan unmount.Release // if set, each Release is sent here
}

func (f *fakeUnmounter) Prepare(ctx context.Context, req unmount.Plan) (unmount.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.planned = append(f.planned, req)
	snap := fakeSnapshot()
	if f.scan != nil {
		snap = f.scan.current()
	}
	p := req
	p.Timeout, p.Grace = 30*time.Second, 5*time.Second
	if p.Interval <= 0 {
		p.Interval = time.Second // as the engine's default
	}
	for _, h := range snap.HoldersOf(req.Target.ID) {
		p.Holders = append(p.Holders, fakeAction(h))
	}
	// Releases as the engine lists them: loop devices and swap files on
	// the mount, and its copies in other namespaces (lazily when held).
	for _, k := range snap.Kernel[req.Target.ID] {
		switch k.Kind {
		case "loop":
			p.Releases = append(p.Releases, unmount.Release{Kind: "loop", Name: k.Name, Refusal: f.refuse[k.Name].Refusal, RefusedAt: f.refuse[k.Name].RefusedAt})
		case "swap":
			p.Releases = append(p.Releases, unmount.Release{Kind: "swap", Name: k.Name, Refusal: f.refuse[k.Name].Refusal, RefusedAt: f.refuse[k.Name].RefusedAt})
		}
	}
	for _, c := range snap.Copies(req.Target.ID) {
		r := unmount.Release{Kind: "copy", PID: c.Namespace.PIDs[0], Mountpoint: c.Mount.Mountpoint,
			OldID: c.Mount.OldID, Lazy: len(c.Holders) > 0, Refusal: f.refuse[c.Mount.Mountpoint].Refusal,
			Propagates: c.Propagates, Namespace: c.Namespace.Inode, Host: c.Namespace.Host}
		if r.Host && !r.Refused() {
			r.Refusal = unmount.ReleaseHostNamespace // as the engine plans it without ReleaseHost
		}
		p.Releases = append(p.Releases, r)
	}
	p.Release = req.Release
	if req.Release {
		// With Release, the holders of the copies are revoked too.
		for _, c := range snap.Copies(req.Target.ID) {
			for _, h := range c.Holders {
				a := fakeAction(h)
				a.Namespace, a.CopyAt = c.Namespace.Inode, c.Mount.Mountpoint
				p.Holders = append(p.Holders, a)
			}
		}
		p.Warnings = append(p.Warnings, unmount.PlanWarning{Kind: unmount.WarnAllowedSystem, Detail: "planned with Release"})
	}
	return p, f.planErr
}

// fakeAction is a close plan's action on h, as the engine plans it: its
// fds closed, its mappings unmapped, its cwd moved (a holder in D state is
// planned so too; the engine only warns that it may not stop).
func fakeAction(h inspect.Holder) unmount.HolderAction {
	a := unmount.HolderAction{Holder: h, Kind: unmount.ActionRevoke}
	for _, u := range h.Uses {
		switch u.Kind {
		case inspect.UseFD:
			a.Targets.FDs = append(a.Targets.FDs, u.FD)
		case inspect.UseMmap:
			a.Targets.Maps = append(a.Targets.Maps, unmount.Range{Start: u.Start, End: u.End})
		case inspect.UseCwd:
			a.Targets.CwdTIDs = append(a.Targets.CwdTIDs, h.PID)
		}
	}
	return a
}

func (f *fakeUnmounter) Release(ctx context.Context, r unmount.Release) error {
	f.mu.Lock()
	f.released = append(f.released, r)
	err, hit := f.releaseErr, f.releaseHit
	f.mu.Unlock()
	if hit != nil {
		hit <- r
	}
	return err
}

func (f *fakeUnmounter) releases() []unmount.Release {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]unmount.Release(nil), f.released...)
}

func (f *fakeUnmounter) Run(ctx context.Context, plan unmount.Plan) <-chan unmount.Event {
	f.mu.Lock()
	f.runs = append(f.runs, plan)
	play := f.play
	ended := make(chan struct{})
	f.ended = ended
	f.mu.Unlock()
	ch := make(chan unmount.Event)
	go func() {
		defer close(ended)
		defer close(ch)
		ev := unmount.PlanEvent(&plan)
		ev.Note = nil // the scripts' log lines are the test's
		send(ch, 0, ev)
		if play != nil {
			play(ctx, plan, ch)
		}
	}()
	return ch
}

func (f *fakeUnmounter) ExpiryMarks(ids []inspect.MountID) map[inspect.MountID]unmount.ExpiryMark {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[inspect.MountID]unmount.ExpiryMark{}
	for _, id := range ids {
		if m, ok := f.marks[id]; ok {
			out[id] = m
		}
	}
	return out
}

func (f *fakeUnmounter) runCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs)
}

func (f *fakeUnmounter) lastRun() unmount.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[len(f.runs)-1]
}

// leftHolder is a holder a drain event says is left: pid (comm) holding the
// mount by an fd, still pending.
func leftHolder(pid int, comm string) unmount.LeftHolder {
	return unmount.LeftHolder{Who: unmount.Who{PID: pid, Comm: comm}, Kinds: []string{"fd"},
		State: unmount.HolderState{PID: pid, Comm: comm, State: unmount.StatusPending}}
}

// send delivers one event, stamped at clock0 + at seconds.
func send(ch chan<- unmount.Event, at int, ev unmount.Event) {
	ev.At = clock0.Add(time.Duration(at) * time.Second)
	select {
	case ch <- ev:
	case <-time.After(5 * time.Second):
	}
}

// timerMsg is what a model test's timer command produces instead of
// sleeping: the test decides when (and whether) it fires.
type timerMsg struct {
	d time.Duration
	f func(time.Time) tea.Msg
}

// driver runs a Model the way tea.Program does, but under the test's
// control: commands run on goroutines and their messages come back to
// the test loop; timers are held until fired.
type driver struct {
	t      *testing.T
	m      Model
	scan   *fakeScanner
	um     *fakeUnmounter
	msgs   chan tea.Msg
	timers []timerMsg
	quit   bool
}

func newDriver(t *testing.T, opts Options) *driver {
	t.Helper()
	d := &driver{t: t, msgs: make(chan tea.Msg, 64)}
	if opts.Scanner == nil {
		d.scan = &fakeScanner{snaps: []*inspect.Snapshot{fakeSnapshot()}}
		opts.Scanner = d.scan
	}
	if opts.Unmounter == nil {
		scan, _ := opts.Scanner.(*fakeScanner)
		d.um = &fakeUnmounter{scan: scan}
		opts.Unmounter = d.um
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return clock0 }
	}
	d.m = New(opts)
	d.m.after = func(dur time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
		return func() tea.Msg { return timerMsg{dur, f} }
	}
	d.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	d.exec(d.m.Init())
	return d
}

// exec runs cmd on its own goroutine, as tea.Program does.
func (d *driver) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() { d.msgs <- cmd() }()
}

// send hands msg to Update, the way tea.Program's loop would.
func (d *driver) send(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil:
		return
	case tea.BatchMsg:
		for _, c := range msg {
			d.exec(c)
		}
		return
	case timerMsg:
		d.timers = append(d.timers, msg)
		return
	case tea.QuitMsg:
		d.quit = true
		return
	}
	start := time.Now()
	m, cmd := d.m.Update(msg)
	// A blocking call in Update (I/O, a wait) shows as seconds; 50ms
	// failed under -race on the shared 2-core machine with no blocking
	// at all, so the bound is generous.
	if took := time.Since(start); took > time.Second {
		d.t.Errorf("Update(%T) took %v: it must never block", msg, took)
	}
	d.m = m.(Model)
	d.exec(cmd)
}

// key types keys: "l", "enter", "esc", "tab", "up", "down", ...
func (d *driver) key(keys ...string) {
	for _, k := range keys {
		d.send(keyMsg(k))
	}
}

func keyMsg(k string) tea.KeyMsg {
	types := map[string]tea.KeyType{"enter": tea.KeyEnter, "esc": tea.KeyEsc, "tab": tea.KeyTab,
		"up": tea.KeyUp, "down": tea.KeyDown, "left": tea.KeyLeft, "right": tea.KeyRight,
		"backspace": tea.KeyBackspace, "ctrl+c": tea.KeyCtrlC, "space": tea.KeySpace, "pgdown": tea.KeyPgDown,
		"pgup": tea.KeyPgUp, "home": tea.KeyHome, "end": tea.KeyEnd}
	if t, ok := types[k]; ok {
		return tea.KeyMsg{Type: t}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// until processes messages until cond holds, failing after 5s.
func (d *driver) until(what string, cond func(m Model) bool) {
	d.t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond(d.m) {
		select {
		case msg := <-d.msgs:
			d.send(msg)
		case <-deadline:
			d.t.Fatalf("waiting for %s; screen:\n%s", what, d.screen())
		}
	}
}

// settle processes messages until none comes for 100ms.
func (d *driver) settle() {
	for {
		select {
		case msg := <-d.msgs:
			d.send(msg)
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

// fire fires the pending timers whose message satisfies keep.
func (d *driver) fire(keep func(tea.Msg) bool) int {
	pending := d.timers
	d.timers = nil
	n := 0
	for _, tm := range pending {
		msg := tm.f(clock0)
		if keep(msg) {
			n++
			d.send(msg)
		} else {
			d.timers = append(d.timers, tm)
		}
	}
	return n
}

func isTick(msg tea.Msg) bool { _, ok := msg.(tickMsg); return ok }

// screen is the view without styling.
func (d *driver) screen() string { return ansi.Strip(d.m.View()) }

func (d *driver) sees(s string) bool { return strings.Contains(d.screen(), s) }

func (d *driver) mustSee(parts ...string) {
	d.t.Helper()
	scr := d.screen()
	for _, p := range parts {
		if !strings.Contains(scr, p) {
			d.t.Fatalf("screen lacks %q:\n%s", p, scr)
		}
	}
}

func (d *driver) mustNotSee(parts ...string) {
	d.t.Helper()
	scr := d.screen()
	for _, p := range parts {
		if strings.Contains(scr, p) {
			d.t.Fatalf("screen shows %q:\n%s", p, scr)
		}
	}
}

// started waits for the first snapshot.
func (d *driver) started() {
	d.t.Helper()
	d.until("the first scan", func(m Model) bool { return m.snap != nil })
}

var errBusy error = syscall.EBUSY

// idDetached is a mount that was lazily unmounted and is still held.
const idDetached inspect.MountID = 1<<40 + 5

// kernelSnapshot is the fake system with what /proc does not show per
// process: on /mnt/scratch a loop device, a swap file and an nfsd export;
// on /mnt/projects a file registered with an io_uring, and a copy of it in
// another mount namespace, held there; and a detached mount that pid 4280
// still holds.
func kernelSnapshot() *inspect.Snapshot {
	ms := append(fakeMounts(), inspect.Mount{ID: idDetached, ParentID: idDetached, Mountpoint: "(detached)",
		FSType: "tmpfs", Source: "demo-old", Minor: 99, Detached: true})
	hs := fakeHolders()
	hs[idDetached] = []inspect.Holder{{PID: 4280, Comm: "tail", Cmdline: []string{"tail", "-f", "log"}, User: "root", State: 'S', Threads: 1,
		Uses: []inspect.Use{{Kind: inspect.UseFD, FD: 3, Path: "/log", Access: inspect.AccessRead}}}}
	s := inspect.NewSnapshot(ms, hs, nil)
	s.Kernel = map[inspect.MountID][]inspect.KernelHolder{
		idScratch: {
			{Kind: "loop", Name: "/dev/loop3", Path: "/mnt/scratch/disk.img"},
			{Kind: "swap", Name: "/mnt/scratch/swapfile", Path: "/mnt/scratch/swapfile"},
			{Kind: "nfsd-export", Name: "/mnt/scratch", Path: "/mnt/scratch"},
		},
		idProjects: {
			{Kind: "io_uring", FD: 9, Path: "/mnt/projects/queue", PID: 4242},
		},
	}
	copyMount := mnt(0, 0, "/data", "tmpfs", "demo-projects", 41)
	copyMount.OldID = 77
	s.Namespaces = []inspect.Namespace{{Inode: 4026532999, PIDs: []int{900, 901},
		Mounts: []inspect.Mount{copyMount},
		Holders: map[int][]inspect.Holder{77: {{PID: 900, Comm: "app", Unit: "app.service",
			Uses: []inspect.Use{{Kind: inspect.UseFD, FD: 4, Path: "/data/db", Access: inspect.AccessReadWrite}}}}}}}
	s.Taken = clock0
	return s
}
