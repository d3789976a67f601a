package unmount

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/unmount/revoke"
)

// TestEventSequence drives Run over the fake System and checks, for each
// scenario, the stages of the events, the system calls in order (scans
// left out) and the result.
func TestEventSequence(t *testing.T) {
	exe := inspect.Use{Kind: inspect.UseExe, FD: -1}
	cases := []struct {
		name       string
		mode       Mode
		policy     Policy
		shared     bool
		setup      func(f *fakeSys, cancel context.CancelFunc)
		holders    [][]inspect.Holder
		timeout    time.Duration
		grace      time.Duration
		wantStages string
		wantCalls  []string
		wantGone   bool
		wantErr    error
		wantWhat   string // a substring of some event's What
		wantNot    string // said by no event
	}{
		{
			name: "staged close: fence, syncfs, revoke, drain empty, unmount, fence removed",
			mode: ModeStaged, policy: PolicyClose,
			holders:    [][]inspect.Holder{{holder(10, "cat", fdUse(3))}, {holder(10, "cat", fdUse(3), inspect.Use{Kind: inspect.UseCwd, FD: -1})}, nil},
			wantStages: "plan fence fence revoke drain unmount unmount done",
			wantCalls:  []string{"fence beneath /mnt/t", "syncfs", "revoke 10 put a placeholder on fd 3; cwd into an empty directory (1 thread)", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:   true,
			wantWhat:   "pid 10 (cat): put a placeholder on fd 3; moved the cwd of 1 thread into an empty read-only directory (1 thread stopped for 0s)",
		},
		{
			name: "straggler reopening through its cwd is revoked again in the drain",
			mode: ModeStaged, policy: PolicyClose,
			holders:    [][]inspect.Holder{{holder(10, "cat", fdUse(3))}, {holder(10, "cat", fdUse(3))}, {holder(10, "cat", fdUse(4))}, nil},
			wantStages: "plan fence fence revoke drain drain drain unmount unmount done",
			wantCalls:  []string{"fence beneath /mnt/t", "syncfs", "revoke 10 put a placeholder on fd 3", "revoke 10 put a placeholder on fd 4", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:   true,
		},
		{
			name: "shared parent: over-mount fence, removed before the real unmount",
			mode: ModeStaged, policy: PolicyClose, shared: true,
			wantStages: "plan fence fence revoke drain unmount unmount done",
			wantCalls:  []string{"fence over /mnt/t", "syncfs", "remove-fence", "umount2 /mnt/t NOFOLLOW"},
			wantGone:   true,
		},
		{
			name: "mount beneath refused with EINVAL: falls back to the over-mount",
			mode: ModeStaged, policy: PolicyClose,
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.fenceErr = []error{&Error{Op: "fence: mount beneath", Err: unix.EINVAL}}
			},
			wantStages: "plan fence fence fence revoke drain unmount unmount done",
			wantCalls:  []string{"fence beneath /mnt/t", "fence over /mnt/t", "syncfs", "remove-fence", "umount2 /mnt/t NOFOLLOW"},
			wantGone:   true,
		},
		{
			name: "cancel before revoke rolls the fence back",
			mode: ModeStaged, policy: PolicyClose,
			holders: [][]inspect.Holder{{holder(10, "cat", fdUse(3))}},
			setup: func(f *fakeSys, cancel context.CancelFunc) {
				f.onSyncfs = cancel
			},
			wantStages: "plan fence fence rollback done",
			wantCalls:  []string{"fence beneath /mnt/t", "syncfs", "rollback"},
			wantErr:    ErrCancelled,
			wantWhat:   "everything is as it was",
		},
		{
			name: "exe on the mount under close: refused, not signalled; timeout rolls back",
			mode: ModeStaged, policy: PolicyClose, timeout: 30 * time.Millisecond,
			holders:    [][]inspect.Holder{{holder(11, "victim", exe)}},
			wantStages: "plan fence fence drain drain",
			wantCalls:  []string{"fence beneath /mnt/t", "syncfs", "rollback"},
			wantErr:    ErrTimeout,
			wantWhat:   "its executable is on the mount",
		},
		{
			// The pidfd is opened once, from the plan, before anything
			// changes; both signals go through it.
			name: "exe on the mount under signal: SIGTERM, then SIGKILL after the grace",
			mode: ModeStaged, policy: PolicySignal, grace: 3 * time.Millisecond,
			holders:    append(repeat(20, holder(11, "victim", exe)), nil),
			wantStages: "plan fence fence revoke",
			wantCalls:  []string{"pidfd 11", "fence beneath /mnt/t", "syncfs", "signal 11 SIGTERM", "signal 11 SIGKILL", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:   true,
		},
		{
			// The pid of the holder goes to another process that holds
			// the mount too (another start time in the scan): that one
			// gets a pidfd of its own and its own SIGTERM first.
			name: "signal: a holder's pid reused by another holder",
			mode: ModeStaged, policy: PolicySignal, grace: 3 * time.Millisecond,
			holders: append(append([][]inspect.Holder{{started(holder(11, "victim", exe), 100)}, {started(holder(11, "victim", exe), 100)}},
				repeat(20, started(holder(11, "other", exe), 200))...), nil),
			wantStages: "plan fence fence revoke",
			wantCalls: []string{"pidfd 11", "fence beneath /mnt/t", "syncfs", "signal 11 SIGTERM",
				"pidfd 11", "signal 11 SIGTERM", "signal 11 SIGKILL", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone: true,
		},
		{
			name: "traced holder: revoke fails, reported with the reason",
			mode: ModeStaged, policy: PolicyClose, timeout: 30 * time.Millisecond,
			holders: [][]inspect.Holder{{holder(12, "strace-d", fdUse(5))}},
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.revokeErr[12] = errors.New("already traced by another process")
			},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "revoke 12 put a placeholder on fd 5", "rollback"},
			wantErr:   ErrTimeout,
			wantWhat:  "not revoked: already traced",
		},
		{
			name: "a holder that did not stop (D state) is tried again in the drain",
			mode: ModeStaged, policy: PolicyClose,
			holders: append(repeat(3, holder(13, "dd", fdUse(5))), nil),
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.revokeSeq[13] = []error{transient{errors.New("did not stop in time (uninterruptible sleep?)")}, nil}
			},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "revoke 13 put a placeholder on fd 5", "revoke 13 put a placeholder on fd 5", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  "not revoked: did not stop in time",
		},
		{
			name: "a holder left inside an injected close: the rollback names it, not 'everything is as it was'",
			mode: ModeStaged, policy: PolicyClose, timeout: 30 * time.Millisecond,
			holders: repeat(50, holder(14, "cat", fdUse(5))),
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.revokeErr[14] = &revoke.StuckError{PID: 14, TID: 14, Syscall: "close", Arg: "fd 5", FSType: "fuse.sshfs", Mount: "/mnt/t", After: 10 * time.Second}
			},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "revoke 14 put a placeholder on fd 5", "rollback"},
			wantErr:   ErrTimeout,
			wantWhat:  "pid 14 (cat) was left inside close(fd 5), waiting on the FUSE server (fuse.sshfs on /mnt/t): the tracer process restores it",
			wantNot:   "everything is as it was",
		},
		{
			name: "busy with no process holder: the drain retries the unmount",
			mode: ModeStaged, policy: PolicyClose,
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.umountErr["/stash/mnt"] = []error{unix.EBUSY}
			},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "umount2 /stash/mnt NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  "kernel holder",
		},
		{
			name: "lazy", mode: ModeLazy,
			holders:    [][]inspect.Holder{{holder(10, "cat", fdUse(3))}},
			wantStages: "plan unmount done",
			wantCalls:  []string{"umount2 /mnt/t DETACH|NOFOLLOW"},
			wantGone:   true,
			wantWhat:   "lives on until its 1 holder let go",
		},
		{
			name:    "force on tmpfs, busy: says it is ignored, names the holder, points to --staged",
			mode:    ModeForce,
			holders: [][]inspect.Holder{{holder(10, "cat", fdUse(3))}},
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.umountErr["/mnt/t"] = []error{unix.EBUSY}
			},
			wantStages: "plan unmount unmount done",
			wantCalls:  []string{"umount2 /mnt/t FORCE|NOFOLLOW"},
			wantErr:    unix.EBUSY,
			wantWhat:   "MNT_FORCE is ignored by tmpfs",
		},
		{
			name: "the path names another mount now: refused, no umount2",
			mode: ModeLazy,
			setup: func(f *fakeSys, _ context.CancelFunc) {
				f.addMount("/mnt/t", "tmpfs", false)
			},
			wantStages: "plan unmount done",
			wantCalls:  nil,
			wantErr:    ErrChanged,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.addMount("/mnt", "ext4", tc.shared)
			target := f.addMount("/mnt/t", "tmpfs", false)
			f.target = target.ID
			f.holders = tc.holders
			u := New(f)
			p := Plan{Target: inspect.Mount{ID: target.ID}, Mode: tc.mode, Policy: tc.policy,
				Interval: time.Millisecond, Timeout: tc.timeout, Grace: tc.grace}
			if p.Timeout == 0 {
				p.Timeout = 5 * time.Second
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := u.Prepare(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(f, cancel)
			}
			evs := collect(u.Run(ctx, p))
			got := stages(evs)
			if tc.wantStages != "" && !strings.HasPrefix(got, tc.wantStages) {
				t.Errorf("stages = %q, want prefix %q", got, tc.wantStages)
			}
			last := evs[len(evs)-1]
			if last.Stage != StageDone || last.Result == nil {
				t.Fatalf("last event %v, want done with a result", last)
			}
			var calls []string
			for _, c := range f.Calls() {
				if c != "scan" {
					calls = append(calls, c)
				}
			}
			if strings.Join(calls, "\n") != strings.Join(tc.wantCalls, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(tc.wantCalls, "\n  "))
			}
			if last.Result.Gone != tc.wantGone {
				t.Errorf("gone = %v, want %v (%s)", last.Result.Gone, tc.wantGone, summaryOf(last.Result))
			}
			if tc.wantErr != nil && !errors.Is(last.Err, tc.wantErr) {
				t.Errorf("final error %v, want %v", last.Err, tc.wantErr)
			}
			if tc.wantErr == nil && last.Err != nil {
				t.Errorf("final error %v", last.Err)
			}
			if tc.wantWhat != "" {
				found := false
				for _, ev := range evs {
					if strings.Contains(EventWords(ev), tc.wantWhat) || ev.Err != nil && strings.Contains(ev.Err.Error(), tc.wantWhat) {
						found = true
					}
				}
				if !found {
					t.Errorf("no event says %q; events:\n%s", tc.wantWhat, dumpEvents(evs))
				}
			}
			for _, ev := range evs {
				if tc.wantNot != "" && strings.Contains(EventWords(ev), tc.wantNot) {
					t.Errorf("event %s says %q: %s", ev.Stage, tc.wantNot, EventWords(ev))
				}
			}
			for i, ev := range evs {
				if ev.At.IsZero() || ev.Mount == 0 {
					t.Errorf("event %d (%s) lacks At or Mount", i, ev.Stage)
				}
			}
		})
	}
}

