package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// logLine is one engine event as the log shows it.
type logLine struct {
	at    time.Time
	stage unmount.Stage
	pid   int
	what  string
	err   error
}

// progressPane shows one unmount while it runs and after it ended: the
// stage, elapsed time, the plan, each holder's state, the drain loop's
// remaining holders, the event log and the result. It owns the run's event
// channel (re-arming waitForEvent after each event) and its cancel func.
// It also shows a dry-run plan, with nothing running.
type progressPane struct {
	styles *Styles
	keys   *keyMap

	run       int               // events of any other run are dropped
	snap      *inspect.Snapshot // the scan the plan was made from
	plan      unmount.Plan
	preview   bool // a dry run: nothing is running or has changed
	active    bool // events still expected
	ch        <-chan unmount.Event
	cancel    context.CancelFunc
	cancelled bool
	revoking  bool // revoke has started: cancel no longer rolls back

	mark                expiryMark // expire runs: the mount's expiry mark as last read
	started, ended, now time.Time
	stage               unmount.Stage
	holders             []unmount.HolderState
	remaining           int
	// rounds are the holder processes left after each drain round, after
	// the count the revoke started from: the drain's sparkline.
	rounds []int
	log    []logLine
	result *unmount.Result
	// logView is the log's scroll position (bubbles/viewport over the
	// rendered log lines); logTail: it follows the end, as it does until
	// the operator scrolls back.
	logView viewport.Model
	logTail bool

	width, height int
	focused       bool
}

func newProgressPane(s *Styles, k *keyMap) progressPane {
	return progressPane{styles: s, keys: k, logTail: true}
}

// SetSize sets the pane's size (without its title line).
func (p *progressPane) SetSize(w, h int) { p.width, p.height = w, h }

func (p *progressPane) setFocused(f bool) { p.focused = f }

// setNow moves the clock that times the run.
func (p *progressPane) setNow(t time.Time) { p.now = t }

// setMark is the expiry mark of the run's mount, as last read.
func (p *progressPane) setMark(e expiryMark) { p.mark = e }

// visible reports whether the pane has something to show.
func (p *progressPane) visible() bool { return p.preview || p.run != 0 }

// Active reports whether a run is going (events still expected).
func (p *progressPane) Active() bool { return p.active }

// targetID is the mount the pane is about (0 when none).
func (p *progressPane) targetID() inspect.MountID { return p.plan.Target.ID }

// modeName is the run's mode in the operator's words.
func (p *progressPane) modeName() string { return present.ModeName(p.plan) }

// runName is "staged unmount (close) of /mnt/x".
func (p *progressPane) runName() string {
	return present.ModeName(p.plan) + " of " + present.MountName(p.plan.Target)
}

// cleared is the pane with nothing to show, at the same size and focus.
func (p progressPane) cleared() progressPane {
	n := newProgressPane(p.styles, p.keys)
	n.width, n.height, n.focused = p.width, p.height, p.focused
	return n
}

// ShortHelp implements help.KeyMap: the keys of the pane.
func (p progressPane) ShortHelp() []key.Binding {
	k := p.keys
	if p.active {
		return []key.Binding{k.Cancel, k.Up, k.Down, k.Top, k.Bottom}
	}
	return []key.Binding{k.Close, k.Up, k.Down, k.Top, k.Bottom}
}

// FullHelp implements help.KeyMap.
func (p progressPane) FullHelp() [][]key.Binding { return [][]key.Binding{p.ShortHelp()} }

// showPlan shows a dry-run plan.
func (p *progressPane) showPlan(snap *inspect.Snapshot, plan unmount.Plan, now time.Time) {
	*p = progressPane{styles: p.styles, keys: p.keys, width: p.width, height: p.height, focused: p.focused,
		snap: snap, plan: plan, preview: true, started: now, now: now, logTail: true}
}

