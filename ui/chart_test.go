package ui

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mounttop/unmount"
)

func TestSparkline(t *testing.T) {
	for _, c := range []struct {
		vals  []int
		plain bool
		want  string
	}{
		{[]int{8, 4, 2, 1, 0}, false, "█▅▃▂▁"},
		{[]int{8, 4, 2, 1, 0}, true, "#-.._"},
		{[]int{1000, 999, 1}, false, "██▂"},
		{[]int{0, 0}, true, "__"},
		{nil, false, ""},
	} {
		if got := sparkline(c.vals, c.plain); got != c.want {
			t.Errorf("sparkline(%v, plain %v) = %q, want %q", c.vals, c.plain, got, c.want)
		}
	}
}

func TestBar(t *testing.T) {
	for _, c := range []struct {
		n, most, width int
		plain          bool
		want           string
	}{
		{4, 4, 4, false, "████"},
		{2, 4, 4, false, "██  "},
		{1, 3, 4, false, "█▍  "},
		{1, 1000, 4, false, "▏   "},
		{0, 4, 4, false, "    "},
		{4, 4, 4, true, "####"},
		{1, 3, 4, true, "##  "},
		{1, 1000, 4, true, "#   "},
		{0, 0, 4, true, "    "},
	} {
		if got := bar(c.n, c.most, c.width, c.plain); got != c.want {
			t.Errorf("bar(%d, %d, %d, plain %v) = %q, want %q", c.n, c.most, c.width, c.plain, got, c.want)
		}
	}
}

// TestDrainSparkline: the progress pane draws the holders left per drain
// round (from the count the revoke started from), with the revoked and
// refused counts, while the run goes and after it ended; ASCII here, as
// under NO_COLOR.
func TestDrainSparkline(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	step := make(chan struct{})
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		hs := []unmount.HolderState{{PID: 1, Comm: "a", State: "pending"}, {PID: 2, Comm: "b", State: "pending"}, {PID: 3, Comm: "c", State: "pending"}}
		send(ch, 0, unmount.Event{Stage: unmount.StagePlan, Holders: hs})
		send(ch, 1, unmount.Event{Stage: unmount.StageFence, Note: unmount.Fenced{Target: "/mnt/projects", RealPath: "/run/mounttop-fence-1/mnt"}})
		hs = append([]unmount.HolderState(nil), hs...)
		hs[0].State = "revoked"
		send(ch, 2, unmount.Event{Stage: unmount.StageRevoke, PID: 1, Note: unmount.HolderRevoked{Who: unmount.Who{PID: 1, Comm: "a"}, Did: &unmount.Revoked{Closed: []int{3}}}, Holders: hs})
		send(ch, 3, unmount.Event{Stage: unmount.StageDrain, Remaining: 2, Note: unmount.DrainLeft{Left: []unmount.LeftHolder{leftHolder(2, "b"), leftHolder(3, "c")}}})
		hs = append([]unmount.HolderState(nil), hs...)
		hs[1].State = "revoked"
		send(ch, 4, unmount.Event{Stage: unmount.StageDrain, PID: 2, Note: unmount.HolderRevoked{Who: unmount.Who{PID: 2, Comm: "b"}, Did: &unmount.Revoked{Closed: []int{4}}}, Holders: hs})
		send(ch, 4, unmount.Event{Stage: unmount.StageDrain, Remaining: 1, Note: unmount.DrainLeft{Left: []unmount.LeftHolder{leftHolder(3, "c")}}})
		<-step
		hs = append([]unmount.HolderState(nil), hs...)
		hs[2].State = "refused"
		send(ch, 5, unmount.Event{Stage: unmount.StageDrain, Note: unmount.NothingHolds{}, Holders: hs})
		send(ch, 6, unmount.Event{Stage: unmount.StageDone, Result: &unmount.Result{Gone: true, Summary: "gone"}})
	}
	d.key("F")
	d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	d.until("the second drain round", func(m Model) bool { return m.progress.remaining == 1 })
	d.mustSee("remaining: 1 holder · drain #=- 3→1 · revoked 2 · refused 0")
	close(step)
	d.until("the end of the run", func(m Model) bool { return !m.progress.active })
	d.mustSee("drain #=-_ 3→0 · revoked 2 · refused 1")
}

// roundPID is the pid of the one holder left in drain round n of
// TestProgressLogScrolls, so that each round's log line differs;
// roundText is how that line names it.
func roundPID(n int) int { return 4200 + n }

func roundText(n int) string { return fmt.Sprintf("pid %d (reader)", roundPID(n)) }

// TestProgressLogScrolls: the progress pane's log follows its end; up
// scrolls back (and stays there while events arrive), G goes back to the
// end and follows again.
func TestProgressLogScrolls(t *testing.T) {
	d := newDriver(t, Options{StartPath: "/mnt/projects"})
	d.started()
	step := make(chan int)
	d.um.play = func(ctx context.Context, plan unmount.Plan, ch chan<- unmount.Event) {
		for n := range step {
			send(ch, n, unmount.Event{Stage: unmount.StageDrain, Remaining: 1, Note: unmount.DrainLeft{Left: []unmount.LeftHolder{leftHolder(roundPID(n), "reader")}}})
		}
		<-ctx.Done()
	}
	d.key("F")
	d.until("the staged dialog", func(m Model) bool { return m.dialog != nil })
	d.key("y")
	for n := 1; n <= 30; n++ {
		step <- n
		d.until("the round", func(m Model) bool { return strings.Contains(d.screen(), roundText(n)) })
	}
	d.mustNotSee(roundText(1))
	d.key("tab") // the progress pane has focus already; tab goes to the tree
	d.key("tab")
	for i := 0; i < 40; i++ {
		d.key("up")
	}
	d.mustSee(roundText(1))
	step <- 31
	d.until("the event", func(m Model) bool { return len(m.progress.log) > 31 })
	d.mustSee(roundText(1))
	d.mustNotSee(roundText(31))
	d.key("G")
	d.mustSee(roundText(31))
	step <- 32
	d.until("the next round", func(m Model) bool { return strings.Contains(d.screen(), roundText(32)) })
	close(step)
	d.key("x")
	d.until("the end of the run", func(m Model) bool { return !m.progress.Active() })
}
