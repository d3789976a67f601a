package present

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strings"
	"testing"
	"time"

	"mounttop/unmount"
)

// runNotes is one of each run note (unmount/notes_run.go) with the words
// it renders to: the wording the goldens, the tmux and cmd tests and the
// journal hold.
func runNotes() []struct {
	n    unmount.Note
	want string
} {
	cat := unmount.Who{PID: 10, Comm: "cat"}
	cp := unmount.Who{PID: 11, Comm: "sh", Namespace: 4026532000}
	loop := unmount.Release{Kind: unmount.ReleaseLoop, Name: "/dev/loop7", BackingFile: "/img"}
	left := []unmount.LeftHolder{
		{Who: cat, Kinds: []string{"fd", "cwd"}, State: unmount.HolderState{PID: 10, State: unmount.StatusRefused, Why: unmount.HolderNotRevoked{Who: cat, Refusal: unmount.RefusalExe}}},
		{Who: cp, Kinds: []string{"mmap"}, DState: true, State: unmount.HolderState{PID: 11, State: unmount.StatusPending}},
	}
	notReleased := []unmount.ReleaseLeft{{Release: loop, ErrText: "device busy"}}
	back := unmount.FenceRolledBack{MountID: 40, Target: "/mnt/t", Revoked: 2, Signalled: 1, Released: 1,
		Unsettled: unmount.Unsettled{{Who: cat, InsideText: "close(fd 5)"}, {Who: cp, UnderWay: true}}, Aborted: true}
	fs := unmount.FenceState{Target: "/mnt/t", RealPath: "/stash/mnt", FenceID: 41, MountID: 40}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	timedOut := unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeTimedOut, Path: "/mnt/t", Limit: time.Second}}
	timeout := &unmount.DrainTimeout{Timeout: 2 * time.Second, Left: left[:1]}
	return []struct {
		n    unmount.Note
		want string
	}{
		{unmount.HolderRevoked{Who: cat, Did: &unmount.Revoked{Closed: []int{3}}}, "pid 10 (cat): closed fd 3"},
		{unmount.HolderRevoked{Who: cat, Did: &unmount.Revoked{Closed: []int{3, 4}, Placeholder: true, Unmapped: 2, Chdir: 1, Threads: 3, Stopped: 1234567 * time.Nanosecond}},
			"pid 10 (cat): put a placeholder on fd 3, 4; unmapped 2 mappings (PROT_NONE); moved the cwd of 1 thread into an empty read-only directory (3 threads stopped for 1.23ms)"},
		{unmount.HolderRevoked{Who: cat, Did: &unmount.Revoked{Unmapped: 1, Chdir: 2, Threads: 1, Stopped: 5 * time.Microsecond}},
			"pid 10 (cat): unmapped 1 mapping (PROT_NONE); moved the cwd of 2 threads into an empty read-only directory (1 thread stopped for 10µs)"},
		{unmount.HolderRevoked{Who: cat, Did: &unmount.Revoked{FailedText: []string{"close fd 7: EBADF", "munmap: EINVAL"}, NotesText: []string{"fd 9 had changed: left alone"}, Threads: 2}},
			"pid 10 (cat): failed: close fd 7: EBADF; munmap: EINVAL; fd 9 had changed: left alone (2 threads stopped for 0s)"},
		{unmount.HolderRevoked{Who: cat, Did: &unmount.Revoked{Threads: 1}}, "pid 10 (cat): nothing left to revoke"},
		{unmount.HolderRestored{Who: cat, Restore: unmount.Restore{PID: 10, Syscall: "close", Arg: "fd 5", Did: &unmount.Revoked{Closed: []int{5}, Threads: 1, Stopped: time.Second}}},
			"pid 10 (cat): process 10 came out of close(fd 5) and was restored and released: closed fd 5 (1 thread stopped for 1s)"},
		{unmount.HolderRestored{Who: cat, Restore: unmount.Restore{PID: 10, Syscall: "close", Arg: "fd 5", ErrText: "close fd 5: EIO", Did: &unmount.Revoked{Threads: 1}}},
			"pid 10 (cat): process 10 came out of close(fd 5) and was restored and released: close fd 5: EIO: nothing left to revoke"},
		{unmount.HolderExited{Who: cp}, "pid 11 (sh) in mount namespace mnt:[4026532000] exited"},
		{unmount.HolderLetGo{Who: cat}, "pid 10 (cat): no longer holds the mount"},
		{unmount.HolderNotRevoked{Who: cat, Refusal: unmount.RefusalExe}, "pid 10 (cat): not revoked: " + RefusalText(unmount.RefusalExe)},
		{unmount.HolderNotRevoked{Who: cat, ErrText: "did not stop in time"}, "pid 10 (cat): not revoked: did not stop in time"},
		{unmount.HolderSignalled{Who: cat, Signal: "SIGTERM"}, "pid 10 (cat): sent SIGTERM"},
		{unmount.HolderSignalled{Who: cat, Signal: "SIGKILL", Refusal: unmount.RefusalExe}, "pid 10 (cat): sent SIGKILL (" + RefusalText(unmount.RefusalExe) + ")"},
		{unmount.HolderNotSignalled{Who: cat, ErrText: "the process exited"}, "pid 10 (cat): not signalled: the process exited"},
		{unmount.SignalFailed{Who: cat, Signal: "SIGTERM"}, "pid 10 (cat): SIGTERM failed"},
		{unmount.SignalledExited{PID: 10}, "pid 10 exited"},
		{unmount.RevokeScanFailed{}, "scan failed; the drain will retry"},
		{unmount.NoHolder{}, "no process holds the mount"},
		{unmount.DrainRescanFailed{}, "rescan failed"},
		{unmount.DrainLeft{Left: left, NotReleased: notReleased}, "2 holders left: pid 10 (cat) by fd+cwd, refused: " + RefusalText(unmount.RefusalExe) +
			"; pid 11 (sh) in mount namespace mnt:[4026532000] by mmap, in D state (uninterruptible sleep; it stops only when its I/O completes)" +
			"; not released: detach loop device /dev/loop7 (its backing file /img): device busy"},
		{unmount.NothingHolds{}, "nothing holds the mount any more; unmounting"},
		{unmount.BusyNoHolder{Why: unmount.BusyWhy{Stuck: []unmount.Stuck{{Who: cat, InsideText: "close(fd 5)"}}}},
			"busy, but no process holds it: pid 10 (cat) was left inside close(fd 5), which holds the file until the call returns"},
		{unmount.BusyNoHolder{Why: unmount.BusyWhy{Dead: &unmount.DeadServer{Server: timedOut, OwnCalls: []string{"syncfs of /mnt/t"}}}},
			"busy, but no process holds it: the filesystem's server is not answering (statfs of /mnt/t did not return within 1s); calls of mounttop's own still blocked on it hold it until they return: syncfs of /mnt/t"},
		{unmount.CallAbandoned{CallText: "syncfs of /mnt/t", Limit: 50 * time.Millisecond, Consequence: unmount.ConsequenceUnsynced},
			"syncfs of /mnt/t did not return within 50ms; abandoned (the call stays blocked in the kernel until the server answers or the connection is aborted): written data may not be on disk"},
		{unmount.UmountAbandonedGone{Mountpoint: "/mnt/t", Limit: time.Second},
			"umount2 of /mnt/t did not return within 1s: the mount is gone from the namespace (verified by statmount), the filesystem's shutdown (its last writeback) still waits on the server"},
		{unmount.ProbeFinding{Server: timedOut, NotAnswering: true},
			"probe: the server is not answering: statfs of /mnt/t did not return within 1s; data not yet written cannot be synced"},
		{unmount.CannotCutOff{Cause: unmount.CutCause{Kind: unmount.CauseDState, Count: 2}, Abort: unmount.Abort{FSType: "ext4"}},
			"2 holders in D state: nothing in userspace can cut ext4 off what it waits on; holders blocked on the server stay so until it answers"},
		{unmount.FuseConnAborted{Cause: unmount.CutCause{Kind: unmount.CauseRevokeHung, Who: cat}, Conn: 102, Dir: "/sys/fs/fuse/connections"},
			"pid 10 (cat) could not be revoked in time: aborted FUSE connection 102 (/sys/fs/fuse/connections/102/abort): every request now fails at once (ENOTCONN), blocked callers return; holders keep running, their I/O on the mount fails"},
		{unmount.FuseAbortFailed{Cause: unmount.CutCause{Kind: unmount.CauseStopped}, Conn: 7}, "the server stopped answering: aborting FUSE connection 7 failed"},
		{unmount.ForceUnreachable{}, "the server is not answering: umount2(MNT_FORCE) cannot reach the mount under the over-mount fence; holders blocked on the server stay so until it answers"},
		{unmount.ForceAborted{Mountpoint: "/stash/mnt", Gone: true},
			"the server is not answering: umount2(MNT_FORCE) of /stash/mnt aborted the requests to the server (umount_begin) and, nothing holding the mount, unmounted it (verified by statmount)"},
		{unmount.ForceFailed{Mountpoint: "/mnt/t"}, "the server is not answering: umount2(MNT_FORCE) of /mnt/t failed"},
		{unmount.BeneathRefused{}, "mount beneath refused (EINVAL); over-mounting instead"},
		{unmount.Fenced{Target: "/mnt/t", RealPath: "/stash/mnt"},
			"fenced by beneath-swap: /mnt/t now shows an empty read-only tmpfs (new opens: ENOENT, creates: EROFS); the mount itself is at /stash/mnt"},
		{unmount.Fenced{Over: true, File: true, Target: "/mnt/f"}, "fenced by over-mount (the parent is shared): an empty read-only file covers /mnt/f and its peers"},
		{unmount.Synced{Step: unmount.SyncfsDone}, "syncfs: data written so far is on disk"},
		{unmount.RollbackFailed{Fence: fs, Aborted: true},
			"rolling back the fence failed: /mnt/t shows an empty read-only tmpfs (the fence, mount 41); the filesystem is still mounted at /stash/mnt (mount 40); the connection to the server was aborted and stays so (I/O on the mount fails)"},
		{back, "fence removed: the mount (40) is back at /mnt/t; 2 holders were revoked and 1 signalled before that and stay so; 1 release done stay so" +
			"; pid 10 (cat) was left inside close(fd 5): the tracer process restores it when the call returns" +
			"; the revoke of pid 11 (sh) in mount namespace mnt:[4026532000] was under way when the run was cancelled: the tracer process finishes it (what it took stays taken) or, had it not begun, leaves the process untouched" +
			"; the connection to the server was aborted and stays so (I/O on the mount fails)"},
		{unmount.DetachedNoFence{MountID: 500}, "no fence: detached mount 500 is in no mount table, so no path can open anything on it; no syncfs either (no path to it): the kernel syncs the filesystem when it lets go of it"},
		{unmount.DetachedReleased{MountID: 500}, "no process holds detached mount 500 any more (verified by a scan): the kernel releases it"},
		{unmount.StackedUnmounted{FSType: "overlay", Mountpoint: "/merged"}, "the overlay at /merged (it uses the mount as a layer) unmounted first"},
		{unmount.OverFenceRemoved{}, "fence removed (over-mount); unmounting the mount beneath it"},
		{unmount.SubmountUnmounted{Mountpoint: "/mnt/t/sub"}, "submount /mnt/t/sub unmounted"},
		{unmount.RealUnmounted{Path: "/stash/mnt"}, "umount2 of /stash/mnt (not lazy): unmounted, verified by statmount"},
		{unmount.FenceLeft{Target: "/mnt/t"}, "the filesystem is unmounted, but removing the fence failed: /mnt/t still shows an empty read-only tmpfs"},
		{unmount.FenceRemoved{Target: "/mnt/t"}, "fence removed: /mnt/t is a plain directory again"},
		{unmount.ForceIgnoredFS{FSType: "tmpfs"}, "MNT_FORCE is ignored by tmpfs: a busy mount stays busy; --staged revokes its holders instead"},
		{unmount.PlainUnmounted{Flag: "MNT_DETACH", Mountpoint: "/mnt/t"}, "umount2(MNT_DETACH) of /mnt/t: gone (verified by statmount)"},
		{unmount.ExpireAttempt{Attempt: 3, Step: unmount.ExpireCleared, MarkedAt: at, Cleared: 2},
			"attempt 3: the mark set at 03:04:05 was cleared by an access since (2 times so far); marked again"},
		{unmount.ExpireAttempt{Attempt: 2, Step: unmount.ExpireGone, MarkedAt: at}, "attempt 2: untouched and still marked since 03:04:05, so umount2(MNT_EXPIRE) unmounted it"},
		{unmount.ReleaseNotDone{Release: unmount.Release{Kind: unmount.ReleaseSwap, Name: "/mnt/t/swap"}, SwapCovered: true},
			"not done: swapoff /mnt/t/swap (its pages move back to memory): under the over-mount fence the swap file cannot be named (swapoff(2) takes a path)"},
		{unmount.CopyGoesAlong{Mountpoint: "/mnt/t", Namespace: 4026532000},
			"its copy at /mnt/t in mount namespace mnt:[4026532000] goes with our unmount (it propagates there); its holders there are revoked like ours"},
		{unmount.CopyBusyLazy{}, "the copy is busy now; unmounting it lazily instead"},
		{unmount.Released{Release: loop}, "done: detach loop device /dev/loop7 (its backing file /img)"},
		{unmount.ReleaseFailed{Release: loop}, "failed: detach loop device /dev/loop7 (its backing file /img)"},
		{unmount.JournalFailed{ErrText: "no space left on device"}, "the journal could not be written; it misses the lines from here on: no space left on device"},
		{unmount.NothingChanged{}, "nothing changed"},
		{unmount.NothingDone{}, "nothing done"},
		{unmount.CouldNotFence{Aborted: true}, "could not fence; the connection to the server was aborted and stays so (I/O on the mount fails)"},
		{unmount.Failed{Step: unmount.PlainUnmounted{Flag: "MNT_FORCE", Mountpoint: "/mnt/t", Failed: true}, ErrText: "device busy"},
			"umount2(MNT_FORCE) of /mnt/t failed: device busy"},
		{unmount.CancelledEarly{}, "cancelled before anything changed"},
		{unmount.PlainGone{Mountpoint: "/mnt/t", Lazy: true, Holders: 1}, "/mnt/t is unmounted (detached: the filesystem lives on until its 1 holder let go)"},
		{unmount.Expired{Mountpoint: "/mnt/t", How: unmount.ExpiredNotIdle, Timeout: time.Minute}, "/mnt/t did not become idle within 1m0s"},
		{unmount.ForcedGone{Mountpoint: "/mnt/t"}, "/mnt/t is unmounted (verified): umount2(MNT_FORCE) cut it off its dead server, and nothing held it"},
		{unmount.RolledBack{Why: unmount.RollbackWhy{Timeout: timeout}, Done: &unmount.FenceRolledBack{MountID: 40, Target: "/mnt/t", AsItWas: true}},
			"1 holder still held the mount after 2s: pid 10 (cat) by fd+cwd, refused: " + RefusalText(unmount.RefusalExe) + "; fence removed: the mount (40) is back at /mnt/t; everything is as it was"},
		{unmount.RolledBack{Why: unmount.RollbackWhy{Cancelled: true, Drain: true}, Failed: &unmount.RollbackFailed{Fence: unmount.FenceState{Over: true, Target: "/mnt/t", FenceID: 41, MountID: 40}}},
			"cancelled during the drain; rolling back the fence failed: an empty read-only tmpfs (mount 41) covers /mnt/t, the filesystem is still mounted beneath it (mount 40)"},
		{unmount.FenceStays{Target: "/mnt/t"}, "unmounted; the fence is left at /mnt/t"},
		{unmount.StagedGone{Mountpoint: "/mnt/t", Revoked: 1, Released: 2, CutOff: true, NotReleased: notReleased},
			"NOT released: detach loop device /dev/loop7 (its backing file /img): device busy; /mnt/t is unmounted (verified): 1 holder revoked, 0 signalled; the server was not answering: the connection was cut, data not yet written is lost, 2 releases"},
		{unmount.DetachedEnd{MountID: 500, Gone: true, Revoked: 2}, "detached mount 500 is gone (no holder left, verified): 2 holders revoked, 0 signalled"},
		{unmount.DetachedEnd{MountID: 500}, "cancelled; nothing changed"},
	}
}

