// Package ui is mounttop's interactive view, a bubbletea program: the mount
// tree, who holds the selected mount and how, and the unmount actions with
// a live progress pane.
//
// The root Model routes every message (window size, then an open dialog,
// then the help screen and the filter prompt, then global keys, then the
// focused pane; data messages go to the pane that owns them whatever has
// focus). Update never touches /proc or makes a syscall: scans, plans and
// unmount runs happen in tea.Cmds and come back as messages.
package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// Options configure the interactive view.
type Options struct {
	Scanner   Scanner   // required
	Unmounter Unmounter // required
	// Interval is the background refresh period and the drain/expire
	// retry interval (default 2s).
	Interval time.Duration
	// StartPath selects the mount at (or containing) this path once the
	// first scan arrives. It is matched against the mount table only; the
	// path is never walked (that would clear an expiry mark).
	StartPath string
	// ScanTimeout abandons a scan that takes longer (default 15s): a hung
	// filesystem must not stop the refresh for good.
	ScanTimeout time.Duration
	// QuitGrace is how long quitting waits for a cancelled run to roll
	// back before it gives up (default 15s).
	QuitGrace time.Duration
	// Now is the clock (tests fix it).
	Now func() time.Time
	// Notice is shown in the status bar until the first action.
	Notice string
	// Leftovers, if set, finds the fences killed runs left after each
	// scan: a banner says so and K rolls one back.
	Leftovers Leftovers
}

type focus int

const (
	focusTree focus = iota
	focusLower
)

// Model is the root of the interactive view.
type Model struct {
	opts   Options
	after  timerFunc // tea.Tick
	styles *Styles
	keys   *keyMap

	width, height int
	tree          treePane
	holders       holdersPane
	progress      progressPane
	dialog        *confirmDialog
	showHelp      bool
	focus         focus

	snap        *inspect.Snapshot
	gen         int // generation of the newest scan asked for
	scanning    bool
	scanStarted time.Time
	scanCancel  context.CancelFunc
	firstCtx    context.Context // the first scan's, made by New for Init
	scanTook    time.Duration
	started     bool // StartPath has been looked for
	expiry      *expiryMarks
	runs        int
	now         time.Time

	status   string // the last action and its result
	err      error  // shown until the next key
	errHint  string
	quitting bool // waiting for a cancelled run to end before quitting
	// releasing is the release being carried out (R), in the operator's
	// words; empty when none is. One at a time.
	releasing string
	laidOut   int // the status height the panes were sized for
	// leftovers are the fences killed runs left, as of the last scan.
	leftovers []unmount.Leftover
}

// New builds the view; the first scan starts with Init.
func New(opts Options) Model {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.ScanTimeout <= 0 {
		opts.ScanTimeout = 15 * time.Second
	}
	if opts.QuitGrace <= 0 {
		opts.QuitGrace = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StartPath != "" && !filepath.IsAbs(opts.StartPath) {
		// Here, not in Update: Abs asks the kernel for the working directory.
		if abs, err := filepath.Abs(opts.StartPath); err == nil {
			opts.StartPath = abs
		}
	}
	st := newStyles()
	k := defaultKeys()
	m := Model{opts: opts, after: tea.Tick, styles: &st, keys: &k, expiry: newExpiryMarks(), width: 80, height: 24}
	m.tree = newTreePane(m.styles, m.keys)
	m.tree.expiry = m.expiry
	m.holders = newHoldersPane(m.styles, m.keys)
	m.progress = newProgressPane(m.styles, m.keys)
	m.now = opts.Now()
	m.status = opts.Notice
	m.gen, m.scanning, m.scanStarted = 1, true, m.now
	m.firstCtx, m.scanCancel = context.WithTimeout(context.Background(), opts.ScanTimeout)
	m.layout()
	return m
}

// SignalMsg turns a signal the program received (SIGTERM, SIGHUP, SIGINT)
// into a message: the view cancels a running unmount, waits for it to stop
// (up to QuitGrace) and quits.
func SignalMsg(s os.Signal) tea.Msg { return signalMsg{sig: s} }

// LeftRunning says, after the program ended, whether an unmount was still
// running (quitting gave up waiting for it): empty when nothing was.
func (m Model) LeftRunning() string {
	if !m.progress.active {
		return ""
	}
	return fmt.Sprintf("the %s of %s was cancelled but had not stopped when mounttop quit (stage %s); check it with: mounttop list",
		modeName(m.progress.req), mountName(m.progress.req.Target), m.progress.stage)
}

// Init starts the first scan and the clock.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.firstScan(), m.clockCmd())
}