// started is h with the start time ticks (inspect.Holder.StartTicks).
func started(h inspect.Holder, ticks uint64) inspect.Holder {
	h.StartTicks = ticks
	return h
}

func repeat(n int, h inspect.Holder) [][]inspect.Holder {
	out := make([][]inspect.Holder, n)
	for i := range out {
		out[i] = []inspect.Holder{h}
	}
	return out
}

func dumpEvents(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("  " + ev.Stage.String() + ": " + EventWords(ev))
		if ev.Err != nil {
			b.WriteString(" [err: " + ev.Err.Error() + "]")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestHolderPicture checks that Holders is sent when the picture changes,
// and that the drain reports Remaining.
func TestHolderPicture(t *testing.T) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "tmpfs", false)
	f.target = target.ID
	exe := inspect.Use{Kind: inspect.UseExe, FD: -1}
	f.holders = [][]inspect.Holder{
		{holder(10, "cat", fdUse(3)), holder(11, "victim", exe)},
		{holder(10, "cat", fdUse(3)), holder(11, "victim", exe)},
		{holder(11, "victim", exe)},
	}
	u := New(f)
	p, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Interval: time.Millisecond, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Holders) != 2 || p.Holders[1].Refusal != RefusalExe || p.Holders[0].Kind != ActionRevoke ||
		!reflect.DeepEqual(p.Holders[0].Targets.FDs, []int{3}) || !p.Holders[0].Targets.Placeholder {
		t.Fatalf("plan holders: %+v", p.Holders)
	}
	evs := collect(u.Run(context.Background(), p))
	if got := evs[0].Holders; len(got) != 2 || got[0].State != "pending" || got[1].State != "refused" {
		t.Fatalf("plan picture: %+v", got)
	}
	var drains, pictures int
	for _, ev := range evs {
		if ev.Stage == StageDrain {
			drains++
			if ev.Remaining != 1 {
				t.Errorf("drain remaining = %d, want 1 (%s)", ev.Remaining, EventWords(ev))
			}
		}
		if ev.Holders != nil {
			pictures++
		}
	}
	if drains < 2 {
		t.Errorf("only %d drain events", drains)
	}
	if pictures > 4 {
		t.Errorf("holders picture sent %d times although it changed at most 3 times", pictures)
	}
	last := evs[len(evs)-1]
	if len(last.Result.Remaining) != 1 || last.Result.Remaining[0].PID != 11 {
		t.Errorf("remaining: %+v", last.Result.Remaining)
	}
}

