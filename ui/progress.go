package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

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

	run       int // events of any other run are dropped
	req       Request
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
	log                 []logLine
	result              *unmount.Result
	logOffset           int // lines scrolled back from the end

	width, height int
	focused       bool
}

func newProgressPane(s *Styles, k *keyMap) progressPane {
	return progressPane{styles: s, keys: k}
}

// SetSize sets the pane's size (without its title line).
func (p *progressPane) SetSize(w, h int) { p.width, p.height = w, h }

// visible reports whether the pane has something to show.
func (p *progressPane) visible() bool { return p.preview || p.run != 0 }

// showPlan shows a dry-run plan.
func (p *progressPane) showPlan(req Request, plan unmount.Plan, now time.Time) {
	*p = progressPane{styles: p.styles, keys: p.keys, width: p.width, height: p.height, focused: p.focused,
		req: req, plan: plan, preview: true, started: now, now: now}
}

// start shows a new run; its channel follows with attach once the engine
// has started it.
func (p *progressPane) start(run int, req Request, plan unmount.Plan, ch <-chan unmount.Event, cancel context.CancelFunc, now time.Time) {
	*p = progressPane{styles: p.styles, keys: p.keys, width: p.width, height: p.height, focused: p.focused,
		run: run, req: req, plan: plan, active: true, ch: ch, cancel: cancel, started: now, now: now,
		stage: unmount.StagePlan}
	for _, a := range plan.Holders {
		st := unmount.HolderState{PID: a.Holder.PID, Comm: a.Holder.Comm, State: "pending", Planned: &a, Namespace: a.Namespace}
		switch {
		case req.Mode != unmount.ModeStaged:
			// Only the staged unmount acts on processes.
			st.State, st.Reason = "untouched", "holds it: "+summary(a.Holder.Uses)
		case a.Refused():
			st.State = "refused"
		}
		p.holders = append(p.holders, st)
	}
	if len(p.holders) == 0 && req.Snapshot != nil {
		for _, h := range req.Snapshot.HoldersOf(req.Target.ID) {
			p.holders = append(p.holders, unmount.HolderState{PID: h.PID, Comm: h.Comm, State: "untouched", Reason: "holds it: " + summary(h.Uses)})
		}
	}
	p.remaining = len(p.holders)
	p.addLog(logLine{at: now, stage: unmount.StagePlan, what: "started: " + modeName(req) + " of " + mountName(req.Target)})
}

// stop asks a running unmount to stop. Before revoke the engine rolls the
// fence back; after, what was revoked stays revoked.
func (p *progressPane) stop(now time.Time) bool {
	if !p.active || p.cancelled {
		return false
	}
	p.cancelled = true
	p.cancel()
	what := "cancel requested: rolling back"
	if p.revoking {
		what = "cancel requested: stopping (holders already revoked stay revoked)"
	}
	p.addLog(logLine{at: now, stage: p.stage, what: what})
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
	case runEventMsg:
		if msg.run != p.run || !p.active {
			return p, nil
		}
		if msg.closed {
			p.active = false
			p.ended = p.now
			if p.cancel != nil {
				p.cancel() // release the run's context
			}
			if p.result == nil {
				p.addLog(logLine{at: p.now, stage: p.stage, what: "the engine stopped without a result"})
			}
			return p, nil
		}
		p.apply(msg.ev)
		return p, waitForEvent(p.ch, p.run)
	case tea.KeyMsg:
		switch {
		case key.Matches(msg, p.keys.Up):
			p.logOffset++
		case key.Matches(msg, p.keys.Down):
			p.logOffset--
		case key.Matches(msg, p.keys.Top):
			p.logOffset = len(p.log)
		case key.Matches(msg, p.keys.Bottom):
			p.logOffset = 0
		}
		if p.logOffset > len(p.log)-1 {
			p.logOffset = len(p.log) - 1
		}
		if p.logOffset < 0 {
			p.logOffset = 0
		}
	}
	return p, nil
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
	if ev.What != "" || ev.Err != nil {
		p.addLog(logLine{at: at, stage: ev.Stage, pid: ev.PID, what: ev.What, err: ev.Err})
	}
	if ev.Stage == unmount.StageDone {
		p.result = ev.Result
		if p.result == nil {
			p.result = &unmount.Result{Summary: ev.What}
		}
		p.ended = at
		if p.result.Gone {
			p.remaining = 0
		}
	}
}