// start shows a new run of plan; its channel follows (runStartedMsg) once
// the engine has started it, and the holders with the run's first event,
// the plan event: the pane shows what the run planned, not a copy.
func (p *progressPane) start(run int, snap *inspect.Snapshot, plan unmount.Plan, cancel context.CancelFunc, now time.Time) {
	*p = progressPane{styles: p.styles, keys: p.keys, width: p.width, height: p.height, focused: p.focused,
		run: run, snap: snap, plan: plan, active: true, cancel: cancel, started: now, now: now, logTail: true,
		stage: unmount.StagePlan}
	p.addLog(logLine{at: now, stage: unmount.StagePlan, what: "started: " + p.runName()})
}

// fromPlanEvent takes what the run planned from its first event: the
// releases, the server's probe, the filesystem forecast and the holders
// (in a plain unmount they are untouched: only the staged unmount acts on
// processes).
func (p *progressPane) fromPlanEvent(ev unmount.Event) {
	p.plan.Releases, p.plan.Release = ev.Releases, ev.Release
	if ev.Server != nil {
		p.plan.Server = *ev.Server
	}
	if ev.Filesystem != nil {
		p.plan.Filesystem = *ev.Filesystem
	}
	if p.plan.Mode == unmount.ModeStaged {
		return
	}
	var uses map[int]string
	if p.snap != nil {
		uses = map[int]string{}
		for _, h := range p.snap.HoldersOf(p.plan.Target.ID) {
			uses[h.PID] = summary(h.Uses)
		}
	}
	for i := range p.holders {
		p.holders[i].State, p.holders[i].Reason = "untouched", "holds it: "+uses[p.holders[i].PID]
	}
}

// stop asks a running unmount to stop. Before revoke the engine rolls the
// fence back; after, what was revoked stays revoked.
func (p *progressPane) stop(now time.Time) bool {
	if !p.active || p.cancelled {
		return false
	}
	p.cancelled = true
	p.cancel()
	p.addLog(logLine{at: now, stage: p.stage, what: present.CancelRequested(p.revoking)})
	return true
}

func (p *progressPane) addLog(l logLine) {
	p.log = append(p.log, l)
	if len(p.log) > 500 {
		p.log = p.log[len(p.log)-500:]
	}
}

// Update takes engine events for this pane's run and, when focused, the
// keys that scroll the log.
func (p progressPane) Update(msg tea.Msg) (progressPane, tea.Cmd) {
	switch msg := msg.(type) {
	case runStartedMsg:
		if msg.run != p.run {
			return p, nil
		}
		p.ch = msg.ch
		return p, waitForEvent(p.ch, p.run)
	case runEventMsg:
		return p.onEvent(msg)
	case tea.KeyMsg:
		p.scrollLog(msg)
	}
	return p, nil
}

// onEvent takes one event of the pane's run and waits for the next; the
// channel's close ends the run.
func (p progressPane) onEvent(msg runEventMsg) (progressPane, tea.Cmd) {
	if msg.run != p.run || !p.active {
		return p, nil
	}
	if !msg.closed {
		p.apply(msg.ev)
		return p, waitForEvent(p.ch, p.run)
	}
	p.active = false
	p.ended = p.now
	if p.cancel != nil {
		p.cancel() // release the run's context
	}
	if p.result == nil {
		p.addLog(logLine{at: p.now, stage: p.stage, what: present.EngineStoppedNoResult})
	}
	return p, nil
}

// scrollLog moves the log back (up) and forth (down); at its end it
// follows new lines again.
func (p *progressPane) scrollLog(km tea.KeyMsg) {
	k := p.keys
	vp, _ := p.logWindow(p.logRoom())
	switch {
	case key.Matches(km, k.Up):
		vp.ScrollUp(1)
	case key.Matches(km, k.Down):
		vp.ScrollDown(1)
	case key.Matches(km, k.Top):
		vp.GotoTop()
	case key.Matches(km, k.Bottom):
		vp.GotoBottom()
	}
	p.logView, p.logTail = vp, vp.AtBottom()
}

// logRoom is how many lines the log has: what the head, the holders and
// the result leave of the pane.
func (p *progressPane) logRoom() int {
	out := &paneLines{width: p.width}
	p.headLines(out)
	p.holderLines(out)
	return p.height - len(out.lines) - len(p.resultLines())
}

