package unmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/termsafe"
	"mounttop/unmount/revoke"
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
		r.start()
	}()
	return ch
}

// PlanEvent is the StagePlan event of plan p, the first event of a Run:
// what will happen, with the per-holder picture (refused holders with
// their reason). A dry run shows it and stops.
func PlanEvent(p *Plan) Event {
	what := describePlan(p)
	if s := p.Filesystem.PlanText(); s != "" {
		what += "; " + s
	}
	for _, w := range p.Warnings {
		what += "; " + w
	}
	var pic []HolderState
	for _, a := range p.Holders {
		st := HolderState{PID: a.Holder.PID, Comm: a.Holder.Comm, State: "pending", Reason: a.Action, Namespace: a.Namespace}
		if a.Refused != "" {
			st.State, st.Reason = "refused", a.Refused
		}
		pic = append(pic, st)
	}
	ev := Event{Stage: StagePlan, Mount: p.Target.ID, What: what, Holders: pic, At: time.Now(),
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

	holders   map[int]*HolderState
	order     []int
	lastShown string
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
	inCopy   map[int]string  // holders of a propagating copy: pid -> "mnt:[N]"
	// stuck are the holders left inside an injected syscall that did not
	// return in time: pid -> what it is inside, in words. The tracer
	// process restores each when its call returns; until then nothing is
	// "as it was".
	stuck map[int]string
	// underWay are the holders whose revoke the run stopped waiting for
	// when it was cancelled: pid -> who. The tracer process finishes
	// such a revoke, or drops it untouched if it had not begun; either
	// way nothing may be called "as it was".
	underWay map[int]string

	deadline    time.Time // start + Plan.Timeout: the drain gives up then
	server      Server    // the last probe's finding, and whether the connection is aborted
	noAbortSaid bool      // the event "nothing can cut it off" was sent
	forcedGone  bool      // an abort by MNT_FORCE unmounted the mount (nothing held it)
	fenced      *Fence    // the fence, once up
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
				r.send(Event{Stage: ev.Stage, Err: err, What: "the journal could not be written; it misses the lines from here on: " + oneLine(err.Error())})
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

// done ends the run with res. When the mount is gone, it first checks
// whether the filesystem itself is (checkFilesystem) and says so in the
// summary.
func (r *run) done(res Result, err error) {
	if res.Gone && res.Filesystem == nil {
		res.Filesystem = r.u.checkFilesystem(r.ctx, r.plan)
		res.Summary += "; " + res.Filesystem.Text()
	}
	r.send(Event{Stage: StageDone, What: res.Summary, Err: err, Result: &res})
}

func (r *run) fail(stage Stage, err error, summary string) {
	if stage != StageDone {
		r.send(Event{Stage: stage, What: summary, Err: err})
	}
	r.done(Result{Summary: summary + ": " + oneLine(err.Error())}, err)
}

func (r *run) start() {
	p := r.plan
	r.holders = map[int]*HolderState{}
	r.retry = map[int]bool{}
	for _, a := range p.Holders {
		st := &HolderState{PID: a.Holder.PID, Comm: a.Holder.Comm, State: "pending", Reason: a.Action, Namespace: a.Namespace}
		if a.Refused != "" {
			st.State, st.Reason = "refused", a.Refused
		}
		if a.Namespace != "" {
			if r.inCopy == nil {
				r.inCopy = map[int]string{}
			}
			r.inCopy[a.Holder.PID] = a.Namespace
		}
		r.holders[a.Holder.PID] = st
		r.order = append(r.order, a.Holder.PID)
	}
	r.lastShown = fmt.Sprint(r.picture())
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
	if warn, err := r.u.MoveStateOff(r.ctx, &p.Target); err != nil || warn != "" {
		if err != nil {
			warn = "could not check where the journal lies: " + oneLine(err.Error())
		}
		p.Warnings = append(p.Warnings, warn)
	}
	r.send(PlanEvent(p))
	if r.journalErr != nil {
		// The plan line is the journal's first: if it cannot be
		// written, nothing is done that the journal would not show.
		r.fail(StageDone, fmt.Errorf("%w: the journal cannot be written: %w", ErrRefused, r.journalErr), "nothing changed")
		return
	}
	if r.ctx.Err() != nil {
		r.done(Result{Summary: "cancelled before anything changed"}, ErrCancelled)
		return
	}
	switch {
	case p.Target.Detached && p.Mode != ModeStaged:
		r.fail(StageDone, fmt.Errorf("%w: %s", ErrRefused, detachedRefusal(p.Mode)), "nothing done")
		return
	case p.Target.Detached:
		r.stagedDetached()
		return
	}
	switch p.Mode {
	case ModeLazy, ModeForce:
		r.plain()
	case ModeExpire:
		r.expire()
	case ModeStaged:
		r.staged()
	default:
		r.fail(StageDone, fmt.Errorf("%w: unknown mode", ErrRefused), "nothing done")
	}
}

// plain runs Lazy or Force, submounts first (deepest first) when the plan
// is recursive. MNT_DETACH takes the submounts with it, so lazy needs no
// loop.
func (r *run) plain() {
	p := r.plan
	if p.Mode == ModeForce && ForceIgnored(p.Target.FSType) {
		r.send(Event{Stage: StageUnmount, What: ForceIgnoredNote(p.Target.FSType)})
	}
	list := []inspect.Mount{p.Target}
	if p.Mode == ModeForce {
		list = append(append([]inspect.Mount(nil), p.Submounts...), p.Target)
	}
	flag := "MNT_DETACH"
	if p.Mode == ModeForce {
		flag = "MNT_FORCE"
	}
	for i := range list {
		m := &list[i]
		var err error
		if p.Mode == ModeLazy {
			err = r.u.Lazy(r.ctx, m)
		} else {
			err = r.u.Force(r.ctx, m)
		}
		if err != nil {
			r.fail(StageUnmount, err, fmt.Sprintf("umount2(%s) of %s failed", flag, termsafe.Quote(m.Mountpoint)))
			return
		}
		r.send(Event{Stage: StageUnmount, Mount: m.ID, What: fmt.Sprintf("umount2(%s) of %s: gone (verified by statmount)", flag, termsafe.Quote(m.Mountpoint))})
	}
	summary := fmt.Sprintf("%s is unmounted", termsafe.Quote(p.Target.Mountpoint))
	if p.Mode == ModeLazy && len(p.Holders) > 0 {
		summary += fmt.Sprintf(" (detached: the filesystem lives on until its %d %s let go)", len(p.Holders), plural(len(p.Holders), "holder"))
	}
	r.done(Result{Gone: true, Summary: summary}, nil)
}

// expire makes the MNT_EXPIRE attempt, or with ExpireWhenIdle re-arms it
// every Interval until the mount goes: the userspace twin of the kernel's
// periodic mark_mounts_for_expiry() pass over an automount's expiry list.
func (r *run) expire() {
	p := r.plan
	m := &p.Target
	var deadline <-chan time.Time
	if p.ExpireWhenIdle && p.Timeout > 0 {
		t := time.NewTimer(p.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for attempt := 1; ; attempt++ {
		res, err := r.u.Expire(r.ctx, m)
		var what string
		switch {
		case err != nil && p.ExpireWhenIdle && attempt > 1 && errors.Is(err, ErrGone):
			// Gone between two attempts (statmount: ENOENT): something else
			// unmounted it, or our mark expired it through another path.
			r.send(Event{Stage: StageExpire, What: fmt.Sprintf("attempt %d: the mount is gone (unmounted by something else)", attempt)})
			r.done(Result{Gone: true, Summary: fmt.Sprintf("%s is no longer mounted", termsafe.Quote(m.Mountpoint))}, nil)
			return
		case err != nil && !(p.ExpireWhenIdle && isBusy(err)):
			r.fail(StageExpire, err, fmt.Sprintf("attempt %d", attempt))
			return
		case err != nil:
			what = fmt.Sprintf("attempt %d: %s", attempt, oneLine(err.Error()))
		case res.Gone:
			since := ""
			if !res.PrevMarkedAt.IsZero() {
				since = " since " + res.PrevMarkedAt.Format(time.TimeOnly)
			}
			r.send(Event{Stage: StageExpire, What: fmt.Sprintf("attempt %d: untouched and still marked%s, so umount2(MNT_EXPIRE) unmounted it", attempt, since)})
			r.done(Result{Gone: true, Summary: fmt.Sprintf("%s expired and is unmounted", termsafe.Quote(m.Mountpoint))}, nil)
			return
		case res.Cleared:
			what = fmt.Sprintf("attempt %d: the mark set at %s was cleared by an access since (%d %s so far); marked again",
				attempt, res.PrevMarkedAt.Format(time.TimeOnly), res.Mark.Cleared, plural(res.Mark.Cleared, "time"))
		default:
			what = fmt.Sprintf("attempt %d: idle, now marked for expiry (EAGAIN)", attempt)
		}
		if !p.ExpireWhenIdle {
			r.send(Event{Stage: StageExpire, What: what})
			r.done(Result{Marked: true, Summary: fmt.Sprintf("%s is marked for expiry: the same command again unmounts it if nothing touches it meanwhile", termsafe.Quote(m.Mountpoint))}, nil)
			return
		}
		r.send(Event{Stage: StageExpire, What: what, Err: err})
		select {
		case <-tick.C:
		case <-deadline:
			r.done(Result{Marked: err == nil, Summary: fmt.Sprintf("%s did not become idle within %v", termsafe.Quote(m.Mountpoint), p.Timeout)}, ErrTimeout)
			return
		case <-r.ctx.Done():
			r.done(Result{Marked: err == nil, Summary: "cancelled; the mount is still there"}, ErrCancelled)
			return
		}
	}
}

// staged is the fumount design in userspace: probe -> (a server that does
// not answer: cut it off) -> fence -> syncfs -> revoke -> drain -> unmount
// -> remove the fence -> verify. Every call that can wait on the
// filesystem's server runs bounded (Plan.CallTimeout); one that does not
// return in time is named in an event and the run goes on without it.
func (r *run) staged() {
	u := r.u
	if err := u.check(r.ctx, &r.target, true); err != nil {
		r.fail(StageFence, &Error{Op: "fence", Target: r.target.Mountpoint, Err: err}, "nothing changed")
		return
	}
	// The probe, before anything changes. A plan that found the server
	// dead is trusted (probing again would cost the probe's deadline);
	// one that found it answering is checked again: it may have died
	// since.
	r.server = r.plan.Server
	if !r.server.Probed || r.server.Answering {
		r.server = u.probe(r.ctx, &r.target, r.target.Mountpoint, probeLimit(r.plan))
	}
	r.reportServer(r.server, StageFence)
	if r.ctx.Err() != nil {
		r.done(Result{Summary: "cancelled before anything changed"}, ErrCancelled)
		return
	}
	if !r.server.Answering && r.cutOff(nil, "the server is not answering") {
		r.done(Result{Gone: true, Summary: fmt.Sprintf("%s is unmounted (verified): umount2(MNT_FORCE) cut it off its dead server, and nothing held it", termsafe.Quote(r.target.Mountpoint))}, nil)
		return
	}
	// The fd syncfs needs, opened before the fence (under an over-mount
	// fence no path reaches the real mount): a FUSE OPENDIR, so bounded.
	var root *os.File
	if r.server.Answering {
		root = r.openRoot()
	}
	closeRoot := func() {
		if root != nil {
			root.Close() // it pins the mount: never held past syncfs
			root = nil
		}
	}
	defer closeRoot()
	snap, err := u.sys.Mounts(r.ctx)
	if err != nil {
		r.fail(StageFence, err, "nothing changed"+r.abortedNote())
		return
	}
	over := false
	if parent, ok := snap.Mount(r.target.ParentID); ok && parent.Propagation.Shared != 0 {
		over = true
	}
	if over {
		r.releaseSwapsNow()
	}
	f, err := r.putFence(over)
	if err != nil && !over && errors.Is(err, unix.EINVAL) {
		// move_mount refuses MOVE_MOUNT_BENEATH under a shared parent
		// (and in a few other layouts): the over-mount fence still works.
		r.send(Event{Stage: StageFence, What: "mount beneath refused (EINVAL); over-mounting instead", Err: err})
		over = true
		r.releaseSwapsNow()
		f, err = r.putFence(true)
	}
	if err != nil {
		closeRoot()
		r.fail(StageFence, err, "could not fence"+r.abortedNote())
		return
	}
	r.fenced = f
	fence, effect := "an empty read-only tmpfs", "new opens: ENOENT, creates: EROFS"
	if f.File {
		fence, effect = "an empty read-only file", "reads: nothing, writes: EROFS"
	}
	if f.Kind == FenceBeneath {
		r.send(Event{Stage: StageFence, What: fmt.Sprintf("fenced by beneath-swap: %s now shows %s (%s); the mount itself is at %s",
			termsafe.Quote(f.Target), fence, effect, termsafe.Quote(f.RealPath))})
	} else {
		r.send(Event{Stage: StageFence, What: fmt.Sprintf("fenced by over-mount (the parent is shared): %s covers %s and its peers",
			fence, termsafe.Quote(f.Target))})
	}
	if root != nil {
		r.syncfs(f, root)
	} else if r.server.Answering {
		r.send(Event{Stage: StageFence, What: "no syncfs: the mount's root could not be opened; written data may not be on disk"})
	}
	closeRoot()
	if r.ctx.Err() != nil {
		r.rollback(f, "cancelled before revoke", ErrCancelled)
		return
	}
	if !r.revoke(f) {
		r.rollback(f, "cancelled before revoke", ErrCancelled)
		return
	}
	if len(r.releases) > 0 && r.ctx.Err() == nil && !r.forcedGone {
		r.applyReleases(f, false)
	}
	if r.drain(f) {
		r.finish(f)
	}
}

// putFence puts the fence up, bounded: a fence call that returns after it was
// abandoned is rolled back at once, so no fence is left behind unknown.
func (r *run) putFence(over bool) (*Fence, error) {
	t := r.target
	op := "fencing " + termsafe.Quote(t.Mountpoint)
	f, err := bounded.Value(r.ctx, r.u.calls, r.callLimit(), op, bounded.AnyThread,
		func() (*Fence, error) { return r.u.sys.Fence(&t, over) },
		func(f *Fence) { _ = r.u.sys.Rollback(f) })
	r.abandoned(StageFence, err, "if it completes after all, the fence is rolled back at once")
	return f, err
}

// openRoot opens the mount's root for syncfs, bounded. A root that does
// not open in time means the server stopped answering since the probe:
// the filesystem is cut off it. ENOTCONN: the connection is aborted
// already, so there is nothing to sync. Either way the run goes on, and
// nil comes back.
func (r *run) openRoot() *os.File {
	t := r.target
	op := "open of the root of " + termsafe.Quote(t.Mountpoint) + " (for syncfs)"
	root, err := bounded.Value(r.ctx, r.u.calls, r.callLimit(), op, bounded.AnyThread,
		func() (*os.File, error) { return r.u.sys.OpenRoot(t.Mountpoint, t.ID) },
		func(f *os.File) { f.Close() })
	switch {
	case err == nil:
		return root
	case r.abandoned(StageFence, err, "no syncfs; written data may not be on disk"):
		r.server.Answering = false
		r.server.How = op + " did not return within " + r.callLimit().String()
		r.cutOff(nil, "the server stopped answering")
	case errors.Is(err, unix.ENOTCONN):
		r.server.Answering, r.server.Aborted = false, true
		r.send(Event{Stage: StageFence, What: "the connection to the server is aborted (ENOTCONN from the open of the root): nothing can be synced"})
	default:
		r.send(Event{Stage: StageFence, What: "opening the mount's root for syncfs failed: written data may not be on disk", Err: err})
	}
	return nil
}

// syncfs flushes the fenced filesystem through root, bounded. One that
// does not return in time means the server stopped answering: the
// filesystem is cut off it.
func (r *run) syncfs(f *Fence, root *os.File) {
	op := "syncfs of " + termsafe.Quote(r.target.Mountpoint)
	err := r.u.calls.Do(r.ctx, r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.Syncfs(root) })
	switch {
	case err == nil:
		r.send(Event{Stage: StageFence, What: "syncfs: data written so far is on disk"})
	case r.abandoned(StageFence, err, "written data may not be on disk"):
		r.server.Answering = false
		r.server.How = op + " did not return within " + r.callLimit().String()
		r.cutOff(f, "the server stopped answering")
	case errors.Is(err, unix.ENOTCONN):
		r.server.Answering, r.server.Aborted = false, true
		r.send(Event{Stage: StageFence, What: "the connection to the server is aborted (syncfs: ENOTCONN): nothing can be synced"})
	default:
		r.send(Event{Stage: StageFence, What: "syncfs failed: written data may not be on disk", Err: err})
	}
}

// abortedNote says, after a failure, that the connection was cut: that
// stays so whatever else is undone.
func (r *run) abortedNote() string {
	if r.server.Aborted && !r.plan.Server.Aborted {
		return "; the connection to the server was aborted and stays so (I/O on the mount fails)"
	}
	return ""
}

// rollback undoes the fence and ends the run.
func (r *run) rollback(f *Fence, why string, cause error) {
	op := "rolling back the fence at " + termsafe.Quote(f.Target)
	err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.Rollback(f) })
	if err != nil {
		r.abandoned(StageRollback, err, "")
		r.send(Event{Stage: StageRollback, Err: err, What: "rolling back the fence failed: " + r.fenceState(f) + r.abortedNote()})
		r.done(Result{Summary: why + "; rolling back the fence failed: " + r.fenceState(f) + r.abortedNote()}, errors.Join(cause, err))
		return
	}
	what := fmt.Sprintf("fence removed: the mount (%d) is back at %s", r.target.ID, termsafe.Quote(f.Target))
	switch {
	case r.revoked+r.signalled+r.released > 0:
		what += fmt.Sprintf("; %d holders were revoked and %d signalled before that and stay so", r.revoked, r.signalled)
		if r.released > 0 {
			what += fmt.Sprintf("; %d %s done stay so", r.released, plural(r.released, "release"))
		}
	case len(r.stuck)+len(r.underWay) == 0 && (!r.server.Aborted || r.plan.Server.Aborted):
		what += "; everything is as it was"
	}
	what += r.unsettled()
	what += r.abortedNote()
	r.send(Event{Stage: StageRollback, What: what})
	r.done(Result{Summary: why + "; " + what, Remaining: r.remainingHolders()}, cause)
}

// fenceState says where things are while fenced, for a failure report.
func (r *run) fenceState(f *Fence) string {
	if f.Kind == FenceBeneath {
		return fmt.Sprintf("%s shows an empty read-only tmpfs (the fence, mount %d); the filesystem is still mounted at %s (mount %d)",
			termsafe.Quote(f.Target), f.FenceID, termsafe.Quote(f.RealPath), r.target.ID)
	}
	return fmt.Sprintf("an empty read-only tmpfs (mount %d) covers %s, the filesystem is still mounted beneath it (mount %d)",
		f.FenceID, termsafe.Quote(f.Target), r.target.ID)
}

// scanHolders rescans and returns the current holders of the target and
// its submounts, updating the picture: a tracked holder no longer in the
// scan is "gone" (unless it was revoked, which is why it left).
func (r *run) scanHolders() ([]inspect.Holder, error) {
	r.noteRestored()
	snap, err := r.u.sys.Scan(r.ctx)
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
			r.holders[h.PID] = &HolderState{PID: h.PID, Comm: h.Comm, State: "pending", Namespace: r.inCopy[h.PID]}
			r.order = append(r.order, h.PID)
		}
	}
	for pid, st := range r.holders {
		if !present[pid] && st.State != "revoked" && st.State != "gone" {
			st.State, st.Reason = "gone", "no longer holds the mount"
		}
	}
	return hs, nil
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