// firstScan is generation 1: New set it up (Init cannot change the
// model), and this runs it.
func (m Model) firstScan() tea.Cmd {
	return scanCmd(m.firstCtx, m.opts.Scanner, m.marks(), 1)
}

// startScan begins a scan of a new generation, abandoning any scan still
// running (its result will be stale).
func (m Model) startScan() (Model, tea.Cmd) {
	if m.scanCancel != nil {
		m.scanCancel()
	}
	m.gen++
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.ScanTimeout)
	m.scanCancel = cancel
	m.scanning = true
	m.scanStarted = m.opts.Now()
	return m, scanCmd(ctx, m.opts.Scanner, m.marks(), m.gen)
}

// marks is the Unmounter as an ExpiryReader, if it is one.
func (m Model) marks() ExpiryReader {
	r, _ := m.opts.Unmounter.(ExpiryReader)
	return r
}

// Update routes one message; see the package comment for the order.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	nm, cmd := m.update(msg)
	next := nm.(Model)
	if next.statusHeight() != next.laidOut {
		next.layout() // a long error takes a line more from the panes
	}
	return next, cmd
}

func (m Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case clockMsg:
		m.now = m.opts.Now()
		m.progress.now = m.now
		return m, m.clockCmd()
	case scanDoneMsg:
		return m.onScan(msg)
	case tickMsg:
		if msg.gen != m.gen || m.scanning {
			return m, nil // a refresh has replaced the chain this tick belonged to
		}
		return m.startScan()
	case planMsg:
		return m.onPlan(msg)
	case releasePlanMsg:
		return m.onReleasePlan(msg)
	case releaseDoneMsg:
		return m.onReleaseDone(msg)
	case leftoversMsg:
		if msg.gen == m.gen {
			m.leftovers = msg.list
		}
		return m, nil
	case leftoverDoneMsg:
		return m.onLeftoverDone(msg)
	case runStartedMsg:
		if msg.run != m.progress.run {
			return m, nil
		}
		return m, m.progress.attach(msg.ch)
	case runEventMsg:
		return m.onRunEvent(msg)
	case marksMsg:
		if msg.marks != nil {
			m.expiry.book = msg.marks
			m.showSelected()
		}
		return m, nil
	case signalMsg:
		return m.quit(fmt.Sprintf("got %v", msg.sig))
	case quitTimeoutMsg:
		if m.quitting {
			return m, tea.Quit
		}
		return m, nil
	case tea.KeyMsg:
		return m.onKey(msg)
	}
	return m, nil
}

// layout hands each pane its share of the screen: one title line, the
// tree and the lower pane (holders or progress) each with a title line,
// and the status lines.
func (m *Model) layout() {
	m.laidOut = m.statusHeight()
	body := m.height - 1 - m.laidOut
	if body < 4 {
		body = 4
	}
	treeH := body / 2
	lower := body - treeH
	m.tree.SetSize(m.width, treeH-1)
	m.holders.SetSize(m.width, lower-1)
	m.progress.SetSize(m.width, lower-1)
	m.setFocus(m.focus)
}

func (m *Model) setFocus(f focus) {
	m.focus = f
	m.tree.focused = f == focusTree
	m.holders.focused = f == focusLower && !m.progress.visible()
	m.progress.focused = f == focusLower && m.progress.visible()
}

func (m Model) onScan(msg scanDoneMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.gen {
		return m, nil // stale: a refresh replaced this scan
	}
	if m.scanCancel != nil {
		m.scanCancel()
		m.scanCancel = nil
	}
	m.scanning = false
	m.scanTook = msg.took
	m.now = m.opts.Now()
	next := m.tickCmd(m.gen)
	if msg.err == nil && msg.snap == nil {
		msg.err = errors.New("the scanner returned no snapshot")
	}
	if msg.err != nil {
		m.setError(fmt.Errorf("scanning: %w", msg.err))
		return m, next
	}
	m.snap = msg.snap
	if msg.marks != nil {
		m.expiry.book = msg.marks
	}
	goneID, gone := m.tree.setSnapshot(msg.snap)
	if !m.started {
		m.started = true
		if m.opts.StartPath != "" {
			m.selectPath(m.opts.StartPath)
		}
	}
	// A mount that went away by our own run already has its result in
	// the status bar; one that went otherwise is news.
	if gone != "" && !(m.progress.visible() && m.progress.req.Target.ID == goneID) {
		m.status = safe(gone) + " is no longer mounted; selected the mount above it"
	}
	m.showSelected()
	if m.opts.Leftovers != nil {
		next = tea.Batch(next, leftoversCmd(m.opts.Leftovers, msg.snap, m.gen))
	}
	return m, next
}

