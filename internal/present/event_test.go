package present

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"mounttop/inspect"
	"mounttop/unmount"
)

// TestEventTextEscapesOnce: a name the event's note carries raw shows
// escaped once (/mnt/a\nb, not /mnt/a\\nb); a control an error carries raw
// is escaped; the line stays one line.
func TestEventTextEscapesOnce(t *testing.T) {
	got := EventText(unmount.Event{Stage: unmount.StageUnmount, Note: unmount.PlainUnmounted{Flag: "MNT_DETACH", Mountpoint: "/mnt/a\nb", Failed: true},
		Err: errors.New("open /mnt/c\x1b[2J\n: EIO")})
	if want := `unmount  umount2(MNT_DETACH) of /mnt/a\nb failed [open /mnt/c\e[2J : EIO]`; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestEventJSONChangesAndResult: a holder's state goes out as its word,
// names exactly once escaped; the result carries the full picture.
func TestEventJSONChangesAndResult(t *testing.T) {
	ev := unmount.Event{Stage: unmount.StageDone, Holders: []unmount.HolderState{{PID: 7, Comm: "a\nb", State: unmount.StatusRevoked}},
		Result: &unmount.Result{Gone: true, Summary: "done", Holders: []unmount.HolderState{{PID: 7, Comm: "a\nb", State: unmount.StatusRevoked}, {PID: 8, Comm: "c", State: unmount.StatusGone}},
			Remaining: []inspect.Holder{}}}
	b, err := EventJSON(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Stage   string
		Holders []struct {
			PID   int
			Comm  string
			State string
		}
		Result struct {
			Gone    bool
			Holders []struct{ State string }
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got.Stage != "done" || len(got.Holders) != 1 || got.Holders[0].Comm != "a\nb" || got.Holders[0].State != "revoked" ||
		!got.Result.Gone || len(got.Result.Holders) != 2 || got.Result.Holders[1].State != "gone" {
		t.Errorf("%s", b)
	}
}

// TestConfirmQuestion: the question names the mode, the target escaped
// once, the holders and the releases.
func TestConfirmQuestion(t *testing.T) {
	p := &unmount.Plan{Target: inspect.Mount{Mountpoint: "/mnt/a\nb"}, Mode: unmount.ModeStaged,
		Holders: []unmount.HolderAction{{}}, Releases: []unmount.Release{{}, {}}, Release: true}
	got := ConfirmQuestion(p)
	if want := `staged unmount /mnt/a\nb with 1 holder and 2 releases, as planned above: go ahead? [y/N] `; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if strings.Contains(ConfirmQuestion(&unmount.Plan{Mode: unmount.ModeLazy}), "releases") {
		t.Error("no releases named without Release")
	}
}

// TestPlanJSONServer: the plan event carries the probe's finding as
// "server" (the JSON of `umount --dry-run --json` and the journal).
func TestPlanJSONServer(t *testing.T) {
	p := unmount.Plan{Mode: unmount.ModeStaged, Policy: unmount.PolicyClose, Interval: time.Second, Timeout: time.Minute,
		Target: inspect.Mount{ID: 7, Mountpoint: "/mnt/x", FSType: "fuse.sshfs"},
		Server: unmount.Server{Probed: true, Probe: unmount.Probe{Outcome: unmount.ProbeTimedOut, Path: "/mnt/x", Limit: 2 * time.Second},
			Abort: unmount.Abort{Kind: unmount.AbortFuseConn, Conn: 45}}}
	b, err := EventJSON(unmount.PlanEvent(&p))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		What   string
		Server struct {
			Answering bool
			How       string
			Abort     string
		}
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Server.Answering || ev.Server.How != "statfs of /mnt/x did not return within 2s" || ev.Server.Abort != "abort FUSE connection 45 (/sys/fs/fuse/connections/45/abort)" ||
		!strings.Contains(ev.What, "the server is not answering") {
		t.Fatalf("%s", b)
	}
}