// changedPicture returns the picture if it differs from the last one sent.
func (r *run) changedPicture() []HolderState {
	pic := r.picture()
	key := fmt.Sprint(pic)
	if key == r.lastShown {
		return nil
	}
	r.lastShown = key
	return pic
}

// revoke is the first pass over the holders after the fence. It returns
// false if the run was cancelled before any holder was touched.
func (r *run) revoke(f *Fence) bool {
	hs, err := r.scanHolders()
	if r.ctx.Err() != nil {
		return false
	}
	if err != nil {
		r.send(Event{Stage: StageRevoke, What: "scan failed; the drain will retry", Err: err})
		return true
	}
	if len(hs) == 0 {
		r.send(Event{Stage: StageRevoke, What: "no process holds the mount", Holders: r.changedPicture()})
		return true
	}
	r.actAll(StageRevoke, hs) // stops early if cancelled or past the deadline: the drain rolls back, finishes or times out
	return true
}

// act revokes or signals one holder according to the policy, once per
// holder for signals (TERM, then KILL after Grace), every time it is found
// holding for close (a straggler that reopened through a cwd or dirfd).
func (r *run) act(stage Stage, h inspect.Holder) {
	if r.plan.Policy == PolicySignal {
		r.signal(stage, h, r.holders[h.PID])
		return
	}
	if t, ok := r.prepareRevoke(stage, h); ok {
		did, err := r.revokeHolder(h, t)
		r.applyRevoke(stage, h, did, err)
	}
}