// TestRunNotesRendered: every run note has words, and they are today's.
// A note type in unmount/notes_run.go missing from runNotes fails, so a
// new note cannot reach the terminal as NoteText's "%T" fallback.
func TestRunNotesRendered(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range runNotes() {
		name := reflect.TypeOf(tc.n).Name()
		seen[name] = true
		if got := NoteText(tc.n); got != tc.want {
			t.Errorf("%s:\n got  %q\n want %q", name, got, tc.want)
		}
		if k := NoteKind(tc.n); k == "" || !strings.EqualFold(strings.ReplaceAll(k, "-", ""), name) {
			t.Errorf("%s: kind %q", name, k)
		}
	}
	for _, name := range runNoteTypes(t) {
		if !seen[name] {
			t.Errorf("unmount.%s is a run note with no case in runNotes (and maybe no words in runNoteText)", name)
		}
	}
}

// runNoteTypes are the types in unmount/notes_run.go with a note method.
func runNoteTypes(t *testing.T) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "../../unmount/notes_run.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "note" || fn.Recv == nil {
			continue
		}
		if id, ok := fn.Recv.List[0].Type.(*ast.Ident); ok {
			names = append(names, id.Name)
		}
	}
	if len(names) < 50 {
		t.Fatalf("found %d note types in notes_run.go: %v", len(names), names)
	}
	return names
}

