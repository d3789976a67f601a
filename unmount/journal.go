package unmount

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
)

// eventJSON is the wire form of an Event: one object per line of
// `mounttop umount --json` and of the journal. Every name from the system
// goes through termsafe.Name (exact bytes, terminal-safe).
type eventJSON struct {
	Stage     string          `json:"stage"`
	Time      time.Time       `json:"time"`
	MountID   inspect.MountID `json:"mount_id,omitempty"`
	PID       int             `json:"pid,omitempty"`
	What      termsafe.Name   `json:"what,omitempty"`
	Error     termsafe.Name   `json:"error,omitempty"`
	Holders   []holderJSON    `json:"holders,omitempty"`
	Remaining *int            `json:"remaining,omitempty"`
	Result    *resultJSON     `json:"result,omitempty"`
	Releases  []releaseJSON   `json:"releases,omitempty"`
	Release   bool            `json:"release,omitempty"`
	Server    *serverJSON     `json:"server,omitempty"`
}

// serverJSON is the probe's finding (Plan.Server), on the plan event of a
// staged run.
type serverJSON struct {
	Answering bool          `json:"answering"`
	Aborted   bool          `json:"aborted,omitempty"`
	How       termsafe.Name `json:"how"`
	Abort     termsafe.Name `json:"abort,omitempty"` // what the run does to cut it off a server that does not answer
}

// releaseJSON is one of the plan's releases (Release).
type releaseJSON struct {
	Kind       string        `json:"kind"`
	What       termsafe.Name `json:"what"`
	PID        int           `json:"pid,omitempty"`
	Namespace  uint64        `json:"namespace,omitempty"`
	Mountpoint termsafe.Name `json:"mountpoint,omitempty"`
	Name       termsafe.Name `json:"name,omitempty"`
	Lazy       bool          `json:"lazy,omitempty"`
	Propagates bool          `json:"propagates,omitempty"`
	Refused    termsafe.Name `json:"refused,omitempty"`
}

type holderJSON struct {
	PID       int           `json:"pid"`
	Comm      termsafe.Name `json:"comm"`
	State     string        `json:"state"`
	Reason    termsafe.Name `json:"reason,omitempty"`
	Namespace string        `json:"namespace,omitempty"` // "mnt:[N]": holds a copy in another mount namespace
}

type resultJSON struct {
	Gone      bool          `json:"gone"`
	Marked    bool          `json:"marked"`
	Summary   termsafe.Name `json:"summary"`
	Remaining []holderJSON  `json:"remaining,omitempty"`
}

// MarshalJSON renders the event as documented for `mounttop umount --json`:
// "stage" is Stage.String(); "result" is set on the last ("done") event.
func (e Event) MarshalJSON() ([]byte, error) {
	out := eventJSON{Stage: e.Stage.String(), Time: e.At, MountID: e.Mount, PID: e.PID, What: termsafe.Name(e.What)}
	if e.Err != nil {
		out.Error = termsafe.Name(e.Err.Error())
	}
	for _, h := range e.Holders {
		out.Holders = append(out.Holders, holderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: h.State, Reason: termsafe.Name(h.Reason), Namespace: h.Namespace})
	}
	if e.Stage == StageDrain {
		n := e.Remaining
		out.Remaining = &n
	}
	for _, r := range e.Releases {
		out.Releases = append(out.Releases, releaseJSON{Kind: r.Kind, What: termsafe.Name(r.What), PID: r.PID, Namespace: r.Namespace,
			Mountpoint: termsafe.Name(r.Mountpoint), Name: termsafe.Name(r.Name), Lazy: r.Lazy, Propagates: r.Propagates, Refused: termsafe.Name(r.Refused)})
	}
	out.Release = e.Release
	if s := e.Server; s != nil {
		out.Server = &serverJSON{Answering: s.Answering, Aborted: s.Aborted, How: termsafe.Name(s.How)}
		if !s.Answering {
			out.Server.Abort = termsafe.Name(s.Abort.What)
		}
	}
	if r := e.Result; r != nil {
		out.Result = &resultJSON{Gone: r.Gone, Marked: r.Marked, Summary: termsafe.Name(r.Summary)}
		for _, h := range r.Remaining {
			out.Result.Remaining = append(out.Result.Remaining, holderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: string(h.State)})
		}
	}
	return json.Marshal(out)
}

// Journal appends one JSON line per action to a file, so an incident can be
// reviewed afterwards: the target, the mode, each revoke with its pid and
// what was done, the result and every error.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
	run  string
}

// DefaultJournalPath is /var/log/mounttop/journal.jsonl for root and
// $XDG_STATE_HOME/mounttop/journal.jsonl (default ~/.local/state) for
// anyone else, per the XDG base directory spec. getenv is os.Getenv.
func DefaultJournalPath(euid int, getenv func(string) string) string {
	if euid == 0 {
		return "/var/log/mounttop/journal.jsonl"
	}
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "mounttop", "journal.jsonl")
	}
	home := getenv("HOME")
	if home == "" {
		home = "/"
	}
	return filepath.Join(home, ".local", "state", "mounttop", "journal.jsonl")
}

// OpenJournal opens (creating it and its directory, 0700/0600) the journal
// at path for appending. run identifies this invocation's lines.
func OpenJournal(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{f: f, path: path, run: fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())}, nil
}

// Path is where the journal is written.
func (j *Journal) Path() string { return j.path }

// Close closes the journal file.
func (j *Journal) Close() error { return j.f.Close() }

// journalHead is what each journal line says about the run; the event's
// own fields follow it in the same object.
type journalHead struct {
	Run    string        `json:"run"`
	Target termsafe.Name `json:"target"`
	Mode   string        `json:"mode"`
	Policy string        `json:"policy,omitempty"`
}

// Record appends ev, about plan p's target, as one line. Each line is one
// write(2) to an O_APPEND file, so lines from concurrent runs do not
// interleave.
func (j *Journal) Record(p *Plan, ev Event) error {
	if j == nil {
		return nil
	}
	policy := ""
	if p.Mode == ModeStaged {
		policy = p.Policy.String()
	}
	return j.record(planTarget(&p.Target), p.Mode.String(), policy, ev)
}

// planTarget names the target in the journal: its mount point, or for a
// detached mount its unique ID.
func planTarget(m *inspect.Mount) string {
	if m.Detached {
		return fmt.Sprintf("(detached mount %d)", m.ID)
	}
	return m.Mountpoint
}

// record appends ev as one line headed by the target, the mode ("release"
// for Unmounter.Release) and the policy.
func (j *Journal) record(target, mode, policy string, ev Event) error {
	if j == nil {
		return nil
	}
	evb, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	head := journalHead{Run: j.run, Target: termsafe.Name(target), Mode: mode, Policy: policy}
	hb, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// Merge {"run":..,"target":..,"mode":..} and the event object.
	line := append(hb[:len(hb)-1:len(hb)-1], ',')
	line = append(line, evb[1:]...)
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err = j.f.Write(line)
	return err
}