// prepareRevoke returns what to revoke from holder h under a close
// policy, or false when there is nothing to do: it cannot be revoked (said
// once), a revoke failed for good earlier, or it holds nothing revocable.
func (r *run) prepareRevoke(stage Stage, h inspect.Holder) (RevokeTargets, bool) {
	st := r.holders[h.PID]
	if why := unrevocable(h); why != "" {
		if st.State != "refused" || st.Reason != why {
			st.State, st.Reason = "refused", why
			r.send(Event{Stage: stage, PID: h.PID, What: fmt.Sprintf("%s: not revoked: %s", r.who(h), why), Holders: r.changedPicture()})
		}
		return RevokeTargets{}, false
	}
	if st.State == "refused" && !r.retry[h.PID] {
		return RevokeTargets{}, false // a revoke failed for good earlier (traced, no ptrace): reported then
	}
	t := revokeTargets(h, r.plan.Policy != PolicyClosePlain)
	t.StartTime = h.StartTicks
	t.InjectTimeout = r.injectLimit()
	t.Mounts, t.CopyIDs = r.targetedMounts()
	if t.Empty() {
		return RevokeTargets{}, false // holds only by a lock or a use with nothing to revoke
	}
	return t, true
}

// applyRevoke records how the revoke of holder h went and says so.
func (r *run) applyRevoke(stage Stage, h inspect.Holder, did string, err error) {
	st := r.holders[h.PID]
	switch {
	case err == nil:
		delete(r.retry, h.PID)
		r.revoked++
		st.State, st.Reason = "revoked", did
		r.send(Event{Stage: stage, PID: h.PID, What: fmt.Sprintf("%s: %s", r.who(h), did), Holders: r.changedPicture()})
	case errors.Is(err, ErrHolderGone):
		st.State, st.Reason = "gone", "exited"
		what := fmt.Sprintf("%s exited", r.who(h))
		if err != ErrHolderGone { // its pid names another process now
			st.Reason = oneLine(err.Error())
			what = fmt.Sprintf("%s: not revoked: %s", r.who(h), st.Reason)
		}
		r.send(Event{Stage: stage, PID: h.PID, What: what, Holders: r.changedPicture()})
	default:
		if r.ctx.Err() != nil && errors.Is(err, r.ctx.Err()) {
			if r.underWay == nil {
				r.underWay = map[int]string{}
			}
			r.underWay[h.PID] = r.who(h)
		}
		var se *revoke.StuckError
		if errors.As(err, &se) {
			if r.stuck == nil {
				r.stuck = map[int]string{}
			}
			r.stuck[h.PID] = fmt.Sprintf("%s was left inside %s", r.who(h), se.Inside())
		}
		again := st.State == "refused" && st.Reason == oneLine(err.Error())
		st.State, st.Reason = "refused", oneLine(err.Error())
		// A holder that did not stop (D state) or whose injected call
		// hung may come out of it: try it again on the next drain pass.
		r.retry[h.PID] = errors.Is(err, ErrTransient)
		if !again {
			r.send(Event{Stage: stage, PID: h.PID, Err: err, What: fmt.Sprintf("%s: not revoked: %s", r.who(h), oneLine(err.Error())), Holders: r.changedPicture()})
		}
		if r.retry[h.PID] {
			// It did not stop, or its injected call hung: on a dead
			// server both wait on the server. Cut it off, then the next
			// pass finds it free.
			r.serverCheck(r.fenced, fmt.Sprintf("%s could not be revoked in time", r.who(h)))
		}
	}
}

