package unmount

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/testns"
)

// TestStateDirRefusesOthers: a state directory anyone else can write in
// (pre-created by another user, group- or world-writable, sticky or not)
// or reached through a symbolic link is refused with ErrUnsafeStateDir,
// and nothing is created in it.
func TestStateDirRefusesOthers(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := map[string]string{
		"world-writable":   mk("world", 0o777),
		"sticky /tmp-like": mk("sticky", 0o1777),
		"group-writable":   mk("group", 0o770),
	}
	if testns.IsRealRoot() {
		other := mk("other", 0o700)
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		cases["owned by another user"] = other
	}
	real := mk("real", 0o700)
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	cases["a symbolic link to a good one"] = link
	cases["a symbolic link on the way"] = filepath.Join(link, "sub")
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			j, err := OpenJournal(filepath.Join(dir, "journal.jsonl"), testEncoder)
			if !errors.Is(err, ErrUnsafeStateDir) {
				if j != nil {
					j.Close()
				}
				t.Fatalf("OpenJournal in %s: %v, want ErrUnsafeStateDir", dir, err)
			}
			if err := OpenExpiryBook(filepath.Join(dir, "expire.json")).Forget(1); !errors.Is(err, ErrUnsafeStateDir) {
				t.Errorf("the expiry book in %s: %v, want ErrUnsafeStateDir", dir, err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("files were created in %s: %v", dir, ents)
			}
		})
	}
	if ents, _ := os.ReadDir(real); len(ents) != 0 {
		t.Errorf("the link led a write into %s: %v", real, ents)
	}
	// The good case: a missing directory is created 0700 and used.
	good := filepath.Join(base, "new", "state")
	j, err := OpenJournal(filepath.Join(good, "journal.jsonl"), testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if fi, err := os.Stat(good); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created state dir: %v %v", fi.Mode(), err)
	}
}

// TestStateFilesNotFollowed: a symbolic link planted at journal.jsonl,
// expire.json.lock or expire.json is refused, one at expire.json.new is
// unlinked rather than followed; the planted targets are unchanged.
func TestStateFilesNotFollowed(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	writeFile(t, victim, "precious\n")
	plant := func(name string) {
		t.Helper()
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	unplant := func(name string) { _ = os.Remove(filepath.Join(dir, name)) }
	check := func() {
		t.Helper()
		if got, _ := os.ReadFile(victim); string(got) != "precious\n" {
			t.Fatalf("the planted target changed: %q", got)
		}
	}
	m := &inspect.Mount{ID: 42, Mountpoint: "/x"}

	plant("journal.jsonl")
	if _, err := OpenJournal(filepath.Join(dir, "journal.jsonl"), testEncoder); !errors.Is(err, ErrUnsafeStateDir) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("journal.jsonl as a link: %v", err)
	}
	check()
	unplant("journal.jsonl")

	book := OpenExpiryBook(filepath.Join(dir, "expire.json"))
	for _, name := range []string{"expire.json.lock", "expire.json"} {
		plant(name)
		if _, _, err := book.Marked(m, time.Now()); !errors.Is(err, ErrUnsafeStateDir) {
			t.Errorf("%s as a link: %v", name, err)
		}
		check()
		unplant(name)
	}

	plant("expire.json.new")
	if _, _, err := book.Marked(m, time.Now()); err != nil {
		t.Fatalf("with a link at expire.json.new: %v", err)
	}
	check()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "expire.json"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("expire.json is not a regular file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "expire.json.new")); !os.IsNotExist(err) {
		t.Errorf("expire.json.new is left: %v", err)
	}
	if mk, ok := OpenExpiryBook(filepath.Join(dir, "expire.json")).Get(42); !ok || mk.Attempts != 1 {
		t.Errorf("the mark was not kept: %+v", mk)
	}
}