// selectPath selects the mount at path (made absolute by New), or the one
// path lies on.
func (m *Model) selectPath(path string) {
	p := filepath.Clean(path)
	mt, ok := m.snap.MountAt(p)
	if !ok {
		mt, ok = m.snap.MountContaining(p)
	}
	if !ok || !m.tree.selectID(mt.ID) {
		m.setError(fmt.Errorf("%s: no mount found there", safe(path)))
		return
	}
	if mt.Mountpoint != p {
		m.status = safe(path) + " lies on " + safe(mt.Mountpoint)
	}
}

// showSelected points the holders pane at the tree's selection.
func (m *Model) showSelected() {
	m.holders.show(m.snap, m.tree.selected, m.expiry.of(m.tree.selected))
	m.progress.mark = m.expiry.of(m.progress.req.Target.ID)
}

// selectedMount is the mount under the tree's cursor.
func (m *Model) selectedMount() (*inspect.Mount, bool) {
	if m.snap == nil || m.tree.selected == 0 {
		return nil, false
	}
	return m.snap.Mount(m.tree.selected)
}

func (m *Model) setError(err error) {
	m.err = err
	var holders []inspect.Holder
	if m.snap != nil {
		holders = m.snap.HoldersOf(m.tree.selected)
	}
	m.errHint = hintFor(err, holders)
}

func (m Model) onKey(km tea.KeyMsg) (tea.Model, tea.Cmd) {
	// Keys typed quickly can arrive as one message ("/db"): outside the
	// filter prompt each is a command of its own, so take them one by one.
	if km.Type == tea.KeyRunes && len(km.Runes) > 1 && !km.Paste && !m.tree.filtering {
		var cmds []tea.Cmd
		var next tea.Model = m
		for i, r := range km.Runes {
			cur := next.(Model)
			if cur.tree.filtering {
				// The rest is the filter's text.
				rest := tea.KeyMsg{Type: tea.KeyRunes, Runes: km.Runes[i:]}
				cur.tree, _ = cur.tree.Update(rest)
				cur.showSelected()
				next = cur
				break
			}
			var cmd tea.Cmd
			next, cmd = cur.onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: km.Alt})
			cmds = append(cmds, cmd)
		}
		return next, tea.Batch(cmds...)
	}
	m.err, m.errHint = nil, "" // errors show until the next key
	k := m.keys
	if m.dialog != nil {
		d, act, done := m.dialog.Update(km)
		if !done {
			m.dialog = &d
			return m, nil
		}
		m.dialog = nil
		if act == nil {
			m.status = "cancelled: nothing was changed"
			return m, nil
		}
		return m.do(*act)
	}
	if m.showHelp {
		m.showHelp = false
		return m, nil
	}
	if m.quitting {
		if key.Matches(km, k.Quit) {
			return m, tea.Quit // asked twice: stop waiting
		}
		return m, nil
	}
	if m.tree.filtering {
		m.tree, _ = m.tree.Update(km)
		m.showSelected()
		return m, nil
	}
	switch {
	case key.Matches(km, k.Quit):
		if m.progress.active {
			m.dialog = m.quitDialog()
			return m, nil
		}
		return m, tea.Quit
	case key.Matches(km, k.Help):
		m.showHelp = true
		return m, nil
	case key.Matches(km, k.SwitchPane):
		if m.focus == focusTree {
			m.setFocus(focusLower)
		} else {
			m.setFocus(focusTree)
		}
		return m, nil
	case key.Matches(km, k.Refresh):
		m.status = "refreshing…"
		return m.startScan()
	case key.Matches(km, k.Cancel):
		switch {
		case m.progress.active:
			if m.progress.stop(m.now) {
				m.status = "cancelling the " + modeName(m.progress.req) + "…"
			}
		case m.progress.visible():
			m.progress = newProgressPane(m.styles, m.keys).withSize(m.progress)
			m.setFocus(focusTree)
		case m.tree.filter != "":
			m.tree.filter = ""
			m.tree.rebuild(m.tree.selected)
			m.showSelected()
		}
		return m, nil
	case key.Matches(km, k.Filter):
		m.setFocus(focusTree)
		m.tree.startFilter()
		m.showSelected()
		return m, nil
	case key.Matches(km, k.Lazy):
		return m.ask(Request{Mode: unmount.ModeLazy}, false)
	case key.Matches(km, k.Expire):
		return m.ask(Request{Mode: unmount.ModeExpire}, false)
	case key.Matches(km, k.Force):
		return m.ask(Request{Mode: unmount.ModeForce}, false)
	case key.Matches(km, k.Staged):
		return m.ask(Request{Mode: unmount.ModeStaged, Policy: unmount.PolicyClose}, false)
	case key.Matches(km, k.DryRun):
		return m.ask(Request{Mode: unmount.ModeStaged, Policy: unmount.PolicyClose}, true)
	case key.Matches(km, k.Release):
		return m.askRelease()
	case key.Matches(km, k.RollbackFence) && m.opts.Leftovers != nil:
		return m.askRollbackFence()
	}
	if m.focus == focusTree {
		m.tree, _ = m.tree.Update(km)
		m.showSelected()
		return m, nil
	}
	if m.progress.visible() {
		m.progress, _ = m.progress.Update(km)
		return m, nil
	}
	m.holders, _ = m.holders.Update(km)
	return m, nil
}