// targetedMounts are every mount the run acts on, as the last scan (the
// one the holders come from) knows them: the target and its submounts by
// unique ID, and with Plan.Release their copies in other mount namespaces
// that the unmount propagates to, by reusable ID (a scan of another
// namespace's mountinfo learns no unique IDs). The revoker checks every
// use against them once the holder is stopped.
func (r *run) targetedMounts() (ids []inspect.MountID, copyIDs []int) {
	ids = []inspect.MountID{r.target.ID}
	if r.lastSnap == nil {
		return ids, nil
	}
	ids = append(ids, r.lastSnap.Descendants(r.target.ID)...)
	ids = append(ids, r.stackedIDs()...)
	if !r.plan.Release {
		return ids, nil
	}
	for _, id := range ids {
		for _, c := range r.lastSnap.Copies(id) {
			if c.Propagates {
				copyIDs = append(copyIDs, c.Mount.OldID)
			}
		}
	}
	return ids, copyIDs
}

// stackedIDs are the unique IDs of the plan's stacked filesystems
// (Plan.Stacked): their holders are revoked with the target's.
func (r *run) stackedIDs() []inspect.MountID {
	var ids []inspect.MountID
	for _, s := range r.plan.Stacked {
		ids = append(ids, s.ID)
	}
	return ids
}