// TestPrepareRefusals: the root mount, mounttop's own exe or cwd, submounts
// without Recursive, expire with submounts.
// TestPlanWarningsEscaped: the scan's warnings are inspect's raw texts (a
// mount point as the kernel wrote it); the plan's warnings, printed as
// they are by umount's plan line and the view, carry one escaped.
func TestPlanWarningsEscaped(t *testing.T) {
	f := newFake()
	target := f.addMount("/mnt/t", "tmpfs", false)
	f.scanWarnings = []inspect.Warning{{What: "pids 7 hold a mount of 0:99 (tmpfs, as at /mnt/a\nb\x1b]0;pwned\x07) that is in no mount table"}}
	p, err := New(f).Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeLazy})
	if err != nil {
		t.Fatal(err)
	}
	want := `the scan was partial (1 warnings, first: pids 7 hold a mount of 0:99 (tmpfs, as at /mnt/a\nb\e]0;pwned\x07) that is in no mount table)`
	found := false
	for _, w := range p.Warnings {
		found = found || WarningWords(w) == want
	}
	if !found {
		t.Fatalf("plan warnings %+v lack %+v", p.Warnings, want)
	}
	if what := PlanWords(&p); strings.ContainsAny(what, "\n\x1b\x07") {
		t.Fatalf("the plan line carries a raw control: %q", what)
	}
}

func TestPrepareRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fakeSys, target inspect.Mount) (inspect.MountID, Plan)
		want  string
	}{
		{"root", func(f *fakeSys, _ inspect.Mount) (inspect.MountID, Plan) { return 1, Plan{Mode: ModeLazy} }, "root of this mount namespace"},
		{"own exe", func(f *fakeSys, m inspect.Mount) (inspect.MountID, Plan) {
			f.selfExe = m.ID
			return m.ID, Plan{Mode: ModeStaged}
		}, "own executable"},
		{"own cwd on a submount", func(f *fakeSys, m inspect.Mount) (inspect.MountID, Plan) {
			f.selfCwd = f.addMount("/mnt/t/sub", "tmpfs", false).ID
			return m.ID, Plan{Mode: ModeLazy, Recursive: true}
		}, "own working directory"},
		{"submounts", func(f *fakeSys, m inspect.Mount) (inspect.MountID, Plan) {
			f.addMount("/mnt/t/sub", "tmpfs", false)
			return m.ID, Plan{Mode: ModeStaged}
		}, "submounts: /mnt/t/sub"},
		{"expire with submounts", func(f *fakeSys, m inspect.Mount) (inspect.MountID, Plan) {
			f.addMount("/mnt/t/sub", "tmpfs", false)
			return m.ID, Plan{Mode: ModeExpire, Recursive: true}
		}, "never idle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			target := f.addMount("/mnt/t", "tmpfs", false)
			id, p := tc.setup(f, target)
			p.Target.ID = id
			_, err := New(f).Prepare(context.Background(), p)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRefused saying %q", err, tc.want)
			}
			for _, c := range f.Calls() {
				if c != "scan" {
					t.Errorf("a refused plan made a call: %s", c)
				}
			}
		})
	}
}

