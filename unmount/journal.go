package unmount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
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
	// Filesystem (plan): what keeps the filesystem in use after the
	// unmount, as forecast.
	Filesystem *filesystemJSON `json:"filesystem,omitempty"`
}

// filesystemJSON is Filesystem: whether the filesystem itself is released
// and what still uses it.
type filesystemJSON struct {
	Released   bool                `json:"released"`
	Checked    bool                `json:"checked"`
	Device     string              `json:"device"`
	InUseBy    []filesystemUseJSON `json:"in_use_by"`
	Exclusive  bool                `json:"exclusive,omitempty"` // the block device opened with O_EXCL
	DeviceName termsafe.Name       `json:"device_name,omitempty"`
	Note       termsafe.Name       `json:"note,omitempty"`
}

type filesystemUseJSON struct {
	Kind      string        `json:"kind"`
	Where     termsafe.Name `json:"where,omitempty"`
	Namespace string        `json:"namespace,omitempty"` // "mnt:[N]" when not ours
	Host      bool          `json:"host,omitempty"`
	PIDs      []int         `json:"pids,omitempty"`
}

func newFilesystemJSON(f *Filesystem) *filesystemJSON {
	out := &filesystemJSON{Released: f.Released, Checked: f.Checked, Device: f.Device, InUseBy: []filesystemUseJSON{},
		Exclusive: f.Exclusive, DeviceName: termsafe.Name(f.DeviceName), Note: termsafe.Name(f.Note)}
	for _, u := range f.InUseBy {
		j := filesystemUseJSON{Kind: u.Kind, Where: termsafe.Name(u.Where), Host: u.Host, PIDs: u.PIDs}
		if u.Namespace != 0 {
			j.Namespace = fmt.Sprintf("mnt:[%d]", u.Namespace)
		}
		out.InUseBy = append(out.InUseBy, j)
	}
	return out
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
	Host       bool          `json:"host,omitempty"` // a copy in the host's mount namespace (pid 1's)
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
	// Holders: the per-holder picture at the end, in full (the events
	// between carry only changes).
	Holders []holderJSON `json:"holders,omitempty"`
	// Filesystem: once the mount is gone, whether the filesystem is.
	Filesystem *filesystemJSON `json:"filesystem,omitempty"`
}

// MarshalJSON renders the event as documented for `mounttop umount --json`:
// "stage" is Stage.String(); "result" is set on the last ("done") event.
func (e Event) MarshalJSON() ([]byte, error) {
	out := eventJSON{Stage: e.Stage.String(), Time: e.At, MountID: e.Mount, PID: e.PID, What: termsafe.Name(e.What)}
	if e.Err != nil {
		out.Error = termsafe.Name(e.Err.Error())
	}
	for _, h := range e.Holders {
		out.Holders = append(out.Holders, holderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: h.State.String(), Reason: termsafe.Name(h.Reason), Namespace: h.Namespace})
	}
	if e.Stage == StageDrain {
		n := e.Remaining
		out.Remaining = &n
	}
	for _, r := range e.Releases {
		out.Releases = append(out.Releases, releaseJSON{Kind: r.Kind.String(), What: termsafe.Name(r.What), PID: r.PID, Namespace: r.Namespace,
			Mountpoint: termsafe.Name(r.Mountpoint), Name: termsafe.Name(r.Name), Lazy: r.Lazy, Propagates: r.Propagates, Refused: termsafe.Name(r.Refused), Host: r.Host})
	}
	out.Release = e.Release
	if e.Filesystem != nil {
		out.Filesystem = newFilesystemJSON(e.Filesystem)
	}
	if s := e.Server; s != nil {
		out.Server = &serverJSON{Answering: s.Answering, Aborted: s.Aborted, How: termsafe.Name(s.How)}
		if !s.Answering {
			out.Server.Abort = termsafe.Name(s.Abort.What)
		}
	}
	if r := e.Result; r != nil {
		out.Result = &resultJSON{Gone: r.Gone, Marked: r.Marked, Summary: termsafe.Name(r.Summary)}
		if r.Filesystem != nil {
			out.Result.Filesystem = newFilesystemJSON(r.Filesystem)
		}
		for _, h := range r.Holders {
			out.Result.Holders = append(out.Result.Holders, holderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: h.State.String(), Reason: termsafe.Name(h.Reason), Namespace: h.Namespace})
		}
		for _, h := range r.Remaining {
			out.Result.Remaining = append(out.Result.Remaining, holderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: string(h.State)})
		}
	}
	return json.Marshal(out)
}