// unmountStacked unmounts the plan's stacked filesystems (overlays with a
// layer on the target; Plan.Stacked) before the target, in order, each
// like any unmount: anchored on its mount point's directory, re-checked
// by unique ID, not lazy, verified. One gone already is skipped.
func (r *run) unmountStacked(ctx context.Context) error {
	for _, s := range r.plan.Stacked {
		m := s
		a, err := r.u.anchor(&m, nil, m.Mountpoint)
		if err == nil {
			err = r.finalUmount(ctx, &m, a)
			a.Close()
		}
		if errors.Is(err, ErrGone) {
			continue
		}
		what := fmt.Sprintf("the %s at %s (it uses the mount as a layer)", termsafe.Text(m.FSType), termsafe.Quote(m.Mountpoint))
		if err != nil {
			r.send(Event{Stage: StageUnmount, Mount: m.ID, Err: err, What: what})
			return err
		}
		r.send(Event{Stage: StageUnmount, Mount: m.ID, What: what + " unmounted first"})
	}
	return nil
}

// ErrHolderGone is what a Revoker returns for a process that exited.
var ErrHolderGone = errors.New("the process exited")

// ErrTransient marks a revoke failure that may pass (errors.Is): a holder
// that did not reach a ptrace stop (D state) or an injected call that hung.
// The drain tries such a holder again on every pass.
var ErrTransient = errors.New("may pass")

// transient wraps a Revoker error as ErrTransient, keeping its message.
type transient struct{ err error }

func (e transient) Error() string        { return e.err.Error() }
func (e transient) Unwrap() error        { return e.err }
func (e transient) Is(target error) bool { return target == ErrTransient }

func (r *run) signal(stage Stage, h inspect.Holder, st *HolderState) {
	if r.termAt == nil {
		r.termAt, r.killed = map[int]time.Time{}, map[int]bool{}
	}
	proc, err := r.process(h)
	if err != nil {
		state, why := "gone", oneLine(err.Error())
		if !errors.Is(err, ErrHolderGone) {
			state = "refused"
		}
		if st.State == state && st.Reason == why {
			return // said on an earlier pass
		}
		st.State, st.Reason = state, why
		r.send(Event{Stage: stage, PID: h.PID, Err: err, What: fmt.Sprintf("pid %d (%s): not signalled: %s", h.PID, termsafe.Text(h.Comm), why), Holders: r.changedPicture()})
		return
	}
	at, termed := r.termAt[h.PID]
	var sig unix.Signal
	switch {
	case !termed:
		sig = unix.SIGTERM
	case !r.killed[h.PID] && r.u.now().Sub(at) >= r.plan.Grace:
		sig = unix.SIGKILL
	default:
		return
	}
	err = proc.Signal(sig)
	if sig == unix.SIGTERM {
		r.termAt[h.PID] = r.u.now()
	} else {
		r.killed[h.PID] = true
	}
	name := unix.SignalName(sig)
	switch {
	case err == nil:
		r.signalled++
		st.State, st.Reason = "signalled", name
		why := ""
		if u := unrevocable(h); u != "" {
			why = " (" + u + ")"
		}
		r.send(Event{Stage: stage, PID: h.PID, What: fmt.Sprintf("pid %d (%s): sent %s%s", h.PID, termsafe.Text(h.Comm), name, why), Holders: r.changedPicture()})
	case errors.Is(err, unix.ESRCH):
		st.State, st.Reason = "gone", "exited"
		r.send(Event{Stage: stage, PID: h.PID, What: fmt.Sprintf("pid %d exited", h.PID), Holders: r.changedPicture()})
	default:
		r.send(Event{Stage: stage, PID: h.PID, Err: err, What: fmt.Sprintf("pid %d (%s): %s failed", h.PID, termsafe.Text(h.Comm), name), Holders: r.changedPicture()})
	}
}