// ask starts an action on the selected mount: the engine builds the plan
// (in a command), and the plan comes back as a dialog or a preview.
func (m Model) ask(req Request, preview bool) (tea.Model, tea.Cmd) {
	mt, ok := m.selectedMount()
	if !ok {
		m.setError(errors.New("no mount selected"))
		return m, nil
	}
	if m.progress.active && !preview {
		m.setError(fmt.Errorf("a %s of %s is still running: x cancels it", modeName(m.progress.req), mountName(m.progress.req.Target)))
		return m, nil
	}
	if mt.Detached && req.Mode != unmount.ModeStaged {
		// A detached mount is already out of every mount table: umount2
		// has no path to act on, and what keeps it alive is its holders.
		m.status = "no " + modeName(req) + ": " + mountName(*mt) + " is in no mount table; " +
			"F revokes its holders until it goes, d previews that"
		return m, nil
	}
	if why := unmount.SystemMount(mt); why != "" {
		// The engine refuses it too (Prepare); the view does not even
		// ask, and says how the override is given.
		m.status = "no " + modeName(req) + ": " + why + "; the view never unmounts it (" + unmount.AllowSystemHint + ")"
		return m, nil
	}
	req.Snapshot = m.snap
	req.Target = *mt
	req.Interval = m.opts.Interval
	m.status = "planning the " + modeName(req) + " of " + mountName(*mt) + "…"
	return m, planCmd(m.opts.Unmounter, req, preview)
}

func (m Model) onPlan(msg planMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.setError(fmt.Errorf("planning the %s of %s: %w", modeName(msg.req), mountName(msg.req.Target), msg.err))
		return m, nil
	}
	if msg.preview {
		m.status = "dry run: nothing was changed"
		m.progress.showPlan(msg.req, msg.plan, m.now)
		m.setFocus(m.focus)
		return m, nil
	}
	m.status = ""
	m.dialog = m.unmountDialog(msg.req, msg.plan)
	if msg.releasePlan != nil {
		m.dialog.offerRelease(msg.req, *msg.releasePlan)
	} else if msg.releaseErr != nil {
		m.dialog.lines = append(m.dialog.lines, "! releasing them could not be planned: "+shown(msg.releaseErr.Error()))
	}
	return m, nil
}

// offerRelease adds the staged dialog's "also release" choice: the same
// run with the engine's plan for Release (as "when idle" is to expire),
// and the processes in other namespaces that only that choice touches.
func (d *confirmDialog) offerRelease(req Request, plan unmount.Plan) {
	n := releasable(plan.Releases)
	if n == 0 {
		return
	}
	var extra []string
	for _, a := range plan.Holders {
		if a.Namespace == "" {
			continue
		}
		what := present.HolderPlanBrief(a, "REFUSED, ")
		extra = append(extra, fmt.Sprintf("   pid %d %s in %s: %s", a.Holder.PID, safe(a.Holder.Comm), safe(a.Namespace), shown(what)))
	}
	if len(extra) > 0 {
		d.lines = append(d.lines, "(a) also revokes these processes in other namespaces:")
		d.lines = append(d.lines, extra...)
	}
	req.Release, plan.Release = true, true
	d.choices = append(d.choices, choice{label: fmt.Sprintf("Also release %d", n), hotkey: "a",
		act: &action{kind: actRun, req: req, plan: plan}})
}