// Journal appends one JSON line per action to a file, so an incident can be
// reviewed afterwards: the target, the mode, each revoke with its pid and
// what was done, the result and every error.
//
// The file lives in a checked StateDir and is opened relative to its fd
// with O_NOFOLLOW (StateDir.openFile). Each line is fdatasync(2)ed, so what
// the journal says survives the crash an incident may end in, and a write
// error (a full or read-only filesystem) is seen at once: the engine
// writes the plan line first and refuses to act when it fails.
type Journal struct {
	mu   sync.Mutex
	dir  *StateDir
	f    *os.File // nil once the journal is disabled
	name string
	run  string
	// stuck is set once a line was abandoned (journalWait): every later
	// Record returns it at once.
	stuck error
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

// OpenJournal opens the journal at path (absolute) for appending: its
// directory is opened and checked (OpenStateDir: created 0700 if missing,
// refused if anyone else could write in it), the file is created 0600 or
// opened relative to it without following a link. run identifies this
// invocation's lines.
func OpenJournal(path string) (*Journal, error) {
	d, err := OpenStateDir(context.Background(), filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j, err := openJournalIn(d, filepath.Base(path))
	if err != nil {
		d.Close()
		return nil, err
	}
	return j, nil
}

// openJournalIn opens (creating it) the journal file name in d and makes
// its name durable (fsync of the directory).
func openJournalIn(d *StateDir, name string) (*Journal, error) {
	f, err := d.openFile(name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := d.sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{dir: d, f: f, name: name, run: fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())}, nil
}

// Path is where the journal is written ("" once disabled).
func (j *Journal) Path() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return ""
	}
	return filepath.Join(j.dir.Path(), j.name)
}

// Mount is the unique ID of the mount the journal lies on (0 once
// disabled).
func (j *Journal) Mount() inspect.MountID {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return 0
	}
	return j.dir.Mount()
}

// moveTo goes on writing in d (same file name), closing the old file and
// directory: they must not keep a mount busy that a run is to unmount.
func (j *Journal) moveTo(d *StateDir) error {
	nj, err := openJournalIn(d, j.name)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeLocked()
	j.dir, j.f = d, nj.f
	return nil
}

// disable stops the journal: Record writes nothing from now on.
func (j *Journal) disable() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeLocked()
}

func (j *Journal) closeLocked() {
	if j.f != nil {
		j.f.Close()
		j.dir.Close()
		j.f = nil
	}
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeLocked()
	return nil
}

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
// interleave, followed by fdatasync(2). The error says the line is not
// (durably) in the journal.
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
	f, stuck := j.f, j.stuck
	j.mu.Unlock()
	switch {
	case stuck != nil:
		return stuck
	case f == nil:
		return nil // disabled (MoveStateOff found no other place)
	}
	var calls *bounded.Calls // nil: bounded, nothing remembered (stuck says it)
	err = calls.Do(context.Background(), journalWait, "writing the journal "+termsafe.Quote(f.Name()), bounded.AnyThread, func() error {
		if _, err := f.Write(line); err != nil {
			return fmt.Errorf("journal: %w", err) // a *PathError: "write PATH: ..."
		}
		// Through SyscallConn, which keeps the fd from being closed
		// under it (moveTo, Close).
		rc, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("journal %s: fdatasync: %w", termsafe.Quote(f.Name()), serr)
		}
		return nil
	})
	if errors.Is(err, bounded.ErrAbandoned) {
		// The line may still land; what follows would queue behind it.
		j.mu.Lock()
		j.stuck = fmt.Errorf("journal: %w", err)
		j.mu.Unlock()
	}
	return err
}

// journalWait bounds one journal line (write and fdatasync): a journal on
// a network or FUSE filesystem whose server stopped answering must not
// stop the run; the line is then reported as not written, and so is
// every later one (Journal.stuck).
const journalWait = 5 * time.Second
