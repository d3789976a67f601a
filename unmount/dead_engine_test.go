package unmount

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
)

// errs is n copies of err, for a scripted call that keeps failing.
func errs(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// TestDeadServerSequence plays a server that stops answering (the fake's
// Statfs, OpenRoot and Syncfs block until the connection is aborted, and a
// revoke fails as one whose injected close hung) at different moments and
// for each kind of filesystem, and checks the calls the engine makes: the
// abort by fs type (FUSE: the fusectl abort file, or MNT_FORCE without
// fusectl; NFS and CIFS: MNT_FORCE, repeated while holders stay stuck;
// a local filesystem: nothing), before the revoke; no syncfs on a dead
// server; an abandoned call named in an event.
func TestDeadServerSequence(t *testing.T) {
	h := holder(10, "cat", fdUse(3))
	d := h
	d.State = 'D'
	cases := []struct {
		name      string
		fstype    string
		fusectl   bool
		setup     func(f *fakeSys) // before Prepare
		holders   [][]inspect.Holder
		timeout   time.Duration
		wantPlan  []string // substrings of the plan's text
		wantCalls []string
		wantGone  bool
		wantErr   error
		wantWhat  []string // substrings of some event's What
	}{
		{
			name: "FUSE dead before the plan: fusectl abort before the fence, no syncfs", fstype: "fuse.sshfs", fusectl: true,
			setup:     func(f *fakeSys) { f.stop() },
			holders:   [][]inspect.Holder{{h}, {h}, nil},
			wantPlan:  []string{"the server is not answering", "1 request waiting on FUSE connection", "data not yet written cannot be synced", "instead: abort FUSE connection", "skip syncfs"},
			wantCalls: []string{"abort-fuse 102", "fence beneath /mnt/t", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"aborted FUSE connection 102", "the connection was cut"},
		},
		{
			name: "FUSE dead, fusectl not mounted: MNT_FORCE (fuse_umount_begin) before the fence", fstype: "fuse",
			setup: func(f *fakeSys) {
				f.stop()
				f.umountErr["/mnt/t"] = []error{unix.EBUSY}
			},
			holders:   [][]inspect.Holder{{h}, {h}, nil},
			wantPlan:  []string{"by umount2(MNT_FORCE)"},
			wantCalls: []string{"umount2 /mnt/t FORCE|NOFOLLOW", "fence beneath /mnt/t", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"aborted the requests to the server (umount_begin); the mount stays while held (EBUSY)"},
		},
		{
			name: "NFS dead: MNT_FORCE before the fence and again while a holder is in D state", fstype: "nfs4",
			setup: func(f *fakeSys) {
				f.stop()
				f.umountErr["/mnt/t"] = []error{unix.EBUSY}
				f.umountErr["/stash/mnt"] = []error{unix.EBUSY}
			},
			holders:   [][]inspect.Holder{{d}, {d}, {d}, nil},
			wantPlan:  []string{"abort the requests waiting on the nfs4 server by umount2(MNT_FORCE)"},
			wantCalls: []string{"umount2 /mnt/t FORCE|NOFOLLOW", "fence beneath /mnt/t", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt FORCE|NOFOLLOW", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"1 holder in D state: umount2(MNT_FORCE) of /stash/mnt aborted"},
		},
		{
			name: "CIFS dead and idle: MNT_FORCE unmounts it, nothing else to do", fstype: "cifs",
			setup:     func(f *fakeSys) { f.stop() },
			wantCalls: []string{"umount2 /mnt/t FORCE|NOFOLLOW"},
			wantGone:  true,
			wantWhat:  []string{"nothing holding the mount, unmounted it"},
		},
		{
			name: "FUSE dies after syncfs: the revoke hangs, the run probes again and aborts", fstype: "fuse.sshfs", fusectl: true,
			setup:     func(f *fakeSys) { f.afterSyncfs = f.stop },
			holders:   [][]inspect.Holder{{h}, {h}, {h}, nil},
			wantPlan:  []string{": fence, syncfs, revoke by close"},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "revoke 10 put a placeholder on fd 3", "abort-fuse 102", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"pid 10 (cat) could not be revoked in time: aborted FUSE connection", "probe: the server is not answering: statfs of /stash/mnt did not return"},
		},
		{
			name: "the open of the root for syncfs hangs: abandoned and named, the connection aborted, no syncfs", fstype: "fuse", fusectl: true,
			setup:     func(f *fakeSys) { f.stopAfterProbes = 2 },
			holders:   [][]inspect.Holder{{h}, {h}, nil},
			wantCalls: []string{"abort-fuse 102", "fence beneath /mnt/t", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"open of the root of /mnt/t (for syncfs) did not return within 50ms; abandoned", "the server stopped answering: aborted FUSE connection"},
		},
		{
			name: "syncfs hangs: abandoned and named, the connection aborted", fstype: "fuse", fusectl: true,
			setup:     func(f *fakeSys) { f.onSyncfs = f.stop },
			holders:   [][]inspect.Holder{{h}, {h}, nil},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "abort-fuse 102", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"syncfs of /mnt/t did not return within 50ms; abandoned", "written data may not be on disk"},
		},
		{
			name: "aborted already (umount --force): ENOTCONN is no failure, nothing to abort or sync", fstype: "fuse", fusectl: true,
			setup:     func(f *fakeSys) { f.abort() },
			holders:   [][]inspect.Holder{{h}, {h}, nil},
			wantPlan:  []string{"the connection to the server is aborted already", "no syncfs"},
			wantCalls: []string{"fence beneath /mnt/t", "revoke 10 put a placeholder on fd 3", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
		},
		{
			name: "a local filesystem that does not answer: nothing can cut it off; the busy hint says the server, not loop devices", fstype: "ext4",
			setup: func(f *fakeSys) {
				f.stop()
				f.umountErr["/stash/mnt"] = errs(100000, unix.EBUSY)
			},
			timeout:   300 * time.Millisecond,
			wantPlan:  []string{"nothing in userspace can cut ext4 off what it waits on"},
			wantCalls: []string{"fence beneath /mnt/t", "umount2 /stash/mnt NOFOLLOW", "rollback"},
			wantErr:   ErrTimeout,
			wantWhat:  []string{"busy, but no process holds it: the filesystem's server is not answering"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.addMount("/mnt", "ext4", false)
			target := f.addMount("/mnt/t", tc.fstype, false)
			f.target = target.ID
			f.holders = tc.holders
			if tc.fusectl {
				f.fuseConns[fuseConn(&target)] = true
			}
			defer f.abort() // let every blocked call go
			if tc.setup != nil {
				tc.setup(f)
			}
			u := New(f)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := u.Prepare(ctx, Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Policy: PolicyClose,
				Interval: time.Millisecond, Timeout: timeout, CallTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			plan := PlanWords(&p)
			for _, w := range tc.wantPlan {
				if !strings.Contains(plan, w) {
					t.Errorf("the plan does not say %q:\n%s", w, plan)
				}
			}
			evs := collect(u.Run(ctx, p))
			dump := dumpEvents(evs)
			var calls []string // without scans, a call repeated in a row once
			for _, c := range f.Calls() {
				if c != "scan" && (len(calls) == 0 || calls[len(calls)-1] != c) {
					calls = append(calls, c)
				}
			}
			if strings.Join(calls, "\n") != strings.Join(tc.wantCalls, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s\nevents:\n%s", strings.Join(calls, "\n  "), strings.Join(tc.wantCalls, "\n  "), dump)
			}
			last := evs[len(evs)-1]
			if last.Result == nil || last.Result.Gone != tc.wantGone {
				t.Errorf("result %+v, want gone=%v\n%s", last.Result, tc.wantGone, dump)
			}
			if tc.wantErr != nil && !errors.Is(last.Err, tc.wantErr) || tc.wantErr == nil && last.Err != nil {
				t.Errorf("final error %v, want %v", last.Err, tc.wantErr)
			}
			for _, w := range tc.wantWhat {
				if !strings.Contains(dump, w) {
					t.Errorf("no event says %q; events:\n%s", w, dump)
				}
			}
			if !p.Server.Answering && strings.Contains(dump, "loop device") {
				t.Errorf("an event blames a loop device for a dead server:\n%s", dump)
			}
		})
	}
}

// TestPendingNamesAbandonedCalls: a probe of a server that does not answer
// is abandoned after its deadline and listed by Pending (what the second
// SIGINT prints) until the connection is aborted, then it is Late.
func TestPendingNamesAbandonedCalls(t *testing.T) {
	f := newFake()
	target := f.addMount("/mnt/t", "fuse", false)
	f.stop()
	u := New(f)
	s := u.probe(context.Background(), &target, "/mnt/t", 30*time.Millisecond)
	if s.Answering || !strings.Contains(ServerWords(s), "statfs of /mnt/t did not return within 30ms") {
		t.Fatalf("probe of a stopped server: %+v", s)
	}
	p := PendingWords(u.Pending())
	if len(p) != 1 || !strings.HasPrefix(p[0], "statfs of /mnt/t: blocked in the kernel for") {
		t.Fatalf("Pending = %q", p)
	}
	f.abort()
	deadline := time.Now().Add(5 * time.Second)
	for len(u.calls.Late()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the aborted call never returned")
		}
		time.Sleep(time.Millisecond)
	}
	if late := u.calls.Late(); !errors.Is(late[0].Err, unix.ENOTCONN) || len(u.Pending()) != 0 {
		t.Fatalf("late %+v, pending %q", late, PendingWords(u.Pending()))
	}
}

// TestSwapoffAbandoned: a swapoff that does not return (its file on a
// server that does not answer) is abandoned after the call deadline and
// named; the run goes on to its timeout, names the release left, and rolls
// the fence back instead of hanging.
func TestSwapoffAbandoned(t *testing.T) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "nfs4", false)
	f.target = target.ID
	f.kernel = []inspect.KernelHolder{{Kind: "swap", Name: "/mnt/t/swapfile", Path: "/mnt/t/swapfile"}}
	f.umountErr["/stash/mnt"] = errs(100000, unix.EBUSY)
	f.swapBlock = make(chan struct{})
	defer close(f.swapBlock)
	u := New(f)
	p, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Release: true,
		Interval: time.Millisecond, Timeout: 300 * time.Millisecond, CallTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	evs := collect(u.Run(context.Background(), p))
	dump := dumpEvents(evs)
	last := evs[len(evs)-1]
	if took := time.Since(start); took > 5*time.Second || !errors.Is(last.Err, ErrTimeout) {
		t.Fatalf("took %v, ended %v:\n%s", took, last.Err, dump)
	}
	for _, want := range []string{"swapoff of /stash/mnt/swapfile did not return within 50ms; abandoned", "not tried again", "not released: ", "fence removed"} {
		if !strings.Contains(dump, want) {
			t.Errorf("no event says %q:\n%s", want, dump)
		}
	}
	n := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "swapoff") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("swapoff called %d times, want once (the first is still in the kernel)", n)
	}
}

// TestFinalUnmountWaitsOnTheServer: the real unmount takes the mount out
// of the namespace, then waits on the server in the superblock's shutdown:
// abandoned after the call deadline, it counts as done since statmount no
// longer finds the mount, and the run says so and finishes.
func TestFinalUnmountWaitsOnTheServer(t *testing.T) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "nfs4", false)
	f.target = target.ID
	f.shutdownBlock = make(chan struct{})
	defer close(f.shutdownBlock)
	u := New(f)
	p, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged,
		Interval: time.Millisecond, Timeout: 5 * time.Second, CallTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(u.Run(context.Background(), p))
	dump := dumpEvents(evs)
	last := evs[len(evs)-1]
	if last.Err != nil || !last.Result.Gone {
		t.Fatalf("ended %v %+v:\n%s", last.Err, last.Result, dump)
	}
	if !strings.Contains(dump, "umount2 of /stash/mnt did not return within 50ms: the mount is gone from the namespace") {
		t.Errorf("the abandoned unmount is not named:\n%s", dump)
	}
	if p := PendingWords(u.Pending()); len(p) != 1 || !strings.HasPrefix(p[0], "umount2 of /stash/mnt") {
		t.Errorf("Pending = %q", p)
	}
}