// process is the pidfd of holder h, opened the first time h is met
// (OpenProcess, which checks that the pid still names the process the
// scan saw start at h.StartTicks) and kept for the run, so that every
// signal reaches that process or none. A holder met again under the same
// pid but with another start time is a new process: its pidfd is opened
// afresh and its signal sequence starts over.
func (r *run) process(h inspect.Holder) (Process, error) {
	if p, ok := r.procs[h.PID]; ok {
		if p.start == h.StartTicks {
			return p.proc, nil
		}
		_ = p.proc.Close()
		delete(r.procs, h.PID)
		delete(r.termAt, h.PID)
		delete(r.killed, h.PID)
	}
	proc, err := r.u.sys.OpenProcess(h.PID, h.StartTicks)
	if err != nil {
		return nil, err
	}
	if r.procs == nil {
		r.procs = map[int]heldProcess{}
	}
	r.procs[h.PID] = heldProcess{proc: proc, start: h.StartTicks}
	return proc, nil
}

// heldProcess is a holder's pidfd and the start time it was checked with.
type heldProcess struct {
	proc  Process
	start uint64
}

// drain rescans every Interval, revokes stragglers and reports what is
// left and why, until nothing holds the mount and the real unmount
// succeeds (true), or the timeout passes or the run is cancelled (the fence
// is rolled back, false).
func (r *run) drain(f *Fence) bool {
	p := r.plan
	deadline := time.NewTimer(r.deadline.Sub(r.u.now()))
	defer deadline.Stop()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	first := true
	for {
		if r.forcedGone {
			return true // MNT_FORCE, cutting it off a dead server, unmounted it
		}
		if !first {
			select {
			case <-tick.C:
			case <-deadline.C:
				r.rollback(f, r.timeoutSummary(), ErrTimeout)
				return false
			case <-r.ctx.Done():
				r.rollback(f, "cancelled during the drain", ErrCancelled)
				return false
			}
		}
		first = false
		hs, err := r.scanHolders()
		if r.ctx.Err() != nil {
			// A scan cut short by the cancellation is partial: it proves
			// nothing about the holders.
			r.rollback(f, "cancelled during the drain", ErrCancelled)
			return false
		}
		if err != nil {
			r.send(Event{Stage: StageDrain, What: "rescan failed", Err: err})
			continue
		}
		r.remaining = hs
		if n := stuckHolders(hs); n > 0 && r.serverCheck(f, fmt.Sprintf("%d %s in D state", n, plural(n, "holder"))) {
			return true
		}
		if len(r.releases) > 0 {
			r.applyReleases(f, true)
		}
		if len(hs) == 0 {
			r.send(Event{Stage: StageDrain, What: "nothing holds the mount any more; unmounting", Holders: r.changedPicture()})
			err := r.unmountReal(f)
			if err == nil {
				return true
			}
			if !isBusy(err) {
				r.rollback(f, "the unmount failed: "+oneLine(err.Error()), err)
				return false
			}
			ids := []inspect.MountID{r.target.ID}
			for _, s := range r.plan.Submounts {
				ids = append(ids, s.ID)
			}
			var ue *Error
			if r.server.Probed && !r.server.Answering && errors.As(err, &ue) {
				ue.Hint = "" // not a loop device or swap file: the server (busyHint)
			}
			r.send(Event{Stage: StageDrain, What: "busy, but no process holds it: " + r.busyReason(ids...) + r.releasesLeft(), Err: err, Holders: r.changedPicture()})
			continue
		}
		r.actAll(StageDrain, hs)
		r.send(Event{Stage: StageDrain, Remaining: len(hs), What: fmt.Sprintf("%d %s left: %s", len(hs), plural(len(hs), "holder"), r.whyLeft(hs)) + r.releasesLeft(), Holders: r.changedPicture()})
	}
}

// busyHint explains an EBUSY with no process holding the mount: a server
// that does not answer, or what else holds it (busyHint).
func (r *run) busyHint(ids []inspect.MountID) string {
	if r.server.Probed && !r.server.Answering {
		return r.deadHint()
	}
	return busyHint(r.lastSnap, ids...)
}

// remainingHolders are the holders of the last scan.
func (r *run) remainingHolders() []inspect.Holder { return r.remaining }

// whyLeft explains each remaining holder: refused (why), signalled, D state.
func (r *run) whyLeft(hs []inspect.Holder) string {
	var parts []string
	for i, h := range hs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(hs)-5))
			break
		}
		st := r.holders[h.PID]
		why := st.State
		switch {
		case h.State == 'D':
			why = "in D state (uninterruptible sleep; it stops only when its I/O completes)"
		case st.Reason != "" && st.State != "pending":
			why = st.State + ": " + st.Reason
		}
		kinds := map[string]bool{}
		var ks []string
		for _, use := range h.Uses {
			if k := use.Kind.String(); !kinds[k] {
				kinds[k] = true
				ks = append(ks, k)
			}
		}
		parts = append(parts, fmt.Sprintf("%s by %s, %s", r.who(h), strings.Join(ks, "+"), why))
	}
	return strings.Join(parts, "; ")
}

