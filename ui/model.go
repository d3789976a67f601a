// Package ui is mounttop's interactive view, a bubbletea program: the mount
// tree, who holds the selected mount and how, and the unmount actions with
// a live progress pane.
//
// The view is made of components on one contract (component.go): the
// tree, the holders pane, the progress pane, the confirm dialog, the help
// screen and the status bar. The root Model routes every message (window
// size, then an open dialog, then the help screen and the filter prompt,
// then global keys, then the focused pane; data messages go to the pane
// that owns them whatever has focus) and owns no pane's internals. Update
// never touches /proc or makes a syscall: scans, plans and unmount runs
// happen in tea.Cmds and come back as messages.
package ui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	// retry interval (default 2s). The refresh slows down to fifteen times a
	// scan's duration when scans are costly (scanLoop).
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
	help          helpScreen
	bar           statusBar
	focus         focus

	snap    *inspect.Snapshot
	scan    scanLoop
	started bool // StartPath has been looked for
	expiry  *expiryMarks
	runs    int
	now     time.Time

	// detail are the mounts snap has in full detail (paths, modes, ranges,
	// locks); nil: every mount. The others have their holders' counts.
	detail map[inspect.MountID]bool
	// focusGen numbers the pauses armed when the selection moves to a
	// mount without detail; focusAsked is the mount of the newest (0 when
	// the selection has its detail), so a pause is armed once per move.
	focusGen   int
	focusAsked inspect.MountID
	// countLine is the title's counts of snap, made once per scan: View
	// runs after every message, and at 2,000 processes the count walks
	// thousands of holders.
	countLine string

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
	m.tree = newTreePane(m.styles, m.keys, m.expiry)
	m.holders = newHoldersPane(m.styles, m.keys)
	m.progress = newProgressPane(m.styles, m.keys)
	m.help = newHelpScreen(m.styles, m.keys)
	m.bar = newStatusBar(m.styles, m.keys)
	m.now = opts.Now()
	m.bar.setStatus(opts.Notice)
	m.scan = newScanLoop(opts.Interval, opts.ScanTimeout, m.now)
	m.syncBar()
	m.layout()
	return m
}

// SignalMsg turns a signal the program received (SIGTERM, SIGHUP, SIGINT)
// into a message: the view cancels a running unmount, waits for it to stop
// (up to QuitGrace) and quits.
func SignalMsg(s os.Signal) tea.Msg { return signalMsg{sig: s} }

// Init starts the first scan and the clock.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.scan.firstCmd(m.opts.Scanner, m.marks()), m.clockCmd())
}

// startScan begins a scan of a new generation, abandoning any scan still
// running (its result will be stale). It reads the selected mount and a
// run's target in full detail, the others' holders as counts.
func (m Model) startScan() (Model, tea.Cmd) {
	return m, m.scan.start(m.opts.Now(), m.opts.Scanner, m.marks(), m.focusIDs())
}

// focusIDs are the mounts a scan reads in full detail: the selection, and
// the target of the run or preview the progress pane shows.
func (m Model) focusIDs() []inspect.MountID {
	var ids []inspect.MountID
	if sel := m.tree.Selected(); sel != 0 {
		ids = append(ids, sel)
	}
	if t := m.progress.targetID(); m.progress.visible() && t != 0 && t != m.tree.Selected() {
		ids = append(ids, t)
	}
	return ids
}

// detailed reports whether the snapshot has mount id's holders in full
// detail (true, too, for a mount it does not have: nothing to read).
func (m Model) detailed(id inspect.MountID) bool {
	if m.detail == nil || m.detail[id] || m.snap == nil {
		return true
	}
	_, ok := m.snap.Mount(id)
	return !ok
}

// focusDelay is the pause between the selection moving to a mount whose
// detail the snapshot lacks and the scan that reads it: holding a key
// down moves past many mounts, and only the one the cursor stops on is
// read.
const focusDelay = 150 * time.Millisecond