// TestExpireSequence: EAGAIN marks, a second attempt unmounts; EAGAIN twice
// means the mark was cleared by an access; expire-when-idle re-arms through
// EBUSY until it goes.
func TestExpireSequence(t *testing.T) {
	setup := func() (*fakeSys, inspect.Mount) {
		f := newFake()
		m := f.addMount("/mnt/t", "tmpfs", false)
		return f, m
	}
	t.Run("two-step", func(t *testing.T) {
		f, m := setup()
		f.umountErr["/mnt/t"] = []error{unix.EAGAIN}
		book := OpenExpiryBook("")
		u := New(f, WithExpiryBook(book))
		p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeExpire})
		if err != nil {
			t.Fatal(err)
		}
		evs := collect(u.Run(context.Background(), p))
		last := evs[len(evs)-1]
		if !last.Result.Marked || last.Result.Gone || stages(evs) != "plan expire done" {
			t.Fatalf("first run: %s %+v", stages(evs), last.Result)
		}
		if mk, ok := book.Get(m.ID); !ok || mk.Attempts != 1 {
			t.Fatalf("book after the first attempt: %+v %v", mk, ok)
		}
		evs = collect(u.Run(context.Background(), p))
		last = evs[len(evs)-1]
		if !last.Result.Gone {
			t.Fatalf("second run: %+v", last.Result)
		}
		if _, ok := book.Get(m.ID); ok {
			t.Error("the mark is still in the book after the mount went")
		}
	})
	t.Run("cleared by an access", func(t *testing.T) {
		f, m := setup()
		f.umountErr["/mnt/t"] = []error{unix.EAGAIN, unix.EAGAIN}
		u := New(f)
		res1, err := u.Expire(context.Background(), &m)
		if err != nil || !res1.Marked || res1.Cleared {
			t.Fatalf("first: %+v %v", res1, err)
		}
		res2, err := u.Expire(context.Background(), &m)
		if err != nil || !res2.Marked || !res2.Cleared || res2.Mark.Cleared != 1 || res2.PrevMarkedAt.IsZero() {
			t.Fatalf("second: %+v %v", res2, err)
		}
	})
	t.Run("when idle", func(t *testing.T) {
		f, m := setup()
		f.target = m.ID
		f.holders = [][]inspect.Holder{nil, {holder(10, "cat", fdUse(3))}, nil}
		f.umountErr["/mnt/t"] = []error{unix.EBUSY, unix.EAGAIN}
		u := New(f)
		p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeExpire, ExpireWhenIdle: true, Interval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		evs := collect(u.Run(context.Background(), p))
		if got := stages(evs); got != "plan expire expire expire done" {
			t.Fatalf("stages %q\n%s", got, dumpEvents(evs))
		}
		if !strings.Contains(EventWords(evs[1]), "held by pid 10 (cat)") || !evs[len(evs)-1].Result.Gone {
			t.Fatalf("events:\n%s", dumpEvents(evs))
		}
	})
	t.Run("never walks the mount point", func(t *testing.T) {
		f, m := setup()
		walker := &noWalk{fakeSys: f, t: t}
		if _, err := New(walker).Expire(context.Background(), &m); err != nil {
			t.Fatal(err)
		}
	})
}

