package unmount

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
)

// Run carries out a prepared plan (Prepare) and reports every step as an
// Event; the channel is closed after the StageDone event, whose Result says
// how it ended. Every send selects on ctx.Done(), so a consumer that walks
// away never blocks the run; cancelling ctx stops the run at the next step
// (before revoke: the fence is rolled back and everything is as it was).
// The events of that clean-up are still offered to a consumer that keeps
// reading, for a bounded time (finalSendWait).
func (u *Unmounter) Run(ctx context.Context, p Plan) <-chan Event {
	ch := make(chan Event, 8)
	go func() {
		defer close(ch)
		r := &run{u: u, ctx: ctx, ch: ch, plan: &p, target: p.Target, deadline: u.now().Add(p.Timeout)}
		defer r.closeProcesses()
		defer func() { r.fsWatch.Close() }()
		r.start()
	}()
	return ch
}

// PlanEvent is the StagePlan event of plan p, the first event of a Run:
// what will happen, with the per-holder picture (refused holders with
// their reason). A dry run shows it and stops.
func PlanEvent(p *Plan) Event {
	ev := Event{Stage: StagePlan, Mount: p.Target.ID, Note: PlanNote{Plan: *p}, Holders: planPicture(p), At: time.Now(),
		Releases: append([]Release(nil), p.Releases...), Release: p.Release}
	if p.Mode == ModeStaged && p.Server.Probed {
		s := p.Server
		ev.Server = &s
	}
	if p.Filesystem.Checked {
		f := p.Filesystem
		ev.Filesystem = &f
	}
	return ev
}

// planPicture is the per-holder picture before the run, in the plan's
// order: pending with its action, or refused with why (Planned).
func planPicture(p *Plan) []HolderState {
	var pic []HolderState
	for _, a := range p.Holders {
		st := HolderState{PID: a.Holder.PID, Comm: a.Holder.Comm, State: StatusPending, Planned: &a, Namespace: a.Namespace}
		if a.Refused() {
			st.State = StatusRefused
		}
		pic = append(pic, st)
	}
	return pic
}

// finalSendWait bounds how long the events after a cancellation (rollback,
// done) wait for a reader.
const finalSendWait = 2 * time.Second

// run is the state of one Run.
type run struct {
	u      *Unmounter
	ctx    context.Context
	ch     chan<- Event
	plan   *Plan
	target inspect.Mount

	// holders is each holder's state; what may change it is reached by
	// holder (which marks it touched), what only reads it directly.
	holders map[int]*HolderState
	order   []int
	// shown is each holder's state as the events have said it so far
	// (the plan event, then each event's changes): changedPicture sends
	// only what differs from it.
	shown map[int]HolderState
	// touched are the holders whose state may have changed since the
	// last changedPicture: only they are compared with shown, so an
	// event costs what changed, not the number of holders (a run of N
	// holders sends about N events).
	touched   map[int]bool
	revoked   int
	signalled int
	termAt    map[int]time.Time
	killed    map[int]bool
	procs     map[int]heldProcess // PolicySignal: the holders' pidfds
	remaining []inspect.Holder    // of the last scan
	retry     map[int]bool        // refused for a reason that may pass (ErrTransient)
	lastSnap  *inspect.Snapshot   // of the last scan

	// journalErr is the first journal write that failed: on the plan
	// line it stops the run before anything is done.
	journalErr error

	releases []*releaseState // Plan.Release: the plan's releases and how they went
	released int             // releases done
	inCopy   map[int]uint64  // holders of a propagating copy: pid -> N of mnt:[N]
	// stuck are the holders left inside an injected syscall that did not
	// return in time: pid -> who, and what it is inside. The tracer
	// process restores each when its call returns; until then nothing is
	// "as it was".
	stuck map[int]Stuck
	// underWay are the holders whose revoke the run stopped waiting for
	// when it was cancelled: pid -> who. The tracer process finishes
	// such a revoke, or drops it untouched if it had not begun; either
	// way nothing may be called "as it was".
	underWay map[int]Who

	deadline    time.Time // start + Plan.Timeout: the drain gives up then
	server      Server    // the last probe's finding, and whether the connection is aborted
	noAbortSaid bool      // the event "nothing can cut it off" was sent
	forcedGone  bool      // an abort by MNT_FORCE unmounted the mount (nothing held it)
	fenced      *Fence    // the fence, once up
	// fsWatch is the inotify watch on the target's root, set before
	// anything is unmounted: whether its superblock died (checkFilesystem).
	fsWatch *filesystemWatch
}

