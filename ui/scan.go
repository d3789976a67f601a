package ui

import (
	"context"
	"strconv"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

	"mounttop/inspect"
)

// maxRefresh caps the adapted refresh interval: however slow the scan,
// the screen is never older than this (r refreshes at once).
const maxRefresh = 30 * time.Second

// refreshFactor is how many times a scan's cost the view waits before
// the next one: a scan of 0.6 s refreshes every 9 s, so the view spends
// about a sixteenth of a core on scanning while the operator only looks
// (issue 12: a full scan of 2,000 processes costs 0.5-1 s of CPU), and
// the drawing, the ticks and the terminal stay within a tenth in all. At
// 10 the scans alone took a tenth and the view 10.3% of a core (bench/
// README.md, run J). The cost is the scan's duration or the CPU time it
// used, whichever is more: a scan on two CPUs uses more CPU than wall
// time.
const refreshFactor = 15

// scanLoop is the background refresh's lifecycle: one scan at a time, each
// of a new generation; a result of an older generation is stale and
// dropped; the next tick is armed only when a result arrives, so scans
// never overlap; and the interval adapts to what the last scan cost.
// Scans run in tea.Cmds; scanLoop only keeps the bookkeeping (the root
// model owns it and never reaches inside).
type scanLoop struct {
	gen     int // generation of the newest scan asked for
	running bool
	started time.Time
	cancel  context.CancelFunc
	first   context.Context // the first scan's, made by New for Init

	timeout  time.Duration // a scan is abandoned after this long
	base     time.Duration // the configured interval (Options.Interval)
	interval time.Duration // the interval in force: base, or more after a costly scan
	took     time.Duration // the last scan's cost: its duration, or the CPU it used if more
	// focus is what the running (or last) scan reads in full detail: nil
	// for every mount (a Scanner that is not a FocusScanner).
	focus []inspect.MountID
}

// newScanLoop sets up generation 1, which Init runs (Init cannot change
// the model, so its context is made here).
func newScanLoop(base, timeout time.Duration, now time.Time) scanLoop {
	l := scanLoop{gen: 1, running: true, started: now, timeout: timeout, base: base, interval: base}
	l.first, l.cancel = context.WithTimeout(context.Background(), timeout)
	return l
}

// firstCmd runs generation 1. No mount is selected yet, so a
// FocusScanner is asked for counts only; the selection's detail follows
// at once in a focused scan (Model.wantDetail).
func (l *scanLoop) firstCmd(s Scanner, marks ExpiryReader) tea.Cmd {
	return scanCmd(l.first, s, marks, 1, nil)
}

// start begins a scan of a new generation, abandoning any scan still
// running (its result will be stale). focus are the mounts to read in
// full detail.
func (l *scanLoop) start(now time.Time, s Scanner, marks ExpiryReader, focus []inspect.MountID) tea.Cmd {
	if l.cancel != nil {
		l.cancel()
	}
	l.gen++
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	l.cancel, l.running, l.started, l.focus = cancel, true, now, focus
	return scanCmd(ctx, s, marks, l.gen, focus)
}

// reading reports whether the running scan reads mount id in full detail.
func (l *scanLoop) reading(id inspect.MountID) bool {
	if !l.running {
		return false
	}
	for _, f := range l.focus {
		if f == id {
			return true
		}
	}
	return false
}

// done takes a scan's result: false if it is stale. A fresh one ends the
// scan and sets the next interval from its cost.
func (l *scanLoop) done(msg scanDoneMsg) bool {
	if msg.gen != l.gen {
		return false
	}
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
	l.running = false
	l.took = max(msg.took, msg.cpu)
	l.interval = adaptInterval(l.base, l.took)
	return true
}

// due reports whether a tick starts a scan: it must belong to the newest
// generation (a manual refresh replaces the chain) and no scan may run.
func (l *scanLoop) due(msg tickMsg) bool { return msg.gen == l.gen && !l.running }

// adaptInterval is the refresh interval after a scan that took took:
// refreshFactor times its duration (to the tenth of a second), never
// less than base nor more than maxRefresh, so it comes back down to base
// when scans get cheap again.
func adaptInterval(base, took time.Duration) time.Duration {
	d := (refreshFactor * took).Round(100 * time.Millisecond)
	if d < base {
		return base
	}
	return min(d, max(maxRefresh, base))
}

// adapted reports whether the interval is longer than the one configured.
func (l *scanLoop) adapted() bool { return l.interval > l.base }

// note is the status bar's word on the refresh when it is slowed down:
// "refresh 9s (scan 0.6s)"; empty at the configured interval.
func (l *scanLoop) note() string {
	if !l.adapted() {
		return ""
	}
	return "refresh " + seconds(l.interval) + " (scan " + seconds(l.took) + ")"
}

// seconds is a duration in seconds with at most one decimal: "6s", "0.6s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(100*time.Millisecond).Seconds(), 'f', -1, 64) + "s"
}

// scanCmd runs one scan under ctx (cancelled by a refresh that replaces it,
// and bounded by a deadline so a hung filesystem cannot keep it forever)
// and reports it tagged with its generation, its duration and the CPU
// the process used meanwhile (getrusage(2): the scan's workers, and
// whatever else ran), with the expiry marks the engine holds for the
// mounts it found (marks may be nil). A FocusScanner reads the mounts
// focus in full detail and counts the rest; any other Scanner reads all
// in full detail (the message's focus is then nil: everything).
func scanCmd(ctx context.Context, s Scanner, marks ExpiryReader, gen int, focus []inspect.MountID) tea.Cmd {
	return func() tea.Msg {
		start, cpu0 := time.Now(), cpuTime()
		var (
			snap *inspect.Snapshot
			err  error
			msg  = scanDoneMsg{gen: gen}
		)
		if fs, ok := s.(FocusScanner); ok {
			snap, err = fs.ScanFocus(ctx, focus...)
			msg.focus = make(map[inspect.MountID]bool, len(focus))
			for _, id := range focus {
				msg.focus[id] = true
			}
		} else {
			snap, err = s.Scan(ctx)
		}
		msg.snap, msg.err, msg.took = snap, err, time.Since(start)
		if cpu0 > 0 {
			msg.cpu = cpuTime() - cpu0
		}
		if err == nil && snap != nil && marks != nil {
			msg.marks = marks.ExpiryMarks(mountIDs(snap))
		}
		return msg
	}
}

func mountIDs(s *inspect.Snapshot) []inspect.MountID {
	ids := make([]inspect.MountID, len(s.Mounts))
	for i := range s.Mounts {
		ids[i] = s.Mounts[i].ID
	}
	return ids
}

// cpuTime is the user and system CPU time this process has used so far
// (getrusage(2), RUSAGE_SELF); 0 if it cannot be read.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
