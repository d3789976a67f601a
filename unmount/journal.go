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

// EventEncoder renders one event as a JSON object, for the journal. It is
// the caller's (cmd and the view pass present.EventJSON, the renderer of
// `umount --json`): unmount writes no document of its own.
type EventEncoder func(Event) ([]byte, error)

// Journal appends one JSON line per action to a file, so an incident can be
// reviewed afterwards: the target, the mode, each revoke with its pid and
// what was done, the result and every error.
//
// The file lives in a checked StateDir and is opened relative to its fd
// with O_NOFOLLOW (StateDir.openFile). Each line is written by one write(2)
// before Record returns, so a crash of mounttop loses none, and a write
// error (a full or read-only filesystem) is seen at once: the engine
// writes the plan line first and refuses to act when it fails. Each line
// is fdatasync(2)ed, so what the journal says survives the crash of the
// machine an incident may end in: the plan line and the result line
// before Record returns; the lines between by a group commit (syncLoop),
// one fdatasync for every line written while the one before ran, within
// about two fdatasyncs of being written. An fdatasync per line on the
// run's goroutine, about 0.8-1.7 ms each on this machine's disk, was
// 40% of the revoke stage of a staged close of 1,000 holders, which the
// revokes waited for (bench/README.md, revoke run H).
type Journal struct {
	mu   sync.Mutex
	dir  *StateDir
	f    *os.File // nil once the journal is disabled
	name string
	run  string
	// encode renders each event (OpenJournal's enc).
	encode EventEncoder
	// stuck is set once a line was abandoned (journalWait): every later
	// Record returns it at once.
	stuck error

	// The group commit (syncLoop): unsynced counts the lines written
	// since the last fdatasync began; kick (capacity 1) wakes the loop,
	// started with the first such line; syncErr is the failure of a
	// background fdatasync, returned by the next Record; synced is closed
	// when the loop ends (Close).
	unsynced int
	kick     chan struct{}
	synced   chan struct{}
	syncErr  error
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
// invocation's lines; enc renders each event's object (present.EventJSON).
func OpenJournal(path string, enc EventEncoder) (*Journal, error) {
	if enc == nil {
		return nil, errors.New("journal: no event encoder")
	}
	d, err := OpenStateDir(context.Background(), filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j, err := openJournalIn(d, filepath.Base(path))
	if err != nil {
		d.Close()
		return nil, err
	}
	j.encode = enc
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
	j.flush()
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

// Close ends the group commit, fdatasyncs what it had not (bounded by
// journalWait) and closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	kick, synced := j.kick, j.synced
	j.kick = nil
	j.mu.Unlock()
	if kick != nil {
		close(kick)
		<-synced
	}
	j.flush()
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
	evb, err := j.encode(ev)
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
	f, stuck, syncErr := j.f, j.stuck, j.syncErr
	j.syncErr = nil
	j.mu.Unlock()
	switch {
	case stuck != nil:
		return stuck
	case f == nil:
		return nil // disabled (MoveStateOff found no other place)
	}
	// The plan line comes before anything is done, the result line is
	// the last: each is durable before Record returns.
	now := ev.Stage == StagePlan || ev.Stage == StageDone
	var calls *bounded.Calls // nil: bounded, nothing remembered (stuck says it)
	err = calls.Do(context.Background(), journalWait, "writing the journal "+termsafe.Quote(f.Name()), bounded.AnyThread, func() error {
		if _, err := f.Write(line); err != nil {
			return fmt.Errorf("journal: %w", err) // a *PathError: "write PATH: ..."
		}
		if now {
			return fdatasync(f)
		}
		return nil
	})
	j.abandoned(err)
	if err == nil && !now {
		j.syncLater()
	}
	if err == nil {
		// A background fdatasync failed since the last line: said once,
		// with the line after it.
		err = syncErr
	}
	return err
}

// fdatasync flushes f's data (and its size), through SyscallConn, which
// keeps the fd from being closed under it (moveTo, Close).
func fdatasync(f *os.File) error {
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
}

// abandoned records a journal call that did not return within
// journalWait: the line may still land; what follows would queue behind
// it, so every later Record says so at once (stuck).
func (j *Journal) abandoned(err error) {
	if errors.Is(err, bounded.ErrAbandoned) {
		j.mu.Lock()
		if j.stuck == nil {
			j.stuck = fmt.Errorf("journal: %w", err)
		}
		j.mu.Unlock()
	}
}

// syncLater counts a line written and not yet fdatasynced and wakes the
// group commit (syncLoop), starting it with the first such line.
func (j *Journal) syncLater() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.unsynced++
	if j.kick == nil {
		if j.synced != nil {
			return // closing: Close flushes it
		}
		j.kick, j.synced = make(chan struct{}, 1), make(chan struct{})
		go j.syncLoop(j.kick, j.synced)
	}
	select {
	case j.kick <- struct{}{}:
	default: // a wake-up is pending already: its fdatasync covers this line
	}
}

// syncLoop is the group commit: woken after lines were written, it
// fdatasyncs them all at once (flush). It ends when kick is closed.
func (j *Journal) syncLoop(kick <-chan struct{}, synced chan<- struct{}) {
	defer close(synced)
	for range kick {
		if err := j.flush(); err != nil {
			j.mu.Lock()
			if j.syncErr == nil {
				j.syncErr = err
			}
			j.mu.Unlock()
		}
	}
}

// flush fdatasyncs the lines written since the last fdatasync began, if
// any, bounded by journalWait.
func (j *Journal) flush() error {
	j.mu.Lock()
	f, n := j.f, j.unsynced
	j.unsynced = 0
	stuck := j.stuck
	j.mu.Unlock()
	if f == nil || n == 0 || stuck != nil {
		return nil
	}
	var calls *bounded.Calls
	err := calls.Do(context.Background(), journalWait, "fdatasync of the journal "+termsafe.Quote(f.Name()), bounded.AnyThread, func() error { return fdatasync(f) })
	j.abandoned(err)
	return err
}

// journalWait bounds one journal line (write and fdatasync): a journal on
// a network or FUSE filesystem whose server stopped answering must not
// stop the run; the line is then reported as not written, and so is
// every later one (Journal.stuck).
const journalWait = 5 * time.Second