// logWindow is the log's viewport over its rendered lines, room lines
// high, at the end if it follows it.
func (p *progressPane) logWindow(room int) (viewport.Model, []string) {
	out := &paneLines{width: p.width}
	for _, l := range p.log {
		out.add(p.logLine(l))
	}
	vp := p.logView
	vp.Height = max(room, 0)
	vp.SetContent(strings.Join(out.lines, "\n"))
	if p.logTail {
		vp.GotoBottom()
	}
	return vp, out.lines
}

func (p *progressPane) apply(ev unmount.Event) {
	at := ev.At
	if at.IsZero() {
		at = p.now
	}
	if ev.Stage != unmount.StageDone {
		p.stage = ev.Stage
	}
	if ev.Stage == unmount.StageRevoke {
		p.revoking = true
	}
	p.takeHolders(ev)
	p.countRound(ev)
	if ev.Stage == unmount.StagePlan {
		p.fromPlanEvent(ev)
	}
	if what := present.EventWhat(ev); what != "" || ev.Err != nil {
		p.addLog(logLine{at: at, stage: ev.Stage, pid: ev.PID, what: what, err: ev.Err})
	}
	if ev.Stage == unmount.StageDone {
		p.takeResult(ev, at)
	}
}

// takeHolders takes the per-holder picture when it changed, and how many
// are left.
func (p *progressPane) takeHolders(ev unmount.Event) {
	if ev.Holders != nil {
		if ev.Stage == unmount.StagePlan {
			p.holders = append(p.holders[:0:0], ev.Holders...) // the full picture
		} else {
			p.holders = unmount.ApplyHolders(p.holders, ev.Holders) // what changed
		}
		left := 0
		for _, h := range p.holders {
			if h.State != "revoked" && h.State != "gone" {
				left++
			}
		}
		p.remaining = left
	}
	if ev.Stage == unmount.StageDrain || ev.Remaining > 0 {
		p.remaining = ev.Remaining
	}
}

// takeResult ends the run with its result.
func (p *progressPane) takeResult(ev unmount.Event, at time.Time) {
	p.result = ev.Result
	if p.result == nil {
		p.result = &unmount.Result{Summary: present.EventWhat(ev)}
	}
	p.ended = at
	if p.result.Gone {
		p.remaining = 0
	}
}

// countRound records the holders left by a drain round: a drain event
// that is about no one process (those are the round's revokes) and is not
// a failed rescan. The first round is preceded by the number of holders
// the revoke started from, so the chart shows the fall from there.
func (p *progressPane) countRound(ev unmount.Event) {
	if ev.Stage != unmount.StageDrain || ev.PID != 0 || (ev.Err != nil && ev.Remaining == 0) {
		return
	}
	if len(p.rounds) == 0 {
		p.rounds = append(p.rounds, len(p.holders))
	}
	p.rounds = append(p.rounds, ev.Remaining)
}

// drainLine is the drain in one line: a sparkline of the holders left
// per round, and how many were revoked and refused.
func (p *progressPane) drainLine() string {
	revoked, refused := 0, 0
	for _, h := range p.holders {
		switch h.State {
		case "revoked", "signalled":
			revoked++
		case "refused":
			refused++
		}
	}
	s := fmt.Sprintf("revoked %d · refused %d", revoked, refused)
	if len(p.rounds) > 0 {
		s = fmt.Sprintf("drain %s %d→%d · ", sparkline(p.rounds, p.styles.Plain), p.rounds[0], p.rounds[len(p.rounds)-1]) + s
	}
	return s
}

// title is the pane's title line: what runs on which mount, the stage and
// the elapsed time.
func (p *progressPane) title() string {
	mp := present.MountName(p.plan.Target)
	if p.preview {
		return present.PreviewTitle(p.plan)
	}
	end := p.now
	if !p.active && !p.ended.IsZero() {
		end = p.ended
	}
	state := "stage " + p.stage.String()
	switch {
	case p.active && p.cancelled:
		state += ", cancelling"
	case !p.active && p.result != nil && p.result.Gone:
		state = "done: gone"
	case !p.active && p.result != nil && p.result.Marked:
		state = "done: marked"
	case !p.active:
		state = "ended"
	}
	return fmt.Sprintf("%s of %s · %s · %s", strings.ToUpper(present.ModeName(p.plan)[:1])+present.ModeName(p.plan)[1:], mp, state, elapsed(end.Sub(p.started)))
}

