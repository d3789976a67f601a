package unmount

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"mounttop/inspect"
)

// TestJournalGroupCommit: with the lines between the plan line and the
// result line fdatasynced in the background (Journal.syncLoop), every line
// is still in the file, once, in the order recorded, and the result line
// is on disk when Record returns (the journal is read before Close).
func TestJournalGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "journal.jsonl")
	j, err := OpenJournal(path, testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	const n = 500
	p := &Plan{Target: inspect.Mount{Mountpoint: "/mnt/t"}, Mode: ModeStaged, Policy: PolicyClose}
	if err := j.Record(p, Event{Stage: StagePlan}); err != nil {
		t.Fatal(err)
	}
	for pid := 1; pid <= n; pid++ {
		if err := j.Record(p, Event{Stage: StageRevoke, PID: pid}); err != nil {
			t.Fatalf("line %d: %v", pid, err)
		}
	}
	if err := j.Record(p, Event{Stage: StageDone, Result: &Result{Gone: true}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []string
	next := 1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Stage string `json:"stage"`
			PID   int    `json:"pid"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		stages = append(stages, line.Stage)
		if line.Stage == "revoke" {
			if line.PID != next {
				t.Fatalf("revoke line of pid %d, want %d", line.PID, next)
			}
			next++
		}
	}
	if len(stages) != n+2 || stages[0] != "plan" || stages[n+1] != "done" || next != n+1 {
		t.Fatalf("%d lines (first %q, last %q), %d revoke lines; want plan, %d revoke lines, done", len(stages), stages[0], stages[len(stages)-1], next-1, n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.unsynced != 0 {
		t.Errorf("%d lines left unsynced after Close", j.unsynced)
	}
}