// wantDetail arms the pause when the selection has moved to a mount the
// snapshot has counts of only; the scan starts when it ends (focusDueMsg),
// if the selection is still there. It never blocks: the scan runs in a
// tea.Cmd, and a newer move or refresh makes its result stale.
func (m Model) wantDetail(cmd tea.Cmd) (Model, tea.Cmd) {
	sel := m.tree.Selected()
	if m.detailed(sel) {
		m.focusAsked = 0
		return m, cmd
	}
	if sel == m.focusAsked {
		return m, cmd
	}
	m.focusGen++
	m.focusAsked = sel
	gen := m.focusGen
	return m, tea.Batch(cmd, m.after(focusDelay, func(time.Time) tea.Msg { return focusDueMsg{gen: gen, id: sel} }))
}

// onFocusDue starts the scan that reads the selected mount in full
// detail, unless the selection moved on, has its detail by now, or a
// scan reading it is under way.
func (m Model) onFocusDue(msg focusDueMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.focusGen || m.tree.Selected() != msg.id || m.detailed(msg.id) || m.scan.reading(msg.id) {
		return m, nil
	}
	return m.startScan()
}

// marks is the Unmounter as an ExpiryReader, if it is one.
func (m Model) marks() ExpiryReader {
	r, _ := m.opts.Unmounter.(ExpiryReader)
	return r
}

// Update routes one message; see the package comment for the order.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	nm, cmd := m.update(msg)
	next, cmd := nm.(Model).wantDetail(cmd)
	next.syncBar()
	if next.bar.Height() != next.laidOut {
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
	case tea.KeyMsg:
		return m.onKey(msg)
	}
	return m.onData(msg)
}

// onData takes the messages commands send back: each goes to the part of
// the view that owns it, whatever has focus.
func (m Model) onData(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case clockMsg:
		m.now = m.opts.Now()
		m.progress.setNow(m.now)
		return m, m.clockCmd()
	case scanDoneMsg:
		return m.onScan(msg)
	case focusDueMsg:
		return m.onFocusDue(msg)
	case tickMsg:
		if !m.scan.due(msg) {
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
		return m.onLeftovers(msg), nil
	case leftoverDoneMsg:
		return m.onLeftoverDone(msg)
	case runStartedMsg, runEventMsg:
		return m.onRun(msg)
	case marksMsg:
		return m.onMarks(msg), nil
	case signalMsg:
		return m.quit(fmt.Sprintf("got %v", msg.sig))
	case quitTimeoutMsg:
		return m.onQuitTimeout()
	}
	return m, nil
}

// layout hands each pane its share of the screen: one title line, the
// tree and the lower pane (holders or progress) each with a title line,
// and the status lines.
func (m *Model) layout() {
	m.bar.SetSize(m.width, 0)
	m.laidOut = m.bar.Height()
	body := max(m.height-1-m.laidOut, 4)
	treeH := body / 2
	lower := body - treeH
	m.tree.SetSize(m.width, treeH-1)
	m.holders.SetSize(m.width, lower-1)
	m.progress.SetSize(m.width, lower-1)
	m.help.SetSize(m.width, body)
	if m.dialog != nil {
		m.dialog.SetSize(m.width, body)
	}
	m.setFocus(m.focus)
}

func (m *Model) setFocus(f focus) {
	m.focus = f
	m.tree.setFocused(f == focusTree)
	m.holders.setFocused(f == focusLower && !m.progress.visible())
	m.progress.setFocused(f == focusLower && m.progress.visible())
}

// openDialog shows d, which takes every key until it is answered.
func (m *Model) openDialog(d *confirmDialog) {
	m.dialog = d
	m.layout()
}