// unmountReal is the final, non-lazy unmount of the real mount (and its
// submounts, deepest first), the fence's removal and the verification. A
// FenceBeneath keeps the fence up until the real mount is gone; a FenceOver
// covers the real mount, which cannot be unmounted while covered, so the
// fence goes first. Every umount2 works from the directory fds the fence
// keeps (Fence.Real: the stash, or the target's parent directory), never
// from a path walked again.
func (r *run) unmountReal(f *Fence) error {
	u := r.u
	// Once begun, the unmount is finished whatever happens to ctx: a
	// cancelled ctx would cut the identity re-check's table read short.
	ctx := context.WithoutCancel(r.ctx)
	if err := r.unmountStacked(ctx); err != nil {
		return err
	}
	if f.Kind == FenceOver {
		if err := u.sys.RemoveFence(f); err != nil {
			return err
		}
		r.send(Event{Stage: StageUnmount, What: "fence removed (over-mount); unmounting the mount beneath it"})
	}
	for _, sub := range r.plan.Submounts {
		m := sub
		rel := strings.TrimPrefix(sub.Mountpoint, r.target.Mountpoint)
		m.Mountpoint = path.Join(f.RealPath, rel)
		a, err := u.anchor(&m, f.Real, path.Join(f.Real.Name, rel))
		if err == nil {
			err = r.finalUmount(ctx, &m, a)
			a.Close()
		}
		if err != nil {
			if errors.Is(err, ErrGone) {
				continue
			}
			r.send(Event{Stage: StageUnmount, Mount: sub.ID, Err: err, What: "submount " + termsafe.Quote(sub.Mountpoint)})
			return err
		}
		r.send(Event{Stage: StageUnmount, Mount: sub.ID, What: fmt.Sprintf("submount %s unmounted", termsafe.Quote(sub.Mountpoint))})
	}
	m := r.target
	m.Mountpoint = f.RealPath
	if err := r.finalUmount(ctx, &m, f.Real); err != nil {
		if f.Kind == FenceOver && isBusy(err) {
			// The fence is down already: put it back before draining on.
			if nf, ferr := u.sys.Fence(&r.target, true); ferr == nil {
				f.Close()
				*f = *nf
			}
		}
		return err
	}
	if f.Kind == FenceOver {
		f.Close() // the fence went first; nothing is left to do from its fds
	}
	r.send(Event{Stage: StageUnmount, What: fmt.Sprintf("umount2 of %s (not lazy): unmounted, verified by statmount", termsafe.Quote(f.RealPath))})
	return nil
}

// finish removes a FenceBeneath and ends the run.
func (r *run) finish(f *Fence) {
	if f.Kind == FenceBeneath {
		op := "removing the fence at " + termsafe.Quote(f.Target)
		if err := r.u.calls.Do(r.cleanupCtx(), r.callLimit(), op, bounded.AnyThread, func() error { return r.u.sys.RemoveFence(f) }); err != nil {
			r.abandoned(StageUnmount, err, "")
			r.send(Event{Stage: StageUnmount, Err: err, What: "the filesystem is unmounted, but removing the fence failed: " + termsafe.Quote(f.Target) + " still shows an empty read-only tmpfs"})
			r.done(Result{Gone: true, Summary: "unmounted; the fence is left at " + termsafe.Quote(f.Target)}, err)
			return
		}
		again := " is a plain directory again"
		if f.File {
			again = " is the file underneath again"
		}
		r.send(Event{Stage: StageUnmount, What: "fence removed: " + termsafe.Quote(f.Target) + again})
	}
	r.noteRestored()
	summary := fmt.Sprintf("%s is unmounted (verified): %d %s revoked, %d signalled",
		termsafe.Quote(r.target.Mountpoint), r.revoked, plural(r.revoked, "holder"), r.signalled)
	// Not restored yet: the call may have returned (the connection was
	// cut) without the tracer process having let the holder go.
	summary += r.unsettled()
	if r.server.Aborted && !r.plan.Server.Aborted {
		summary += "; the server was not answering: the connection was cut, data not yet written is lost"
	}
	if r.released > 0 {
		summary += fmt.Sprintf(", %d %s", r.released, plural(r.released, "release"))
	}
	if err := r.releaseFailures(); err != nil {
		// The mount is gone, but not what the operator asked to free
		// with it: the result line says so first, and the run fails.
		r.done(Result{Gone: true, Summary: "NOT released" + strings.TrimPrefix(r.releasesLeft(), "; not released") + "; " + summary}, err)
		return
	}
	r.done(Result{Gone: true, Summary: summary}, nil)
}

// who names a holder: "pid 12 (cat)", with its mount namespace when it
// holds a copy there.
func (r *run) who(h inspect.Holder) string {
	s := fmt.Sprintf("pid %d (%s)", h.PID, termsafe.Text(h.Comm))
	if ns := r.inCopy[h.PID]; ns != "" {
		s += " in mount namespace " + ns
	}
	return s
}

// timeoutSummary says why the drain gave up: the holders left and why, or,
// with none left, what else keeps the mount busy.
func (r *run) timeoutSummary() string {
	left := r.remainingHolders()
	if len(left) == 0 && r.lastSnap != nil {
		ids := []inspect.MountID{r.target.ID}
		for _, s := range r.plan.Submounts {
			ids = append(ids, s.ID)
		}
		return fmt.Sprintf("the mount was still busy after %v: %s%s", r.plan.Timeout, r.busyReason(ids...), r.releasesLeft())
	}
	return fmt.Sprintf("%d %s still held the mount after %v: %s%s", len(left), plural(len(left), "holder"), r.plan.Timeout, r.whyLeft(left), r.releasesLeft())
}