// noWalk fails the test if the expire path statx()es a path.
type noWalk struct {
	*fakeSys
	t *testing.T
}

func (n *noWalk) MountIDAt(a *Anchor) (inspect.MountID, error) {
	n.t.Errorf("the expire path walked %s (that clears the mark)", a.Path())
	return n.fakeSys.MountIDAt(a)
}

// TestErrorWords: every failure explains itself in the operator's words.
func TestErrorWords(t *testing.T) {
	hs := []inspect.Holder{holder(10, "cat\x1b[31m"), holder(11, "bash")}
	cases := []struct {
		err  *Error
		want []string
	}{
		{&Error{Op: "umount", Target: "/mnt/a b", Err: unix.EBUSY, Holders: hs}, []string{`umount "/mnt/a b": busy (EBUSY)`, `pid 10 (cat\e[31m), pid 11 (bash)`}},
		{&Error{Op: "umount", Target: "/mnt/x", Err: unix.EINVAL}, []string{"not a mount point"}},
		{&Error{Op: "umount", Target: "/mnt/x", Err: unix.EPERM}, []string{"needs root"}},
		{&Error{Op: "umount", Target: "/mnt/x\n", Err: unix.EBUSY, Submounts: []inspect.Mount{{Mountpoint: "/mnt/x\n/s"}}}, []string{`/mnt/x\n: busy`, `submounts: /mnt/x\n/s`}},
	}
	for _, tc := range cases {
		msg := tc.err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q lacks %q", msg, w)
			}
		}
		if strings.ContainsAny(msg, "\n\x1b") {
			t.Errorf("%q is not terminal-safe", msg)
		}
		if !errors.Is(tc.err, tc.err.Err) {
			t.Errorf("errors.Is(%v) fails", tc.err.Err)
		}
	}
}

func TestDefaultJournalPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		uid  int
		env  map[string]string
		want string
	}{
		{0, map[string]string{"XDG_STATE_HOME": "/x"}, "/var/log/mounttop/journal.jsonl"},
		{1000, map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/home/u"}, "/x/mounttop/journal.jsonl"},
		{1000, map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/mounttop/journal.jsonl"},
		{1000, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/mounttop/journal.jsonl"},
	}
	for _, tc := range cases {
		if got := DefaultJournalPath(tc.uid, env(tc.env)); got != tc.want {
			t.Errorf("uid %d %v: %s, want %s", tc.uid, tc.env, got, tc.want)
		}
	}
	if got := DefaultExpiryPath("/var/log/mounttop/journal.jsonl"); got != "/var/log/mounttop/expire.json" {
		t.Errorf("expiry path %s", got)
	}
}

func TestForceIgnored(t *testing.T) {
	for fstype, ignored := range map[string]bool{"tmpfs": true, "ext4": true, "xfs": true, "nfs": false, "nfs4": false,
		"cifs": false, "9p": false, "ceph": false, "fuse": false, "fuse.bindfs": false, "fuse.sshfs": false} {
		if got := ForceIgnored(fstype); got != ignored {
			t.Errorf("ForceIgnored(%s) = %v", fstype, got)
		}
	}
}

// TestExpireWhenIdleGoneMeanwhile: a mount unmounted by someone else
// between two attempts ends the loop as gone.
func TestExpireWhenIdleGoneMeanwhile(t *testing.T) {
	f := newFake()
	m := f.addMount("/mnt/t", "tmpfs", false)
	f.umountErr["/mnt/t"] = []error{unix.EAGAIN}
	u := New(f)
	p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeExpire, ExpireWhenIdle: true, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch := u.Run(context.Background(), p)
	var evs []Event
	for ev := range ch {
		evs = append(evs, ev)
		if ev.Stage == StageExpire && len(evs) == 2 {
			f.mu.Lock()
			f.dropMount(m.ID)
			f.mu.Unlock()
		}
	}
	last := evs[len(evs)-1]
	if !last.Result.Gone || last.Err != nil || !strings.Contains(dumpEvents(evs), "unmounted by something else") {
		t.Fatalf("events:\n%s", dumpEvents(evs))
	}
}

// A holder left inside an injected close(2) has no fd on the mount any
// more, but the call still holds the file: when the scan then finds no
// holder and the unmount is busy, the drain and the timeout name it
// instead of blaming a kernel holder.
func TestStuckHolderNamedWhenBusy(t *testing.T) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "fuse.sshfs", false)
	f.target = target.ID
	f.holders = [][]inspect.Holder{{holder(14, "cat", fdUse(5))}, {holder(14, "cat", fdUse(5))}, nil} // Prepare, revoke, drain
	u := New(f)
	ctx := context.Background()
	p, err := u.Prepare(ctx, Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Policy: PolicyClose,
		Interval: time.Millisecond, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.revokeErr[14] = transient{&revoke.StuckError{PID: 14, TID: 14, Syscall: "close", Arg: "fd 5", FSType: "fuse.sshfs", Mount: "/mnt/t", After: 10 * time.Second}}
	busy := make([]error, 1000)
	for i := range busy {
		busy[i] = unix.EBUSY
	}
	f.umountErr["/stash/mnt"] = busy
	evs := collect(u.Run(ctx, p))
	last := evs[len(evs)-1]
	if last.Result == nil || !errors.Is(last.Err, ErrTimeout) {
		t.Fatalf("last event %+v, want a timeout", last)
	}
	const stuck = "pid 14 (cat) was left inside close(fd 5), waiting on the FUSE server (fuse.sshfs on /mnt/t)"
	for _, want := range []string{
		"the mount was still busy after 50ms: " + stuck + ", which holds the file until the call returns",
		stuck + ": the tracer process restores it when the call returns",
	} {
		if !strings.Contains(summaryOf(last.Result), want) {
			t.Errorf("summary %q does not say %q", summaryOf(last.Result), want)
		}
	}
	if strings.Contains(summaryOf(last.Result), "everything is as it was") || strings.Contains(summaryOf(last.Result), "a kernel holder") {
		t.Errorf("summary %q", summaryOf(last.Result))
	}
}

// When the tracer process has restored a holder left inside an injected
// close(2), the next pass says so, counts it as revoked and no longer
// names it as stuck; the unmount then goes through.
func TestStuckHolderRestored(t *testing.T) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "fuse.sshfs", false)
	f.target = target.ID
	h := holder(14, "cat", fdUse(5))
	f.holders = [][]inspect.Holder{{h}, {h}, {h}, nil} // Prepare, revoke, the first drain pass, then gone
	u := New(f)
	ctx := context.Background()
	p, err := u.Prepare(ctx, Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Policy: PolicyClose,
		Interval: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.revokeSeq[14] = []error{&revoke.StuckError{PID: 14, TID: 14, Syscall: "close", Arg: "fd 5", FSType: "fuse.sshfs", Mount: "/mnt/t", After: 10 * time.Second}}
	f.restored[14] = Restore{PID: 14, Syscall: "close", Arg: "fd 5", Did: &Revoked{Closed: []int{5}, Threads: 1}}
	evs := collect(u.Run(ctx, p))
	last := evs[len(evs)-1]
	if last.Result == nil || !last.Result.Gone || last.Err != nil {
		t.Fatalf("last event %+v, want the mount gone", last)
	}
	found := false
	for _, ev := range evs {
		if ev.PID == 14 && strings.Contains(EventWords(ev), "pid 14 (cat): process 14 came out of close(fd 5) and was restored and released") {
			found = true
			var st *HolderState
			for i := range ev.Holders {
				if ev.Holders[i].PID == 14 {
					st = &ev.Holders[i]
				}
			}
			if st == nil || st.State != "revoked" {
				t.Errorf("holder picture with the restore: %+v, want pid 14 revoked", ev.Holders)
			}
		}
	}
	if !found {
		t.Errorf("no event says the holder was restored; events:\n%s", dumpEvents(evs))
	}
}