func (m Model) onScan(msg scanDoneMsg) (tea.Model, tea.Cmd) {
	if !m.scan.done(msg) {
		return m, nil // stale: a refresh replaced this scan
	}
	m.now = m.opts.Now()
	next := m.tickCmd()
	if msg.err == nil && msg.snap == nil {
		msg.err = errors.New(present.ScannerNoSnap)
	}
	if msg.err != nil {
		m.setError(fmt.Errorf("scanning: %w", msg.err))
		return m, next
	}
	// The old snapshot goes with the last reference to it: the tree and
	// the holders pane take the new one below.
	m.snap, m.detail = msg.snap, msg.focus
	m.countLine = m.counts()
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
	if gone != "" && !(m.progress.visible() && m.progress.targetID() == goneID) {
		m.bar.setStatus(present.MountGone(gone))
	}
	m.showSelected()
	if m.opts.Leftovers != nil {
		next = tea.Batch(next, leftoversCmd(m.opts.Leftovers, msg.snap, m.scan.gen))
	}
	return m, next
}

// onMarks takes a fresh read of the engine's expiry marks.
func (m Model) onMarks(msg marksMsg) Model {
	if msg.marks != nil {
		m.expiry.book = msg.marks
		m.showSelected()
	}
	return m
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
		m.setError(present.NoMountAt(path))
		return
	}
	if mt.Mountpoint != p {
		m.bar.setStatus(present.LiesOn(path, mt.Mountpoint))
	}
}

// showSelected points the holders pane at the tree's selection.
func (m *Model) showSelected() {
	sel := m.tree.Selected()
	m.holders.show(m.snap, sel, m.expiry.of(sel), m.detailed(sel))
	m.progress.setMark(m.expiry.of(m.progress.targetID()))
}

// selectedMount is the mount under the tree's cursor.
func (m *Model) selectedMount() (*inspect.Mount, bool) {
	if m.snap == nil || m.tree.Selected() == 0 {
		return nil, false
	}
	return m.snap.Mount(m.tree.Selected())
}

// setError shows err until the next key, with a hint chosen by errors.Is
// (EBUSY: who holds it; EPERM: needs root).
func (m *Model) setError(err error) {
	var holders []inspect.Holder
	if m.snap != nil {
		holders = m.snap.HoldersOf(m.tree.Selected())
	}
	m.bar.setError(err, present.HintFor(err, holders, m.keys.texts()))
}

// stillRunning is the error of an action refused while a run goes.
func (m *Model) stillRunning() error {
	return present.StillRunning(m.progress.runName(), m.keys.name(m.keys.Cancel))
}

// View draws the whole screen: title, tree, lower pane, status.
func (m Model) View() string {
	if m.width < 20 || m.height < 8 {
		return present.TooSmall(m.width, m.height)
	}
	parts := []string{m.titleLine()}
	switch {
	case m.help.open:
		parts = append(parts, m.help.View())
	case m.dialog != nil:
		parts = append(parts, m.dialog.View())
	default:
		parts = append(parts, m.paneTitle("Mounts", m.tree.filterLine(), m.focus == focusTree), m.tree.View())
		if m.progress.visible() {
			parts = append(parts, m.paneTitle(m.progress.title(), "", m.focus == focusLower), m.progress.View())
		} else {
			parts = append(parts, m.paneTitle(m.holders.title(), "", m.focus == focusLower), m.holders.View())
		}
	}
	parts = append(parts, m.bar.View())
	return strings.Join(parts, "\n")
}

// titleLine is the top line: counts, and where help is.
func (m Model) titleLine() string {
	left := "mounttop"
	if m.snap != nil {
		left += m.countLine
	}
	right := m.keys.Help.Help().Key + " " + m.keys.Help.Help().Desc
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

// counts is the title's " · 7 mounts · 3 busy · 4 holders".
func (m Model) counts() string {
	busy, holders := 0, map[int]bool{}
	for id, hs := range m.snap.Holders {
		if _, ok := m.snap.Mount(id); ok && len(hs) > 0 {
			busy++
		}
		for _, h := range hs {
			holders[h.PID] = true
		}
	}
	return present.Counts(len(m.snap.Mounts), busy, len(holders), m.snap.UniqueIDs)
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