// noteRestored reports the holders left inside an injected syscall that
// the tracer process has restored and released since, and forgets them as
// stuck.
func (r *run) noteRestored() {
	rr, ok := r.u.sys.(RestoreReporter)
	if !ok {
		return
	}
	for _, pid := range r.order {
		if r.stuck[pid] == "" {
			continue
		}
		if what, ok := rr.Restored(pid); ok {
			delete(r.stuck, pid)
			delete(r.retry, pid)
			r.revoked++
			st := r.holders[pid]
			st.State, st.Reason = "revoked", what
			r.send(Event{Stage: StageRevoke, PID: pid, What: fmt.Sprintf("pid %d (%s): %s", pid, termsafe.Text(st.Comm), what), Holders: r.changedPicture()})
		}
	}
}

// busyReason says why the mount is busy when no process shows as holding
// it: a holder left inside an injected close(2) no longer has the fd in
// its table, but the call holds the file until it returns; otherwise
// busyHint.
func (r *run) busyReason(ids ...inspect.MountID) string {
	var ws []string
	for _, pid := range r.order {
		if w := r.stuck[pid]; w != "" {
			ws = append(ws, w)
		}
	}
	if len(ws) > 0 {
		return strings.Join(ws, "; ") + ", which holds the file until the call returns"
	}
	return r.busyHint(ids)
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

// detachedRefusal says why a plain mode cannot take a detached mount.
func detachedRefusal(m Mode) string {
	return fmt.Sprintf("the mount is detached (lazily unmounted: in no mount table), so umount2 (%s) cannot name it; --staged revokes its holders so that the kernel lets it go", m)
}

// stagedDetached finishes what a lazy unmount started: the target is a
// detached mount, alive only because processes hold it (Snapshot.Detached).
// There is nothing to fence (no path leads to it) and no path to syncfs it
// by; the kernel syncs the filesystem when it lets go of its last mount. So:
// revoke every holder, then drain until no scan finds a holder of its
// unique ID, or the timeout.
func (r *run) stagedDetached() {
	p := r.plan
	r.send(Event{Stage: StageFence, What: fmt.Sprintf("no fence: detached mount %d is in no mount table, so no path can open anything on it; no syncfs either (no path to it): the kernel syncs the filesystem when it lets go of it", r.target.ID)})
	// The probe goes through a holder's fd or cwd (no path names the
	// mount); a server that does not answer is cut off before revoking.
	r.server = p.Server
	if !r.server.Probed || r.server.Answering {
		r.server = r.u.probe(r.ctx, &r.target, r.probePath(nil), probeLimit(p))
	}
	r.reportServer(r.server, StageFence)
	if !r.server.Answering && r.ctx.Err() == nil {
		r.cutOff(nil, "the server is not answering")
	}
	if !r.revoke(nil) || r.ctx.Err() != nil {
		r.done(Result{Summary: r.detachedCancelled()}, ErrCancelled)
		return
	}
	deadline := time.NewTimer(r.deadline.Sub(r.u.now()))
	defer deadline.Stop()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-tick.C:
			case <-deadline.C:
				left := r.remainingHolders()
				r.done(Result{Summary: fmt.Sprintf("%d %s still held detached mount %d after %v: %s", len(left), plural(len(left), "holder"), r.target.ID, p.Timeout, r.whyLeft(left)),
					Remaining: left}, ErrTimeout)
				return
			case <-r.ctx.Done():
				r.done(Result{Summary: r.detachedCancelled(), Remaining: r.remainingHolders()}, ErrCancelled)
				return
			}
		}
		hs, err := r.scanHolders()
		if r.ctx.Err() != nil {
			r.done(Result{Summary: r.detachedCancelled(), Remaining: r.remainingHolders()}, ErrCancelled)
			return
		}
		if err != nil {
			r.send(Event{Stage: StageDrain, What: "rescan failed", Err: err})
			continue
		}
		r.remaining = hs
		if n := stuckHolders(hs); n > 0 {
			r.serverCheck(nil, fmt.Sprintf("%d %s in D state", n, plural(n, "holder")))
		}
		if _, still := r.lastSnap.Mount(r.target.ID); len(hs) == 0 && !still {
			r.send(Event{Stage: StageUnmount, What: fmt.Sprintf("no process holds detached mount %d any more (verified by a scan): the kernel releases it", r.target.ID), Holders: r.changedPicture()})
			r.done(Result{Gone: true, Summary: fmt.Sprintf("detached mount %d is gone (no holder left, verified): %d %s revoked, %d signalled",
				r.target.ID, r.revoked, plural(r.revoked, "holder"), r.signalled)}, nil)
			return
		}
		r.actAll(StageDrain, hs)
		r.send(Event{Stage: StageDrain, Remaining: len(hs), What: fmt.Sprintf("%d %s left: %s", len(hs), plural(len(hs), "holder"), r.whyLeft(hs)), Holders: r.changedPicture()})
	}
}

func (r *run) detachedCancelled() string {
	if r.revoked+r.signalled > 0 {
		return fmt.Sprintf("cancelled; %d holders were revoked and %d signalled and stay so; the detached mount lives on while the rest hold it", r.revoked, r.signalled) + r.unsettled()
	}
	if u := r.unsettled(); u != "" {
		return "cancelled" + u
	}
	return "cancelled; nothing changed"
}

// unsettled lists, "; " first, the holders the tracer process still has:
// left inside an injected syscall (stuck), or with a revoke the run
// stopped waiting for (underWay). Empty when there are none.
func (r *run) unsettled() string {
	var out string
	for _, pid := range r.order {
		if w := r.stuck[pid]; w != "" {
			out += "; " + w + ": the tracer process restores it when the call returns"
		}
		if w := r.underWay[pid]; w != "" {
			out += "; the revoke of " + w + " was under way when the run was cancelled: the tracer process finishes it (what it took stays taken) or, had it not begun, leaves the process untouched"
		}
	}
	return out
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