// TestJournalWriteErrorStopsTheRun: a journal that cannot take the plan
// line (a full tmpfs) stops the run before the fence: ErrRefused, nothing
// changed, the holder untouched. A read-only journal directory is refused
// when it is opened.
func TestJournalWriteErrorStopsTheRun(t *testing.T) {
	full := testns.Tmpfs(t, "size=4k")
	jdir := filepath.Join(full, "log")
	if err := os.Mkdir(jdir, 0o700); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(filepath.Join(jdir, "journal.jsonl"), testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	// Fill the tmpfs: its one page goes to a file beside the journal.
	filler, err := os.Create(filepath.Join(full, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	filler.Close()

	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleCwd, dir)
	before := mountIDs(t, dir)
	evs := staged(t, realUnmounter(t, WithJournal(j)), dir, Plan{Policy: PolicySignal})
	if got := stages(evs); got != "plan done" {
		t.Fatalf("stages %q, want plan done", got)
	}
	res, rerr := result(t, evs)
	if !errors.Is(rerr, ErrRefused) || !errors.Is(rerr, unix.ENOSPC) || !strings.Contains(summaryOf(res), "nothing changed") {
		t.Fatalf("result %v: %s", rerr, summaryOf(res))
	}
	if after := mountIDs(t, dir); len(after) != 1 || after[0] != before[0] || !v.Alive() {
		t.Fatalf("something changed: mounts %v -> %v, holder alive %v", before, after, v.Alive())
	}

	ro := testns.Tmpfs(t, "")
	if err := os.Mkdir(filepath.Join(ro, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(filepath.Join(ro, "log", "journal.jsonl"), testEncoder); !errors.Is(err, unix.EROFS) {
		t.Fatalf("a journal on a read-only directory: %v, want EROFS", err)
	}
}

// TestJournalMovedOffTheTarget: a staged run of the mount the journal and
// the expiry state lie on moves them to the fallback directory first (a
// warning in the plan), so they do not keep the mount busy: the run
// succeeds, and the journal's lines are in the new place.
func TestJournalMovedOffTheTarget(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	jpath := filepath.Join(dir, "log", "journal.jsonl")
	j, err := OpenJournal(jpath, testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	book := OpenExpiryBook(DefaultExpiryPath(jpath))
	fallback := filepath.Join(t.TempDir(), "mounttop")
	u := realUnmounter(t, WithJournal(j), WithExpiryBook(book), WithStateFallback(fallback))
	// As `mounttop umount` does before Prepare, which refuses the mount
	// the journal lies on (ownMountReason).
	target := mountAt(t, dir)
	move, err := u.MoveStateOff(context.Background(), &target)
	warn := StateWords(move)
	if err != nil || !strings.Contains(warn, "written to "+fallback+" instead") {
		t.Fatalf("MoveStateOff: %q %v", warn, err)
	}
	evs := staged(t, u, dir, Plan{Policy: PolicySignal})
	requireGone(t, evs, dir)
	if j.Path() != filepath.Join(fallback, "journal.jsonl") || book.dir() != fallback {
		t.Errorf("journal at %q, book in %q", j.Path(), book.dir())
	}
	data, err := os.ReadFile(filepath.Join(fallback, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != len(evs) {
		t.Errorf("%d lines in the moved journal for %d events", n, len(evs))
	}
	var first struct{ Stage string }
	if err := json.Unmarshal([]byte(strings.SplitN(string(data), "\n", 2)[0]), &first); err != nil || first.Stage != "plan" {
		t.Errorf("first line: %v %+v", err, first)
	}

	// With no usable fallback the run goes without a journal.
	dir2 := testns.Tmpfs(t, "")
	j2, err := OpenJournal(filepath.Join(dir2, "log", "journal.jsonl"), testEncoder) // a tmpfs root is 1777: refused
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	u2 := realUnmounter(t, WithJournal(j2))
	target2 := mountAt(t, dir2)
	if move, err := u2.MoveStateOff(context.Background(), &target2); err != nil || !strings.Contains(StateWords(move), "this run goes without a journal") || j2.Path() != "" {
		t.Fatalf("MoveStateOff: %+v %v; journal at %q", move, err, j2.Path())
	}
	evs = staged(t, u2, dir2, Plan{Policy: PolicySignal})
	requireGone(t, evs, dir2)
}

// TestStatePlace decides by the table alone: on the target or below it the
// first fallback not on it is taken.
func TestStatePlace(t *testing.T) {
	snap := inspect.NewSnapshot([]inspect.Mount{
		{ID: 1, ParentID: 1, Mountpoint: "/"},
		{ID: 2, ParentID: 1, Mountpoint: "/var"},
		{ID: 3, ParentID: 2, Mountpoint: "/var/log"},
		{ID: 4, ParentID: 1, Mountpoint: "/run"},
	}, nil, nil)
	target, _ := snap.Mount(2)
	cases := []struct {
		dir, fb1, want string
		warned         bool
	}{
		{"/srv/state", "/run/mounttop", "/srv/state", false},
		{"/var/log/mounttop", "/run/mounttop", "/run/mounttop", true},
		{"/var/lib/mounttop", "/var/tmp/x", "/run/mounttop", true},
	}
	for _, c := range cases {
		got, move := StatePlace(snap, target, c.dir, []string{c.fb1, "/run/mounttop"})
		if got != c.want || (move.Kind != StateStays) != c.warned {
			t.Errorf("StatePlace(%s) = %q, %+v", c.dir, got, move)
		}
	}
	if got, move := StatePlace(snap, target, "/var/log/x", []string{"/var/tmp"}); got != "" || move.Kind != StateNoPlace || !strings.Contains(StateWords(move), "without a journal") {
		t.Errorf("no fallback: %q %+v", got, move)
	}
	if _, err := OpenStateDir(context.Background(), "relative/dir"); err == nil {
		t.Error("a relative state directory was accepted")
	}
}

// fullJournal is a journal on a tmpfs with no room left: it opens, and
// every line fails with ENOSPC.
func fullJournal(t *testing.T) *Journal {
	t.Helper()
	full := testns.Tmpfs(t, "size=4k")
	if err := os.Mkdir(filepath.Join(full, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(filepath.Join(full, "log", "journal.jsonl"), testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	f, err := os.Create(filepath.Join(full, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	f.Close()
	return j
}

// TestReleaseNeedsTheJournal: a release (the view's R) whose journal line
// cannot be written is refused before the kernel is asked anything.
func TestReleaseNeedsTheJournal(t *testing.T) {
	f := newFake()
	u := New(f, WithJournal(fullJournal(t)))
	err := u.Release(context.Background(), Release{Kind: "loop", Name: "/dev/loop7"})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("release with a full journal: %v", err)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Fatalf("the kernel was asked: %v", calls)
	}
}

// TestStateOnADeadServer: a journal and an expiry book on a FUSE mount
// whose daemon is stopped do not hang their caller: the line is abandoned
// after journalWait with an error, and every later one fails at once.
func TestStateOnADeadServer(t *testing.T) {
	fs := testns.Bindfs(t, t.TempDir())
	dir := filepath.Join(fs.Dir, "state")
	j, err := OpenJournal(filepath.Join(dir, "journal.jsonl"), testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	book := OpenExpiryBook(filepath.Join(dir, "expire.json"))
	p := &Plan{Mode: ModeLazy, Target: inspect.Mount{Mountpoint: "/x"}}
	if err := j.Record(p, PlanEvent(p)); err != nil {
		t.Fatal(err)
	}
	fs.Stop(t)
	t.Cleanup(func() { fs.Cont(t); j.Close() }) // the abandoned calls return
	start := time.Now()
	err = j.Record(p, Event{Stage: StageUnmount, Note: PlainUnmounted{Flag: "MNT_DETACH", Mountpoint: "/x"}})
	if took := time.Since(start); !errors.Is(err, bounded.ErrAbandoned) || took > journalWait+10*time.Second {
		t.Fatalf("a line on a dead server: %v after %v", err, took)
	}
	start = time.Now()
	if err := j.Record(p, Event{Stage: StageDone}); !errors.Is(err, bounded.ErrAbandoned) || time.Since(start) > time.Second {
		t.Fatalf("the next line: %v after %v, want the same error at once", err, time.Since(start))
	}
	start = time.Now()
	if _, _, err := book.Marked(&inspect.Mount{ID: 7, Mountpoint: "/x"}, time.Now()); !errors.Is(err, bounded.ErrAbandoned) ||
		time.Since(start) > stateDirWait+bookWait+10*time.Second {
		t.Fatalf("the book on a dead server: %v after %v", err, time.Since(start))
	}
}

// TestJournalLostMidRun: a journal that fails after the plan line (its
// server stops answering at the syncfs) does not stop the run: one event
// says the journal misses the lines from there on, and the run ends as it
// would have.
func TestJournalLostMidRun(t *testing.T) {
	fs := testns.Bindfs(t, t.TempDir())
	j, err := OpenJournal(filepath.Join(fs.Dir, "state", "journal.jsonl"), testEncoder)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Cont(t); j.Close() })
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "tmpfs", false)
	f.target = target.ID
	f.onSyncfs = func() { fs.Stop(t) }
	u := New(f, WithJournal(j))
	ctx := context.Background()
	p, err := u.Prepare(ctx, Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Policy: PolicyClose, Interval: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(u.Run(ctx, p))
	res, rerr := result(t, evs)
	if rerr != nil || !res.Gone {
		t.Fatalf("the run did not finish: %v %s", rerr, summaryOf(res))
	}
	var lost []string
	for _, ev := range evs {
		if strings.Contains(EventWords(ev), "the journal could not be written; it misses the lines from here on") {
			lost = append(lost, ev.Stage.String())
			if !errors.Is(ev.Err, bounded.ErrAbandoned) {
				t.Errorf("the journal event's error: %v", ev.Err)
			}
		}
	}
	if len(lost) != 1 {
		t.Fatalf("%d journal-lost events (%v), want 1:\n%s", len(lost), lost, dumpEvents(evs))
	}
}