// TestNoteKind: the JSON "note" is the type's name in kebab case, an
// acronym kept one word.
func TestNoteKind(t *testing.T) {
	for _, tc := range []struct {
		n    unmount.Note
		want string
	}{
		{unmount.FuseConnAborted{}, "fuse-conn-aborted"},
		{unmount.ForceIgnoredFS{}, "force-ignored-fs"},
		{unmount.DrainLeft{}, "drain-left"},
		{nil, ""},
	} {
		if got := NoteKind(tc.n); got != tc.want {
			t.Errorf("NoteKind(%T) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestRunNotesEscapedOnce (issue 11 point 1), the twin of
// TestNamesEscapedOnce for a run's events: a mount point and a process
// name with a newline and a colour escape, carried raw by the notes, show
// escaped once in the event's text and the result line, and exactly in
// its JSON line.
func TestRunNotesEscapedOnce(t *testing.T) {
	w := unmount.Who{PID: 4242, Comm: hostileComm}
	for _, ev := range []unmount.Event{
		{Stage: unmount.StageUnmount, Note: unmount.SubmountUnmounted{Mountpoint: hostileMount}},
		{Stage: unmount.StageFence, Note: unmount.Fenced{Target: hostileMount, RealPath: hostileMount + "/s"}},
		{Stage: unmount.StageRevoke, PID: 4242, Note: unmount.HolderRevoked{Who: w, Did: &unmount.Revoked{Closed: []int{5}}}},
		{Stage: unmount.StageDrain, PID: 4242, Note: unmount.HolderRestored{Who: w, Restore: unmount.Restore{PID: 4242, Syscall: "close", Arg: "fd 5", Did: &unmount.Revoked{Closed: []int{5}, Threads: 1}}}},
		{Stage: unmount.StageDrain, Note: unmount.DrainLeft{Left: []unmount.LeftHolder{{Who: w, Kinds: []string{"fd"}, State: unmount.HolderState{State: unmount.StatusPending}}}}},
		{Stage: unmount.StageRevoke, Note: unmount.ForceFailed{Cause: unmount.CutCause{Kind: unmount.CauseRevokeHung, Who: w}, Mountpoint: hostileMount},
			Err: errors.New("umount2: device busy")},
		{Stage: unmount.StageDone, Note: unmount.StagedGone{Mountpoint: hostileMount},
			Result: &unmount.Result{Gone: true, Outcome: unmount.StagedGone{Mountpoint: hostileMount}}},
	} {
		kind := NoteKind(ev.Note)
		text := EventText(ev)
		var want []string
		if strings.Contains(NoteText(ev.Note), shownMount) {
			want = append(want, shownMount)
		}
		if strings.Contains(NoteText(ev.Note), shownComm) {
			want = append(want, shownComm)
		}
		if len(want) == 0 {
			t.Fatalf("%s names nothing hostile: %s", kind, text)
		}
		checkShownOnce(t, kind+" text", text, want...)
		doc, err := EventJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		// "what" is the sentence as the terminal shows it (names escaped
		// once, as in the text), and the line carries no raw control.
		var got struct{ Note, What string }
		if err := json.Unmarshal(doc, &got); err != nil {
			t.Fatal(err)
		}
		if got.Note != kind || got.What != EventWhat(ev) || bytes.ContainsAny(doc, "\n\x1b") {
			t.Errorf("%s JSON: %s", kind, doc)
		}
		if ev.Result != nil {
			checkShownOnce(t, kind+" result", ResultSummary(*ev.Result), shownMount)
		}
	}
}

// TestPendingText: what mounttop leaves unfinished, one line each, a
// holder's command escaped once.
func TestPendingText(t *testing.T) {
	for _, tc := range []struct {
		p    unmount.Pending
		want string
	}{
		{unmount.Pending{Kind: unmount.PendingCall, CallText: "statfs of /mnt/t", For: 2400 * time.Millisecond},
			"statfs of /mnt/t: blocked in the kernel for 2s (abandoned)"},
		{unmount.Pending{Kind: unmount.PendingRevoke, Who: unmount.Who{PID: 10, Comm: "cat"}, For: time.Second},
			"revoke of pid 10 (cat): in progress for 1s (ptrace: seizing its threads or injecting into them)"},
		{unmount.Pending{Kind: unmount.PendingHeld, Who: unmount.Who{PID: 10}, Tracer: 99, For: 3 * time.Second},
			"the tracer process (pid 99) holds pid 10: a revoke under way for 3s; it finishes the revoke or restores the process and releases it on its own"},
		{unmount.Pending{Kind: unmount.PendingHeld, Who: unmount.Who{PID: 10}, Tracer: 99, InsideText: "close(fd 7)", For: 0},
			"the tracer process (pid 99) holds pid 10: left inside close(fd 7) for 0s; it finishes the revoke or restores the process and releases it on its own"},
	} {
		if got := PendingText(tc.p); got != tc.want {
			t.Errorf("PendingText(%+v)\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
	lines := PendingLines([]unmount.Pending{{Kind: unmount.PendingRevoke, Who: unmount.Who{PID: 4242, Comm: hostileComm}}})
	if len(lines) != 1 {
		t.Fatalf("PendingLines = %q", lines)
	}
	checkShownOnce(t, "pending revoke", lines[0], shownComm)
}

// TestHolderNamespaceJSON: a holder of a copy in another mount namespace
// carries the namespace's inode; the JSON "namespace" field and the text
// say mnt:[N] as before.
func TestHolderNamespaceJSON(t *testing.T) {
	w := unmount.Who{PID: 11, Comm: "sh", Namespace: 4026532000}
	ev := unmount.Event{Stage: unmount.StageRevoke, PID: 11, Note: unmount.HolderRevoked{Who: w, Did: &unmount.Revoked{Closed: []int{4}}},
		Holders: []unmount.HolderState{{PID: 11, Comm: "sh", State: unmount.StatusRevoked, Namespace: 4026532000}}}
	doc, err := EventJSON(ev)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), `"namespace":"mnt:[4026532000]"`) {
		t.Errorf("JSON without the namespace: %s", doc)
	}
	if got, want := EventWhat(ev), "pid 11 (sh) in mount namespace mnt:[4026532000]: closed fd 4"; got != want {
		t.Errorf("EventWhat = %q, want %q", got, want)
	}
}