// unmountDialog asks before an unmount, saying what it will do.
func (m *Model) unmountDialog(req Request, plan unmount.Plan) *confirmDialog {
	mp := mountName(req.Target)
	d := &confirmDialog{styles: m.styles, keys: m.keys,
		title: strings.ToUpper(modeName(req)[:1]) + modeName(req)[1:] + " of " + mp + "?",
		lines: planLines(req, plan, 6)}
	d.choices = []choice{{label: "No"}}
	switch req.Mode {
	case unmount.ModeExpire:
		idle := req
		idle.WhenIdle = true
		d.title = "Expire " + mp + "?"
		d.choices = append(d.choices,
			choice{label: "Expire now", hotkey: "y", act: &action{kind: actRun, req: req, plan: plan}},
			choice{label: "When idle", hotkey: "w", act: &action{kind: actRun, req: idle, plan: plan}})
	case unmount.ModeStaged:
		sig := req
		sig.Policy = unmount.PolicySignal
		label := "Yes, revoke"
		if req.Policy == unmount.PolicySignal {
			label = "Yes, signal"
		}
		d.choices = append(d.choices,
			choice{label: label, hotkey: "y", act: &action{kind: actRun, req: req, plan: plan}})
		if req.Policy != unmount.PolicySignal {
			p := plan
			p.Policy = unmount.PolicySignal
			d.choices = append(d.choices, choice{label: "Signal instead", hotkey: "s", act: &action{kind: actRun, req: sig, plan: p}})
		}
	default:
		d.choices = append(d.choices, choice{label: "Yes", hotkey: "y", act: &action{kind: actRun, req: req, plan: plan}})
	}
	return d
}

// askRelease acts on the holders pane's row under the cursor: a loop
// device, a swap file or a copy in another mount namespace is looked up in
// the engine's plan for the mount (in a command), and comes back as a
// dialog or as the engine's reason for refusing it; any other kernel
// holder shows its advice. From the tree, R moves to the first such row.
func (m Model) askRelease() (tea.Model, tea.Cmd) {
	mt, ok := m.selectedMount()
	switch {
	case !ok:
		m.setError(errors.New("no mount selected"))
		return m, nil
	case m.progress.active:
		m.setError(fmt.Errorf("a %s of %s is still running: x cancels it", modeName(m.progress.req), mountName(m.progress.req.Target)))
		return m, nil
	case m.releasing != "":
		m.setError(fmt.Errorf("still releasing: %s", m.releasing))
		return m, nil
	case m.progress.visible():
		m.status = "R acts on the holders pane: esc closes this one first"
		return m, nil
	}
	if m.focus != focusLower {
		if !m.holders.toReleasable() {
			m.status = "nothing to release on " + mountName(*mt) + ": no loop device, swap file or copy in another namespace holds it"
			if n := len(m.snap.Descendants(mt.ID)); n > 0 {
				// Submounts are kernel holders too, with no row of their
				// own: the tree shows them.
				m.status += "; its " + plural(n, "submount goes", "submounts go") + " first with F, l or f"
			}
			return m, nil
		}
		m.setFocus(focusLower)
		if row, ok := m.holders.current(); ok && row.releasable() {
			m.status = "pick a loop device, swap file or copy, then R releases it"
			return m, nil
		}
		// Only kernel holders mounttop has no action for: say what would
		// release the first.
	}
	row, ok := m.holders.current()
	switch {
	case !ok:
		return m, nil
	case row.releasable():
		req := Request{Snapshot: m.snap, Target: *mt, Mode: unmount.ModeStaged, Policy: unmount.PolicyClose, Interval: m.opts.Interval}
		m.status = "asking the engine how to release it…"
		return m, releasePlanCmd(m.opts.Unmounter, req, row)
	case row.kernel != nil && row.kernel.Action != "":
		m.status = "mounttop cannot release " + safe(row.kernel.Kind) + " " + safe(row.kernel.Name) + " itself; to do it: " + safe(row.kernel.Action)
	case row.kernel != nil:
		m.status = "mounttop cannot release " + safe(row.kernel.Kind) + " " + safe(row.kernel.Name)
	case row.kind == rowHolder || row.kind == rowUse:
		m.status = "R releases loop devices, swap files and copies; F revokes processes"
	default:
		m.status = "R releases the loop device, swap file or copy under the cursor; this line is none"
	}
	return m, nil
}

