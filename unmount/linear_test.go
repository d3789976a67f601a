package unmount_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// TestEventsGrowLinearly (issue 12, point 5): a staged close of 1,000
// holders. The events carry only the holders whose state changed (the plan
// event and the result carry the full picture), so the `umount --json`
// output and the journal of the run, both rendered by present.EventJSON,
// stay under 1 MB; with the full picture on every event they were about
// 100 MB. Applying each event's changes to the plan event's picture gives
// the result's.
func TestEventsGrowLinearly(t *testing.T) {
	const n = 1000
	sys, id := unmount.HeldMount(n)
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := unmount.OpenJournal(jpath, present.EventJSON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	u := unmount.New(sys, unmount.WithJournal(j))
	p, err := u.Prepare(context.Background(), unmount.Plan{Target: inspect.Mount{ID: id}, Mode: unmount.ModeStaged, Interval: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var pic []unmount.HolderState
	var last unmount.Event
	for ev := range u.Run(context.Background(), p) {
		b, err := present.EventJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(append(b, '\n'))
		if ev.Stage == unmount.StagePlan {
			pic = ev.Holders
		} else {
			pic = unmount.ApplyHolders(pic, ev.Holders)
		}
		last = ev
	}
	if last.Result == nil || !last.Result.Gone {
		t.Fatalf("the run did not end with the mount gone: %+v", last)
	}
	j.Close()
	jb, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d holders: umount --json %d bytes, journal %d bytes", n, out.Len(), len(jb))
	if out.Len() >= 1<<20 || len(jb) >= 1<<20 {
		t.Errorf("a run of %d holders printed %d bytes and journaled %d; want each under 1 MB", n, out.Len(), len(jb))
	}
	if len(pic) != n || len(last.Result.Holders) != n {
		t.Fatalf("applied picture has %d holders, result %d; want %d", len(pic), len(last.Result.Holders), n)
	}
	for i := range pic {
		if pic[i] != last.Result.Holders[i] {
			t.Fatalf("applied picture differs from the result's at %d: %+v vs %+v", i, pic[i], last.Result.Holders[i])
		}
		if pic[i].State != unmount.StatusRevoked {
			t.Fatalf("holder %d is %q, want revoked", pic[i].PID, pic[i].State)
		}
	}
}