// send delivers one event (and journals it). After cancellation it waits at
// most finalSendWait for a reader, so the clean-up events reach a consumer
// still draining the channel while a vanished one blocks nothing.
func (r *run) send(ev Event) {
	ev.At = r.u.now()
	if ev.Mount == 0 {
		ev.Mount = r.target.ID
	}
	if r.u.journal != nil {
		if err := r.u.journal.Record(r.plan, ev); err != nil && r.journalErr == nil {
			r.journalErr = err
			if ev.Stage != StagePlan {
				// Past the plan line the run goes on (stopping halfway
				// would leave more undone than an incomplete journal):
				// say so once, on the terminal and in the events.
				r.send(Event{Stage: ev.Stage, Err: err, Note: JournalFailed{ErrText: oneLine(err.Error())}})
			}
		}
	}
	if r.ctx.Err() == nil {
		select {
		case r.ch <- ev:
		case <-r.ctx.Done():
		}
		return
	}
	t := time.NewTimer(finalSendWait)
	defer t.Stop()
	select {
	case r.ch <- ev:
	case <-t.C:
	}
}

// closeProcesses closes the holders' pidfds at the end of the run.
func (r *run) closeProcesses() {
	for _, p := range r.procs {
		_ = p.proc.Close()
	}
}

// done ends the run with res, how it ended (Outcome) as data. When the
// mount is gone, it first checks whether the filesystem itself is
// (checkFilesystem): the result line says that too.
func (r *run) done(res Result, err error) {
	if res.Gone && res.Filesystem == nil {
		res.Filesystem = r.u.checkFilesystem(r.ctx, r.plan, r.fsWatch)
	}
	if len(r.order) > 0 {
		res.Holders = r.picture()
	}
	r.send(Event{Stage: StageDone, Note: res.Outcome, Err: err, Result: &res})
}

// fail ends the run after step failed with err: the step's event (unless
// the run is done already), then the result line "step: err".
func (r *run) fail(stage Stage, err error, step Note) {
	if stage != StageDone {
		r.send(Event{Stage: stage, Note: step, Err: err})
	}
	r.done(Result{Outcome: Failed{Step: step, ErrText: oneLine(err.Error())}}, err)
}