// onReleasePlan opens the release dialog for the row, or says why not.
func (m Model) onReleasePlan(msg releasePlanMsg) (tea.Model, tea.Cmd) {
	if m.dialog != nil {
		return m, nil // another question came first; R again asks anew
	}
	if msg.err != nil {
		m.setError(fmt.Errorf("asking how to release it from %s: %w", mountName(msg.req.Target), msg.err))
		if errors.Is(msg.err, unmount.ErrRefused) {
			// The engine lists releases in the plan of a staged unmount
			// of the mount, and it will not plan that one (the root, say).
			m.errHint = "the engine will not plan an unmount of " + mountName(msg.req.Target) + ", so it offers no release there"
			if k := msg.row.kernel; k != nil && k.Action != "" {
				m.errHint += "; by hand: " + safe(k.Action)
			}
		}
		return m, nil
	}
	r, ok := matchRelease(msg.plan.Releases, msg.row)
	if !ok {
		m.status = "the engine offers no release for this any more (gone since the scan?); r refreshes"
		return m, nil
	}
	what := releaseWhat(r, msg.req.Snapshot)
	if r.HostRefused() {
		// The host's mount namespace: a question of its own, whose yes
		// is not the usual y, so a reflex does not change what the whole
		// machine sees.
		r = r.ConfirmHost()
		m.status = ""
		m.dialog = &confirmDialog{styles: m.styles, keys: m.keys,
			title: "Release in the HOST's mount namespace?", explicit: true,
			lines: append(releaseLines(r, msg.req.Snapshot),
				fmt.Sprintf("mnt:[%d] is the host's mount namespace (pid 1's): unmounting there changes what the whole machine sees.", r.Namespace)),
			choices: []choice{{label: "No"}, {label: "Yes, in the host's namespace", hotkey: "H",
				act: &action{kind: actRelease, req: msg.req, release: r, what: what}}}}
		return m, nil
	}
	if r.Refused != "" {
		m.status = "cannot " + what + ": " + shown(r.Refused)
		return m, nil
	}
	m.status = ""
	m.dialog = &confirmDialog{styles: m.styles, keys: m.keys,
		title: releaseTitle(r, msg.req.Snapshot), lines: releaseLines(r, msg.req.Snapshot),
		choices: []choice{{label: "No"}, {label: "Yes, release", hotkey: "y",
			act: &action{kind: actRelease, req: msg.req, release: r, what: what}}}}
	return m, nil
}

// onReleaseDone shows a release's outcome and rescans to show its effect.
func (m Model) onReleaseDone(msg releaseDoneMsg) (tea.Model, tea.Cmd) {
	m.releasing = ""
	if msg.err != nil {
		m.err = fmt.Errorf("%s: %w", msg.what, msg.err)
		m.errHint = releaseHint(msg.err, msg.rel, m.snap)
		m.status = ""
	} else {
		m.status = "released: " + msg.what
	}
	return m.startScan()
}

// quitDialog asks before quitting while an unmount runs.
func (m *Model) quitDialog() *confirmDialog {
	p := &m.progress
	lines := []string{
		"A " + modeName(p.req) + " of " + mountName(p.req.Target) + " is running (stage " + p.stage.String() + ").",
		"Quitting cancels it and waits for it to stop:",
	}
	if p.revoking {
		lines = append(lines, "revoke has started, so holders already revoked stay revoked.")
	} else {
		lines = append(lines, "revoke has not started: the fence is rolled back, no process is touched.")
	}
	return &confirmDialog{styles: m.styles, keys: m.keys, title: "Quit while an unmount runs?", lines: lines,
		choices: []choice{{label: "No"}, {label: "Yes, cancel and quit", hotkey: "y", act: &action{kind: actQuit}}}}
}

// do carries out a confirmed action.
func (m Model) do(a action) (tea.Model, tea.Cmd) {
	switch a.kind {
	case actQuit:
		return m.quit("quitting")
	case actRelease:
		if m.progress.active {
			m.setError(fmt.Errorf("a %s of %s is still running: x cancels it", modeName(m.progress.req), mountName(m.progress.req.Target)))
			return m, nil
		}
		m.releasing = a.what
		m.status = "releasing: " + a.what + "…"
		return m, releaseCmd(m.opts.Unmounter, a.release, a.what)
	case actRollbackFence:
		m.status = a.what + "…"
		return m, rollbackFenceCmd(m.opts.Leftovers, a.leftover)
	case actRun:
		m.runs++
		run := m.runs
		ctx, cancel := context.WithCancel(context.Background())
		m.progress.start(run, a.req, a.plan, nil, cancel, m.now)
		m.setFocus(focusLower)
		m.status = modeName(a.req) + " of " + mountName(a.req.Target) + " started"
		return m, startRunCmd(ctx, m.opts.Unmounter, a.req, a.plan, run)
	}
	return m, nil
}