// title is the pane's title line: what runs on which mount, the stage and
// the elapsed time.
func (p *progressPane) title() string {
	mp := mountName(p.req.Target)
	if p.preview {
		return fmt.Sprintf("Plan for %s of %s (dry run: nothing changed)", modeName(p.req), mp)
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
	return fmt.Sprintf("%s of %s · %s · %s", strings.ToUpper(modeName(p.req)[:1])+modeName(p.req)[1:], mp, state, elapsed(end.Sub(p.started)))
}

// View draws exactly p.height lines.
func (p progressPane) View() string {
	var lines []string
	add := func(s string, st func(...string) string) {
		s = clip(s, p.width)
		if st != nil {
			s = st(s)
		}
		lines = append(lines, s)
	}
	if p.preview {
		for _, l := range planLines(p.req, p.plan, 1000) {
			add("  "+l, nil)
		}
		add("", nil)
		if p.req.Target.Detached {
			add("  F acts on it (asking first); esc closes this preview.", p.styles.Dim.Render)
		} else {
			add("  F, l, e or f acts on it (asking first); esc closes this preview.", p.styles.Dim.Render)
		}
		return p.pad(lines)
	}
	if p.req.Mode == unmount.ModeStaged {
		add("  "+p.stageChain(), p.styles.ProgressHead.Render)
		add("  "+p.planSummary(), nil)
	}
	if s := p.plan.Filesystem.PlanText(); s != "" && p.result == nil {
		// Until the result says what became of it (its summary does).
		add("  "+s, nil)
	}
	if p.req.Mode == unmount.ModeExpire {
		if s := p.mark.sentence(); s != "" {
			add("  "+s, p.styles.ProgressHead.Render)
		} else {
			add("  Expiry: not marked (yet)", p.styles.ProgressHead.Render)
		}
	}
	// Holders: at most a third of the pane, the rest goes to the log.
	if len(p.holders) > 0 {
		add(fmt.Sprintf("  %7s %-14s %-10s %s", "PID", "COMMAND", "STATE", "ACTION / REASON"), p.styles.Header.Render)
		room := p.height / 3
		if room < 2 {
			room = 2
		}
		for i, h := range p.holders {
			if i == room && len(p.holders) > room+1 {
				add(fmt.Sprintf("  … %d more", len(p.holders)-room), p.styles.Dim.Render)
				break
			}
			reason := shown(present.HolderReasonBrief(h))
			if h.Namespace != "" {
				// A holder of a copy in another namespace (Plan.Release).
				reason = "in " + safe(h.Namespace) + ": " + reason
			}
			line := fmt.Sprintf("  %7d %-14s %-10s %s", h.PID, clip(safe(h.Comm), 14), h.State, reason)
			st := p.styles.Pending.Render
			switch h.State {
			case "revoked", "gone", "signalled":
				st = p.styles.OK.Render
			case "refused":
				st = p.styles.Refused.Render
			case "untouched":
				st = nil
			}
			add(line, st)
		}
		if p.active {
			add(fmt.Sprintf("  remaining: %s", plural(p.remaining, "holder", "holders")), p.styles.ProgressHead.Render)
		}
	}
	// The result takes the last lines; the log fills what is between.
	var tail []string
	if p.result != nil {
		tail = append(tail, "  Result: "+p.resultText())
		for _, h := range p.result.Remaining {
			tail = append(tail, "    still held by "+holderBrief(h))
		}
	}
	room := p.height - len(lines) - len(tail)
	if room > 0 {
		end := len(p.log) - p.logOffset
		start := end - room
		if start < 0 {
			start = 0
		}
		for _, l := range p.log[start:end] {
			s := fmt.Sprintf("  %s %-8s ", l.at.Format("15:04:05"), l.stage)
			if pid := fmt.Sprintf("pid %d", l.pid); l.pid != 0 && !strings.HasPrefix(l.what, pid) {
				s += pid + ": "
			}
			s += shown(l.what)
			if l.err != nil && !isExpectedExpire(l) {
				if l.what != "" {
					s += ": "
				}
				add(s+shown(l.err.Error()), p.styles.Error.Render)
				continue
			}
			add(s, nil)
		}
	}
	for _, t := range tail {
		st := p.styles.Error.Render
		if p.result.Gone || p.result.Marked {
			st = p.styles.OK.Render
		}
		add(t, st)
	}
	return p.pad(lines)
}

// isExpectedExpire: EAGAIN from MNT_EXPIRE means "marked", not a failure.
func isExpectedExpire(l logLine) bool {
	return l.stage == unmount.StageExpire && errors.Is(l.err, unix.EAGAIN)
}

func (p *progressPane) resultText() string {
	r := p.result
	s := shown(r.Summary)
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

// planSummary is the plan in one line: how holders are revoked and how
// long the drain may take.
func (p *progressPane) planSummary() string {
	s := "plan: revoke " + plural(len(p.plan.Holders), "holder", "holders")
	if p.req.Policy == unmount.PolicySignal {
		s += " by SIGTERM"
		if p.plan.Grace > 0 {
			s += ", SIGKILL after " + p.plan.Grace.String()
		}
	} else {
		s += " by closing (ptrace)"
	}
	if p.plan.Interval > 0 {
		s += ", drain every " + p.plan.Interval.String()
	}
	if p.plan.Timeout > 0 {
		s += ", give up after " + p.plan.Timeout.String()
	}
	if n := len(p.plan.Submounts); n > 0 {
		s += ", " + plural(n, "submount", "submounts") + " first"
	}
	return s
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
