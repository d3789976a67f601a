package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"mounttop/bench/workload"
)

// viewResult is the interactive view's cost while it idles on one mount
// (issue 12 goal 4): CPU as a share of one core over the idle window,
// from the process's own utime+stime (proc(5) stat fields 14 and 15), its
// peak resident set (VmHWM), and how long key presses made while it was
// busy (scanning) took to change the screen.
type viewResult struct {
	Idle      time.Duration   `json:"idle_ns"`
	CPUShare  float64         `json:"cpu_share"` // of one core, 0.1 = 10%
	VmHWM     int64           `json:"vmhwm_kib"`
	Keys      []time.Duration `json:"key_ns"`
	KeyMedian time.Duration   `json:"key_median_ns"`
	KeyMax    time.Duration   `json:"key_max_ns"`
	Status    string          `json:"status_bar"` // the screen's last line at the end
}

// measureView runs `mounttop MOUNT` in a tmux server of our own (its own
// socket, in this namespace), lets it settle, measures idle CPU over
// idle, then presses "?" (help) and the same key again (closing it) keys
// times, each when the view is busy, timing until the screen changes
// (through a control-mode client: tmuxControl).
func measureView(ctx context.Context, o *options, w *workload.Workload) (*viewResult, error) {
	sock := fmt.Sprintf("mounttop-bench-%d", os.Getpid())
	tmux := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "tmux", append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		cmd.Dir = "/"
		return cmd.Output()
	}
	target := w.Layout.Mount(0)
	const session = "view"
	if _, err := tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", o.mounttop, "--journal", "-", target); err != nil {
		return nil, fmt.Errorf("starting the view in tmux: %w", err)
	}
	// Our own server, by its own socket: nothing else is on it.
	defer tmux("kill-server")
	out, err := tmux("display-message", "-p", "#{pane_pid}")
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return nil, fmt.Errorf("pane pid %q: %w", out, err)
	}
	// Settle: the first scan and render.
	if err := sleepCtx(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	t0, c0, err := cpuTicks(pid)
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, o.viewIdle); err != nil {
		return nil, err
	}
	t1, c1, err := cpuTicks(pid)
	if err != nil {
		return nil, err
	}
	r := &viewResult{Idle: t1.Sub(t0), CPUShare: float64(c1-c0) / 100 / t1.Sub(t0).Seconds()}
	ctl, err := attachControl(ctx, sock, session)
	if err != nil {
		return nil, err
	}
	defer ctl.close()
	capture := func() ([]string, error) {
		return ctl.run(ctx, "capture-pane -p -t "+session)
	}
	for k := 0; k < o.viewKeys; k++ {
		for _, key := range []string{"?", "?"} {
			if err := waitBusy(ctx, pid, 10*time.Second); err != nil {
				return nil, err
			}
			d, err := timeKey(ctx, ctl, session, key, capture)
			if err != nil {
				return nil, err
			}
			r.Keys = append(r.Keys, d)
			if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	if hwm, err := vmHWM(pid); err == nil {
		r.VmHWM = hwm
	}
	screen, err := capture()
	if err != nil {
		return nil, err
	}
	for i := len(screen) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(screen[i]); s != "" {
			r.Status = s
			break
		}
	}
	ks := append([]time.Duration(nil), r.Keys...)
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	if len(ks) > 0 {
		r.KeyMedian, r.KeyMax = median(ks), ks[len(ks)-1]
	}
	fmt.Printf("\nview idling on %s for %v: %.1f%% of one core, VmHWM %.1f MiB; key presses while it was busy answered in median %s, max %s (%d presses)\n",
		target, r.Idle.Round(time.Second), 100*r.CPUShare, float64(r.VmHWM)/1024, ms(r.KeyMedian), ms(r.KeyMax), len(r.Keys))
	each := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		each[i] = ms(k)
	}
	fmt.Printf("  each key, in order: %s\n", strings.Join(each, " "))
	fmt.Printf("  status bar at the end: %s\n", r.Status)
	fmt.Printf("issue 12: view <= 10%% of a core: %s; VmHWM <= 48 MiB: %s; keys within 100 ms: %s\n",
		verdict(r.CPUShare <= 0.10), verdict(r.VmHWM <= 48<<10), verdict(r.KeyMax <= 100*time.Millisecond))
	return r, nil
}

// timeKey presses key in the view and returns how long until the screen
// shows the answer (three lines or more changed): the time from sending
// the key until a capture, made after each write of the pane, first shows
// it (so a capture's round trip is counted, not left out). It waits on
// the pane's %output notifications, spending no CPU meanwhile.
func timeKey(ctx context.Context, ctl *tmuxControl, session, key string, capture func() ([]string, error)) (time.Duration, error) {
	before, err := capture()
	if err != nil {
		return 0, err
	}
	ctl.drainOutput()
	start := time.Now()
	if _, err := ctl.run(ctx, "send-keys -t "+session+" "+key); err != nil {
		return 0, err
	}
	limit := time.NewTimer(10 * time.Second)
	defer limit.Stop()
	for {
		select {
		case <-ctl.output:
			screen, err := capture()
			if err != nil {
				return 0, err
			}
			if changed(before, screen) >= 3 {
				return time.Since(start), nil
			}
		case <-limit.C:
			return 0, errors.New("the view did not answer a key press within 10s")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// changed counts the lines that differ between two screens.
func changed(a, b []string) int {
	n := 0
	for i := 0; i < max(len(a), len(b)); i++ {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			n++
		}
	}
	return n
}

// waitBusy returns once pid has used CPU in each of two consecutive 10 ms
// looks (a scan is under way), or after limit in any case: a view that
// never works between its refreshes is measured when idle.
func waitBusy(ctx context.Context, pid int, limit time.Duration) error {
	end := time.Now().Add(limit)
	_, last, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	busy := 0
	for time.Now().Before(end) {
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
		_, c, err := cpuTicks(pid)
		if err != nil {
			return err
		}
		if c > last {
			busy++
		} else {
			busy = 0
		}
		last = c
		if busy >= 2 {
			return nil
		}
	}
	return nil
}

// cpuTicks reads utime+stime (clock ticks, proc(5) stat fields 14, 15).
func cpuTicks(pid int) (time.Time, uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	now := time.Now()
	if err != nil {
		return now, 0, fmt.Errorf("the view (pid %d) is gone: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return now, 0, errors.New("short stat")
	}
	u, _ := strconv.ParseUint(f[14-3], 10, 64)
	s, _ := strconv.ParseUint(f[15-3], 10, 64)
	return now, u + s, nil
}

// vmHWM reads the peak resident set, in KiB (proc(5) status).
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