// paneLines collects a pane's lines, each clipped to the width and styled.
type paneLines struct {
	width int
	lines []string
}

func (l *paneLines) add(s string, st func(...string) string) {
	s = clip(s, l.width)
	if st != nil {
		s = st(s)
	}
	l.lines = append(l.lines, s)
}

// View draws exactly p.height lines: the plan's head, the holders, the
// log, and the result in the last lines.
func (p progressPane) View() string {
	out := &paneLines{width: p.width}
	if p.preview {
		for _, l := range present.PlanLines(p.snap, p.plan, 1000, p.keys.name(p.keys.Cancel)) {
			out.add("  "+l, nil)
		}
		out.add("", nil)
		out.add("  "+p.previewHint(), p.styles.Dim.Render)
		return p.pad(out.lines)
	}
	p.headLines(out)
	p.holderLines(out)
	tail := p.resultLines()
	p.logLines(out, p.height-len(out.lines)-len(tail))
	for _, t := range tail {
		st := p.styles.Error.Render
		if p.result.Gone || p.result.Marked {
			st = p.styles.OK.Render
		}
		out.add(t, st)
	}
	return p.pad(out.lines)
}

// headLines are the stages, the plan in one line, the filesystem's
// forecast (until the result says what became of it) and an expire run's
// mark.
func (p *progressPane) headLines(out *paneLines) {
	if p.plan.Mode == unmount.ModeStaged {
		out.add("  "+p.stageChain(), p.styles.ProgressHead.Render)
		out.add("  "+present.PlanSummary(p.plan), nil)
	}
	if s := present.FilesystemPlanText(&p.plan.Filesystem); s != "" && p.result == nil {
		out.add("  "+s, nil)
	}
	if p.plan.Mode == unmount.ModeExpire {
		s := p.mark.sentence(p.keys)
		if s == "" {
			s = present.ExpiryNotMarked
		}
		out.add("  "+s, p.styles.ProgressHead.Render)
	}
}

// holderLines are each holder's state, at most a third of the pane (the
// rest goes to the log), and the drain in one line.
func (p *progressPane) holderLines(out *paneLines) {
	if len(p.holders) == 0 {
		return
	}
	out.add(fmt.Sprintf("  %7s %-14s %-10s %s", "PID", "COMMAND", "STATE", "ACTION / REASON"), p.styles.Header.Render)
	room := max(p.height/3, 2)
	for i, h := range p.holders {
		if i == room && len(p.holders) > room+1 {
			out.add(fmt.Sprintf("  … %d more", len(p.holders)-room), p.styles.Dim.Render)
			break
		}
		out.add(p.holderLine(h))
	}
	switch {
	case p.active && p.plan.Mode == unmount.ModeStaged:
		out.add(fmt.Sprintf("  remaining: %s · %s", plural(p.remaining, "holder", "holders"), p.drainLine()), p.styles.ProgressHead.Render)
	case p.active:
		out.add(fmt.Sprintf("  remaining: %s", plural(p.remaining, "holder", "holders")), p.styles.ProgressHead.Render)
	case len(p.rounds) > 0:
		out.add("  "+p.drainLine(), p.styles.ProgressHead.Render)
	}
}

// holderLine is one holder's row and its style, by state.
func (p *progressPane) holderLine(h unmount.HolderState) (string, func(...string) string) {
	reason := shown(present.HolderReasonBrief(h))
	if h.Namespace != 0 {
		// A holder of a copy in another namespace (Plan.Release).
		reason = "in " + present.NamespaceID(h.Namespace) + ": " + reason
	}
	line := fmt.Sprintf("  %7d %-14s %-10s %s", h.PID, clip(safe(h.Comm), 14), h.State, reason)
	switch h.State {
	case "revoked", "gone", "signalled":
		return line, p.styles.OK.Render
	case "refused":
		return line, p.styles.Refused.Render
	case "untouched":
		return line, nil
	}
	return line, p.styles.Pending.Render
}