func (r *run) start() {
	p := r.plan
	r.holders = map[int]*HolderState{}
	r.retry = map[int]bool{}
	for i, st := range planPicture(p) {
		if ns := p.Holders[i].Namespace; ns != 0 {
			if r.inCopy == nil {
				r.inCopy = map[int]uint64{}
			}
			r.inCopy[st.PID] = ns
		}
		r.holders[st.PID] = &st
		r.order = append(r.order, st.PID)
	}
	r.shown = make(map[int]HolderState, len(r.order))
	for _, st := range r.picture() {
		r.shown[st.PID] = st
	}
	if p.Mode == ModeStaged && p.Policy == PolicySignal {
		// Pin each holder of the plan by a pidfd now, checked against
		// the start time the plan's scan read: what is signalled later is
		// that process or nothing. One that is gone already is reported
		// when its turn comes.
		for _, a := range p.Holders {
			_, _ = r.process(a.Holder)
		}
	}
	r.startReleases()
	// The plan is run as given: a warning found now goes on the plan
	// event (after the plan's own, as one more), not into the plan.
	planEv := PlanEvent(p)
	if move, err := r.u.MoveStateOff(r.ctx, &p.Target); err != nil || move.Kind != StateStays {
		if err != nil {
			move = StateMove{Kind: StateUnknown, ErrText: err.Error()}
		}
		n := planEv.Note.(PlanNote)
		n.Later = append(n.Later, PlanWarning{Kind: WarnJournal, State: move})
		planEv.Note = n
	}
	r.send(planEv)
	if r.journalErr != nil {
		// The plan line is the journal's first: if it cannot be
		// written, nothing is done that the journal would not show.
		r.fail(StageDone, fmt.Errorf("%w: the journal cannot be written: %w", ErrRefused, r.journalErr), NothingChanged{})
		return
	}
	if r.ctx.Err() != nil {
		r.done(Result{Outcome: CancelledEarly{}}, ErrCancelled)
		return
	}
	switch {
	case p.Target.Detached && p.Mode != ModeStaged:
		r.fail(StageDone, fmt.Errorf("%w: %s", ErrRefused, scantext.DetachedRefused(p.Mode.String())), NothingDone{})
		return
	case p.Target.Detached:
		r.stagedDetached()
		return
	}
	r.fsWatch = r.u.watchFilesystem(r.ctx, p)
	switch p.Mode {
	case ModeLazy, ModeForce:
		r.plain()
	case ModeExpire:
		r.expire()
	case ModeStaged:
		r.staged()
	default:
		r.fail(StageDone, fmt.Errorf("%w: unknown mode", ErrRefused), NothingDone{})
	}
}

// scanHolders rescans and returns the current holders of the target and
// its submounts, updating the picture: a tracked holder no longer in the
// scan is "gone" (unless it was revoked, which is why it left).
func (r *run) scanHolders() ([]inspect.Holder, error) {
	r.noteRestored()
	snap, err := r.scanFocused()
	if err != nil {
		return nil, err
	}
	r.lastSnap = snap
	subs := snap.Descendants(r.target.ID)
	hs := holdersOf(snap, r.target.ID, append(subs, r.stackedIDs()...))
	if r.plan.Release {
		hs = mergeHolders(hs, r.copyHolders(snap, append([]inspect.MountID{r.target.ID}, subs...)))
	}
	present := map[int]bool{}
	for _, h := range hs {
		present[h.PID] = true
		if _, ok := r.holders[h.PID]; !ok {
			r.holders[h.PID] = &HolderState{PID: h.PID, Comm: h.Comm, State: StatusPending, Namespace: r.inCopy[h.PID]}
			r.order = append(r.order, h.PID)
			r.touch(h.PID)
		}
	}
	for pid, st := range r.holders {
		if !present[pid] && st.State != StatusRevoked && st.State != StatusGone {
			st = r.holder(pid)
			st.State, st.Why = StatusGone, HolderLetGo{Who: r.whoOf(pid, st.Comm)}
		}
	}
	return hs, nil
}

// FocusScanner is a System that can scan with full detail for some mounts
// and counts for the rest (inspect.Inspector.ScanFocus). The real System is
// one; a System that is not is scanned in full.
type FocusScanner interface {
	ScanFocus(ctx context.Context, ids ...inspect.MountID) (*inspect.Snapshot, error)
}

// focusRetries bounds the focused rescans of one scan for the run, when
// mounts the run acts on appear that the focus did not name.
const focusRetries = 2