// quit ends the program, first cancelling a running unmount and waiting
// (up to QuitGrace) for the engine to wind down, so that a fence is
// rolled back rather than abandoned.
func (m Model) quit(why string) (tea.Model, tea.Cmd) {
	if !m.progress.active {
		return m, tea.Quit
	}
	m.progress.stop(m.now)
	m.quitting = true
	m.status = why + ": cancelling the " + modeName(m.progress.req) + " and waiting for it to stop…"
	return m, m.quitTimeoutCmd()
}

func (m Model) onRunEvent(msg runEventMsg) (tea.Model, tea.Cmd) {
	if msg.run != m.progress.run {
		return m, nil
	}
	req := m.progress.req
	if !msg.closed {
		ev := msg.ev
		if req.Mode == unmount.ModeExpire && ev.Stage == unmount.StageDone && ev.Result != nil && ev.Result.Gone {
			at := ev.At
			if at.IsZero() {
				at = m.now
			}
			m.expiry.expired[req.Target.ID] = at
		}
		if ev.Stage == unmount.StageDone {
			m.status = modeName(req) + " of " + mountName(req.Target) + ": "
			switch r := ev.Result; {
			case r != nil && r.Gone:
				m.status += "gone"
			case r != nil && r.Marked:
				m.status += "marked for expiry"
			default:
				m.status += "not unmounted"
			}
			if ev.Result != nil && ev.Result.Summary != "" {
				m.status += " (" + shown(ev.Result.Summary) + ")"
			}
			if ev.Err != nil && !errors.Is(ev.Err, unmount.ErrCancelled) {
				m.setError(fmt.Errorf("%s of %s: %w", modeName(req), mountName(req.Target), ev.Err))
			}
		}
	}
	var cmd tea.Cmd
	m.progress, cmd = m.progress.Update(msg)
	if msg.closed {
		if m.quitting {
			return m, tea.Quit
		}
		m2, scan := m.startScan() // show the outcome in the tree now
		m2.showSelected()
		return m2, scan
	}
	m.showSelected()
	if msg.ev.Stage == unmount.StageExpire && m.snap != nil {
		if r := m.marks(); r != nil {
			cmd = tea.Batch(cmd, marksCmd(r, mountIDs(m.snap)))
		}
	}
	return m, cmd
}

// View draws the whole screen: title, tree, lower pane, status.
func (m Model) View() string {
	if m.width < 20 || m.height < 8 {
		return "mounttop: the terminal is too small (" + fmt.Sprint(m.width, "x", m.height) + ")"
	}
	body := m.height - 1 - m.laidOut
	var parts []string
	parts = append(parts, m.titleLine())
	switch {
	case m.showHelp:
		parts = append(parts, helpView(m.styles, m.keys, m.width, body))
	case m.dialog != nil:
		parts = append(parts, cropLines(m.dialog.place(m.width, body), body))
	default:
		parts = append(parts, m.paneTitle("Mounts", m.treeTitleExtra(), m.focus == focusTree), m.tree.View())
		if m.progress.visible() {
			parts = append(parts, m.paneTitle(m.progress.title(), "", m.focus == focusLower), m.progress.View())
		} else {
			parts = append(parts, m.paneTitle(m.holders.title(), "", m.focus == focusLower), m.holders.View())
		}
	}
	parts = append(parts, m.statusLines())
	return strings.Join(parts, "\n")
}

func (m Model) treeTitleExtra() string {
	if f := m.tree.filterLine(); f != "" {
		return f
	}
	return ""
}

// titleLine is the top line: counts, and where help is.
func (m Model) titleLine() string {
	left := "mounttop"
	if m.snap != nil {
		busy, holders := 0, map[int]bool{}
		for id, hs := range m.snap.Holders {
			if len(hs) > 0 {
				if _, ok := m.snap.Mount(id); ok {
					busy++
				}
			}
			for _, h := range hs {
				holders[h.PID] = true
			}
		}
		left += fmt.Sprintf(" · %s · %d busy · %s", plural(len(m.snap.Mounts), "mount", "mounts"), busy,
			plural(len(holders), "holder", "holders"))
		if !m.snap.UniqueIDs {
			left += " · no unique mount IDs (kernel < 6.8)"
		}
	}
	right := "? help"
	gap := m.width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		left = clip(left, m.width-lipgloss.Width(right)-1)
		gap = m.width - lipgloss.Width(left) - lipgloss.Width(right)
	}
	if gap < 1 {
		return m.styles.Title.Render(clip(left, m.width))
	}
	return m.styles.Title.Render(left) + strings.Repeat(" ", gap) + m.styles.Dim.Render(right)
}