// resultLines are the result and who still holds the mount.
func (p *progressPane) resultLines() []string {
	if p.result == nil {
		return nil
	}
	tail := []string{"  Result: " + p.resultText()}
	for _, h := range p.result.Remaining {
		tail = append(tail, "    "+present.StillHeldBy(h))
	}
	return tail
}

// logLines are the room lines of the log in view (the last ones, unless
// the operator scrolled back).
func (p *progressPane) logLines(out *paneLines, room int) {
	if room <= 0 {
		return
	}
	vp, lines := p.logWindow(room)
	out.lines = append(out.lines, lines[vp.YOffset:min(vp.YOffset+vp.Height, len(lines))]...)
}

// logLine is one log line and its style (an error's, unless it is the
// EAGAIN of an expiry mark).
func (p *progressPane) logLine(l logLine) (string, func(...string) string) {
	s := fmt.Sprintf("  %s %-8s ", l.at.Format("15:04:05"), l.stage)
	if pid := fmt.Sprintf("pid %d", l.pid); l.pid != 0 && !strings.HasPrefix(l.what, pid) {
		s += pid + ": "
	}
	s += shown(l.what)
	if l.err != nil && !isExpectedExpire(l) {
		// A note that words its error already (a holder not revoked)
		// does not get it twice (as present.EventText).
		if !strings.Contains(l.what, l.err.Error()) {
			if l.what != "" {
				s += ": "
			}
			s += shown(l.err.Error())
		}
		return s, p.styles.Error.Render
	}
	return s, nil
}

// previewHint says which keys act on a previewed plan.
func (p *progressPane) previewHint() string {
	k := p.keys
	acts := k.name(k.Staged)
	if !p.plan.Target.Detached {
		acts += ", " + k.name(k.Lazy) + ", " + k.name(k.Expire) + " or " + k.name(k.Force)
	}
	return present.PreviewHint(acts, k.name(k.Close))
}

// isExpectedExpire: EAGAIN from MNT_EXPIRE means "marked", not a failure.
func isExpectedExpire(l logLine) bool {
	return l.stage == unmount.StageExpire && errors.Is(l.err, unix.EAGAIN)
}

func (p *progressPane) resultText() string {
	r := p.result
	s := shown(present.ResultSummary(*r))
	switch {
	case r.Gone && s == "":
		s = "gone"
	case r.Marked && s == "":
		s = "marked for expiry"
	case s == "":
		s = "not unmounted"
	}
	switch {
	case r.Gone:
		return "✓ " + s
	case r.Marked:
		return "• " + s // half-way, as asked: not a failure
	}
	return "✗ " + s
}

// stageChain is "fence > [revoke] > drain > unmount" with the current stage
// bracketed. A run that releases kernel holders and copies has a release
// stage after revoke. (A detached mount's run goes through the same
// stages: the engine reports "no fence" and, at the end, the kernel
// letting it go.)
func (p *progressPane) stageChain() string {
	stages := []unmount.Stage{unmount.StagePlan, unmount.StageFence, unmount.StageRevoke, unmount.StageDrain, unmount.StageUnmount}
	if p.plan.Release {
		stages = []unmount.Stage{unmount.StagePlan, unmount.StageFence, unmount.StageRevoke, unmount.StageRelease, unmount.StageDrain, unmount.StageUnmount}
	}
	parts := make([]string, 0, len(stages)+1)
	in := false
	for _, s := range stages {
		name := s.String()
		if s == p.stage {
			name = "[" + strings.ToUpper(name) + "]"
			in = true
		}
		parts = append(parts, name)
	}
	if !in && (p.stage == unmount.StageRollback || p.stage == unmount.StageRelease) {
		parts = append(parts, "["+strings.ToUpper(p.stage.String())+"]")
	}
	return strings.Join(parts, " > ")
}

func (p *progressPane) pad(lines []string) string {
	if len(lines) > p.height {
		lines = lines[:p.height]
	}
	for len(lines) < p.height {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}