// scanFocused is the scan of a revoke pass or a drain round: every process
// is read (each holder of any mount is found), but the uses are read in
// full (fd numbers, paths, ranges: what a revoke needs) only on the mounts
// the run acts on, the target, its submounts and the stacked filesystems,
// and counted on the rest. A full scan resolved every use of every process
// on every mount, a third of a staged run's CPU (issue 12 point 3,
// bench/README.md). A mount the run acts on that the focus did not name (a
// submount made during the run) gets a rescan that names it; after
// focusRetries such rescans, a full scan. The plan's scan and the
// filesystem check at the end stay full scans: they look at everything.
func (r *run) scanFocused() (*inspect.Snapshot, error) {
	fs, ok := r.u.sys.(FocusScanner)
	if !ok {
		return r.u.sys.Scan(r.ctx)
	}
	focus := map[inspect.MountID]bool{r.target.ID: true}
	for _, s := range r.plan.Submounts {
		focus[s.ID] = true
	}
	for _, id := range r.stackedIDs() {
		focus[id] = true
	}
	if r.lastSnap != nil {
		for _, id := range r.lastSnap.Descendants(r.target.ID) {
			focus[id] = true
		}
	}
	for range focusRetries + 1 {
		ids := make([]inspect.MountID, 0, len(focus))
		for id := range focus {
			ids = append(ids, id)
		}
		snap, err := fs.ScanFocus(r.ctx, ids...)
		if err != nil {
			return nil, err
		}
		missed := false
		for _, id := range snap.Descendants(r.target.ID) {
			if !focus[id] {
				focus[id], missed = true, true
			}
		}
		if !missed {
			return snap, nil
		}
	}
	return r.u.sys.Scan(r.ctx)
}

// picture is a copy of the per-holder states, by pid.
func (r *run) picture() []HolderState {
	pids := append([]int(nil), r.order...)
	sort.Ints(pids)
	out := make([]HolderState, 0, len(pids))
	for _, pid := range pids {
		out = append(out, *r.holders[pid])
	}
	return out
}

// holder is the state of holder pid, to change: it is marked touched, so
// the next changedPicture compares it with what the events said.
func (r *run) holder(pid int) *HolderState {
	r.touch(pid)
	return r.holders[pid]
}

// touch marks holder pid's state as possibly changed (holder).
func (r *run) touch(pid int) {
	if r.touched == nil {
		r.touched = map[int]bool{}
	}
	r.touched[pid] = true
}

// changedPicture returns the holders whose state changed since the last
// event that carried them (issue 12: an event says what changed, so a run's
// events and journal grow with the number of holders, not its square), by
// pid; nil when none did. Consumers keep the full picture by applying each
// event's changes to the plan event's (ApplyHolders). Only the touched
// holders are compared: comparing (and copying, sorting) every holder per
// event made a run of N holders cost N^2 (issue 12 point 3, bench/README.md).
func (r *run) changedPicture() []HolderState {
	if len(r.touched) == 0 {
		return nil
	}
	pids := make([]int, 0, len(r.touched))
	for pid := range r.touched {
		pids = append(pids, pid)
	}
	clear(r.touched)
	sort.Ints(pids)
	var out []HolderState
	for _, pid := range pids {
		st := *r.holders[pid]
		if prev, ok := r.shown[pid]; ok && prev == st {
			continue
		}
		r.shown[pid] = st
		out = append(out, st)
	}
	return out
}

// who names a holder (Who), with its mount namespace when it holds a
// copy there.
func (r *run) who(h inspect.Holder) Who { return r.whoOf(h.PID, h.Comm) }

func (r *run) whoOf(pid int, comm string) Who {
	return Who{PID: pid, Comm: comm, Namespace: r.inCopy[pid]}
}

// mergeHolders appends more to hs, merging the uses of a pid in both.
func mergeHolders(hs, more []inspect.Holder) []inspect.Holder {
	at := map[int]int{}
	for i, h := range hs {
		at[h.PID] = i
	}
	for _, h := range more {
		if i, ok := at[h.PID]; ok {
			hs[i].Uses = append(append([]inspect.Use(nil), hs[i].Uses...), h.Uses...)
			continue
		}
		at[h.PID] = len(hs)
		hs = append(hs, h)
	}
	return hs
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