// paneTitle is a pane's title line; the focused pane's starts with ▶.
func (m Model) paneTitle(title, extra string, focused bool) string {
	mark, st := "  ", m.styles.PaneTitle
	if focused {
		mark, st = "▶ ", m.styles.PaneTitleOn
	}
	s := mark + title
	if extra != "" {
		s += "  " + extra
	}
	s += " "
	if w := lipgloss.Width(s); w < m.width {
		s += strings.Repeat("─", m.width-w)
	}
	return st.Render(clip(s, m.width))
}

// statusTexts are the status bar's message (the last action, or the
// error) and its second part (the error's hint, or the key reminder).
func (m Model) statusTexts() (msg, hint string) {
	switch {
	case m.err != nil:
		msg, hint = "Error: "+shown(m.err.Error()), m.errHint
	case m.quitting:
		msg = m.status
	default:
		msg = m.status
	}
	if hint == "" {
		var hs []string
		switch {
		case m.progress.active:
			hs = append(hs, "x cancel the run")
		case m.progress.visible():
			hs = append(hs, "esc close")
		case m.focus == focusLower && m.dialog == nil:
			if r, ok := m.holders.current(); ok && r.releasable() {
				hs = append(hs, m.keys.Release.Help().Key+" release")
			}
		}
		system := false
		if mt, ok := m.selectedMount(); ok && !m.progress.visible() && unmount.SystemMount(mt) != "" {
			system = true
			hs = append(hs, "a system mount: no unmount here")
		}
		for _, s := range m.keys.shortHelp() {
			if system && s.unmounts {
				continue
			}
			hs = append(hs, s.b.Help().Key+" "+s.word)
		}
		hint = strings.Join(hs, " ")
	}
	return msg, hint
}

// statusHeight is how many lines the status bar needs: the message and
// an error's hint may wrap to two lines each; the last line has the key
// reminder (cut to fit) or, after an error, only the age of the data.
func (m Model) statusHeight() int {
	msg, hint := m.statusTexts()
	n := len(wrapLines(msg, m.width, 2)) + 1 + len(m.bannerLines())
	if m.err != nil {
		n += len(wrapLines(hint, m.width, 2))
	}
	return n
}

// statusLines are the bottom lines.
func (m Model) statusLines() string {
	msg, hint := m.statusTexts()
	var out []string
	for _, l := range m.bannerLines() {
		out = append(out, m.styles.Warning.Render(l))
	}
	st := m.styles.Status
	if m.err != nil {
		st = m.styles.StatusError
	}
	for _, l := range wrapLines(msg, m.width, 2) {
		out = append(out, st.Render(l))
	}
	if m.err != nil {
		for _, l := range wrapLines(hint, m.width, 2) {
			out = append(out, m.styles.Warning.Render(l))
		}
	}
	// The last line ends with the age of the data: after the key
	// reminder, or alone after an error's hint.
	dataAge := m.dataAge()
	keys := ""
	if m.err == nil {
		keys = hint
	}
	room := m.width - lipgloss.Width(dataAge) - 1
	if room < 0 {
		room, dataAge = m.width, ""
	}
	out = append(out, m.styles.Dim.Render(fit(clip(keys, room), room))+" "+m.styles.Title.Render(dataAge))
	return strings.Join(out, "\n")
}

// dataAge says how old the data on screen is, and whether a scan is
// taking long.
func (m Model) dataAge() string {
	switch {
	case m.quitting:
		return "waiting for the run to stop"
	case m.scanning && m.snap != nil && m.now.Sub(m.scanStarted) >= time.Second:
		return "scanning " + age(m.now.Sub(m.scanStarted)) + "… data " + age(m.now.Sub(m.snap.Taken)) + " old"
	case m.snap != nil:
		return "data " + age(m.now.Sub(m.snap.Taken)) + " old"
	}
	return "scanning…"
}

// withSize keeps a fresh pane at the old one's size and focus.
func (p progressPane) withSize(old progressPane) progressPane {
	p.width, p.height, p.focused = old.width, old.height, old.focused
	return p
}

// attach gives the pane its run's channel once the engine has started.
func (p *progressPane) attach(ch <-chan unmount.Event) tea.Cmd {
	p.ch = ch
	return waitForEvent(ch, p.run)
}
