package unmount

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
)

// TestReleaseSequence drives staged runs with kernel holders and copies in
// other namespaces over the fake System: with Plan.Release they are
// released (StageRelease) in the right place and way; without it they are
// only named.
func TestReleaseSequence(t *testing.T) {
	const nsIno = 4026532000
	loop := inspect.KernelHolder{Kind: "loop", Name: "/dev/loop7", Path: "/mnt/t/img"}
	swap := inspect.KernelHolder{Kind: "swap", Name: "/mnt/t/swapfile", Path: "/mnt/t/swapfile"}
	busy := func(n int) []error {
		out := make([]error, n)
		for i := range out {
			out[i] = unix.EBUSY
		}
		return out
	}
	copyHolder := holder(812, "sleep", fdUse(4))
	cases := []struct {
		name        string
		release     bool
		shared      bool
		kernel      []inspect.KernelHolder
		copyOf      bool // a copy of the target in namespace nsIno (pid 812)
		copyHeld    []inspect.Holder
		setup       func(f *fakeSys)
		timeout     time.Duration
		wantCalls   []string
		wantStages  string // substring
		wantGone    bool
		wantErr     error
		wantWhat    []string // substrings of some event's What or error
		wantRelease []string // Plan.Releases' What, substrings
		anyCalls    bool     // the calls depend on timing: not checked
	}{
		{
			name:    "released, then the timeout: the rollback says the release stays done",
			release: true, kernel: []inspect.KernelHolder{loop}, timeout: 40 * time.Millisecond,
			setup:    func(f *fakeSys) { f.umountErr["/stash/mnt"] = busy(1000) },
			anyCalls: true,
			wantErr:  ErrTimeout,
			wantWhat: []string{"done: detach loop device", "1 release done stay so"},
		},
		{
			name:    "loop: detached after revoke; the drain retries the unmount until the device lets go",
			release: true, kernel: []inspect.KernelHolder{loop},
			setup:       func(f *fakeSys) { f.umountErr["/stash/mnt"] = busy(1) },
			wantCalls:   []string{"fence beneath /mnt/t", "syncfs", "detach-loop /dev/loop7", "umount2 /stash/mnt NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantStages:  "revoke release drain",
			wantGone:    true,
			wantWhat:    []string{"done: detach loop device /dev/loop7 (its backing file /mnt/t/img)"},
			wantRelease: []string{"detach loop device"},
		},
		{
			name:   "loop without Release: named in the drain and the timeout, never detached",
			kernel: []inspect.KernelHolder{loop}, timeout: 40 * time.Millisecond,
			setup:     func(f *fakeSys) { f.umountErr["/stash/mnt"] = busy(1000) },
			wantErr:   ErrTimeout,
			wantWhat:  []string{"busy, but no process holds it: held by loop /dev/loop7", "the mount was still busy after 40ms: held by loop"},
			wantCalls: nil, // checked below: no detach-loop
		},
		{
			name:    "loop device itself mounted: refused in the plan, not touched",
			release: true, kernel: []inspect.KernelHolder{loop}, timeout: 40 * time.Millisecond,
			setup: func(f *fakeSys) {
				f.umountErr["/stash/mnt"] = busy(1000)
			},
			wantErr:     ErrTimeout,
			wantWhat:    []string{"not done: detach loop device", "itself mounted"},
			wantRelease: []string{"cannot: the loop device is itself mounted"},
		},
		{
			name:    "swap under the beneath fence: swapped off through the stash",
			release: true, kernel: []inspect.KernelHolder{swap},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "swapoff /stash/mnt/swapfile", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
		},
		{
			name:    "swap under a shared parent: swapped off before the over-mount fence hides it",
			release: true, shared: true, kernel: []inspect.KernelHolder{swap},
			wantCalls: []string{"swapoff /mnt/t/swapfile", "fence over /mnt/t", "syncfs", "remove-fence", "umount2 /mnt/t NOFOLLOW"},
			wantGone:  true,
			wantWhat:  []string{"before the fence"},
		},
		{
			name:    "swapoff short of memory: retried in the drain",
			release: true, kernel: []inspect.KernelHolder{swap},
			setup: func(f *fakeSys) {
				f.releaseErr["swap /stash/mnt/swapfile"] = []error{unix.ENOMEM}
				f.umountErr["/stash/mnt"] = busy(1)
			},
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "swapoff /stash/mnt/swapfile", "swapoff /stash/mnt/swapfile", "umount2 /stash/mnt NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"failed: swapoff"},
		},
		{
			name:    "private idle copy: unmounted there plainly",
			release: true, copyOf: true,
			wantCalls:   []string{"fence beneath /mnt/t", "syncfs", "umount-copy 812 /mnt/t 55 NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:    true,
			wantRelease: []string{"unmount its copy at /mnt/t in mount namespace mnt:[4026532000] (pid 812)"},
		},
		{
			name:    "private held copy: unmounted there lazily",
			release: true, copyOf: true, copyHeld: []inspect.Holder{copyHolder},
			wantCalls:   []string{"fence beneath /mnt/t", "syncfs", "umount-copy 812 /mnt/t 55 DETACH|NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:    true,
			wantRelease: []string{", lazily (held there by pid 812 (sleep)"},
		},
		{
			name:    "idle copy busy by the time of the run: lazily instead",
			release: true, copyOf: true,
			setup:     func(f *fakeSys) { f.releaseErr["copy 812"] = []error{unix.EBUSY} },
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "umount-copy 812 /mnt/t 55 NOFOLLOW", "umount-copy 812 /mnt/t 55 DETACH|NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantWhat:  []string{"unmounting it lazily instead"},
		},
		{
			name:    "private idle copy whose release fails for good: the mount goes, the result says NOT released first and fails",
			release: true, copyOf: true,
			setup:     func(f *fakeSys) { f.releaseErr["copy 812"] = []error{unix.EPERM} },
			wantCalls: []string{"fence beneath /mnt/t", "syncfs", "umount-copy 812 /mnt/t 55 NOFOLLOW", "umount2 /stash/mnt NOFOLLOW", "remove-fence"},
			wantGone:  true,
			wantErr:   ErrReleaseFailed,
			wantWhat:  []string{"NOT released: unmount its copy at /mnt/t in mount namespace mnt:[4026532000] (pid 812): ", "(EPERM); /mnt/t is unmounted (verified)"},
		},
		{
			name:    "propagating held copy: its holder is revoked like ours, the copy goes with our unmount",
			release: true, shared: true, copyOf: true, copyHeld: []inspect.Holder{copyHolder},
			wantCalls:  []string{"fence over /mnt/t", "syncfs", "revoke 812 put a placeholder on fd 4", "remove-fence", "umount2 /mnt/t NOFOLLOW"},
			wantStages: "revoke release",
			wantGone:   true,
			wantWhat:   []string{"pid 812 (sleep) in mount namespace mnt:[4026532000]: put a placeholder on fd 4 (1 thread stopped for 0s)", "goes with our unmount"},
		},
		{
			name:   "propagating held copy without Release: its holder is left alone and named",
			shared: true, copyOf: true, copyHeld: []inspect.Holder{copyHolder}, timeout: 40 * time.Millisecond,
			setup:    func(f *fakeSys) { f.umountErr["/mnt/t"] = busy(1000) },
			wantErr:  ErrTimeout,
			wantWhat: []string{"held by its copy in mount namespace mnt:[4026532000] at /mnt/t, held there by pid 812 (sleep)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			parent := f.addMount("/mnt", "ext4", tc.shared)
			target := f.addMount("/mnt/t", "tmpfs", false)
			f.target = target.ID
			f.kernel = tc.kernel
			if strings.Contains(tc.name, "itself mounted") {
				f.mounts = append(f.mounts, inspect.Mount{ID: 900, ParentID: 1, Mountpoint: "/img", FSType: "ext4", Source: "/dev/loop7", Major: 7, Minor: 7})
			}
			if tc.copyOf {
				f.namespaces = []inspect.Namespace{{Inode: nsIno, PIDs: []int{812}, Mounts: []inspect.Mount{
					{OldID: 54, OldParentID: 53, Mountpoint: "/mnt", Propagation: inspect.Propagation{Shared: parent.Propagation.Shared}},
					{OldID: 55, OldParentID: 54, Mountpoint: "/mnt/t", Major: target.Major, Minor: target.Minor},
				}}}
				f.copyOld = 55
				f.copyHolders = [][]inspect.Holder{tc.copyHeld, tc.copyHeld, nil}
			}
			u := New(f)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			p, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: target.ID}, Mode: ModeStaged, Release: tc.release,
				Interval: time.Millisecond, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.wantRelease {
				found := false
				for _, r := range p.Releases {
					found = found || strings.Contains(ReleaseWords(r)+" (cannot: "+RefusedWords(r)+")", want)
				}
				if !found {
					t.Errorf("plan releases %+v lack %q", p.Releases, want)
				}
			}
			if len(p.Releases) > 0 && !strings.Contains(PlanWords(&p), "release") {
				t.Errorf("the plan does not mention its releases: %s", PlanWords(&p))
			}
			if len(tc.kernel) > 0 {
				want := "(no revoke of ours releases it; a staged run with --release does)"
				switch {
				case strings.Contains(tc.name, "itself mounted"):
					want = "(no revoke can release it)"
				case tc.release:
					want = "(released during the run)"
				}
				if w := warningsWords(&p); !strings.Contains(w, want) {
					t.Errorf("plan warnings %q lack %q", w, want)
				}
			}
			copyPlanned := false
			for _, a := range p.Holders {
				copyPlanned = copyPlanned || a.Holder.PID == 812 && a.Namespace == 4026532000 &&
					a.CopyAt == "/mnt/t" && a.Kind == ActionRevoke && a.Targets.Placeholder && slices.Equal(a.Targets.FDs, []int{4})
			}
			if want := tc.release && tc.shared && len(tc.copyHeld) > 0; copyPlanned != want {
				t.Errorf("plan lists the copy's holder: %v, want %v: %+v", copyPlanned, want, p.Holders)
			}
			if tc.setup != nil {
				tc.setup(f)
			}
			evs := collect(u.Run(context.Background(), p))
			last := evs[len(evs)-1]
			var calls []string
			for _, c := range f.Calls() {
				if c != "scan" && !(tc.wantCalls == nil && strings.HasPrefix(c, "umount2 ")) && c != "rollback" &&
					!(tc.wantCalls == nil && (strings.HasPrefix(c, "fence") || c == "syncfs" || c == "remove-fence")) {
					calls = append(calls, c)
				}
			}
			if !tc.anyCalls && strings.Join(calls, "\n") != strings.Join(tc.wantCalls, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s\n%s", strings.Join(calls, "\n  "), strings.Join(tc.wantCalls, "\n  "), dumpEvents(evs))
			}
			if tc.wantStages != "" && !strings.Contains(stages(evs), tc.wantStages) {
				t.Errorf("stages %q lack %q", stages(evs), tc.wantStages)
			}
			if last.Result.Gone != tc.wantGone {
				t.Errorf("gone = %v (%s)", last.Result.Gone, summaryOf(last.Result))
			}
			if tc.wantErr != nil && !errors.Is(last.Err, tc.wantErr) || tc.wantErr == nil && last.Err != nil {
				t.Errorf("final error %v, want %v", last.Err, tc.wantErr)
			}
			for _, want := range tc.wantWhat {
				found := strings.Contains(summaryOf(last.Result), want)
				for _, ev := range evs {
					found = found || strings.Contains(EventWords(ev), want) || ev.Err != nil && strings.Contains(ev.Err.Error(), want)
				}
				if !found {
					t.Errorf("no event says %q:\n%s", want, dumpEvents(evs))
				}
			}
			inNS := false
			for _, ev := range evs {
				if ev.Stage == StageRelease && !tc.release {
					t.Errorf("a release without Plan.Release: %s", EventWords(ev))
				}
				for _, h := range ev.Holders {
					inNS = inNS || h.PID == 812 && h.Namespace == 4026532000
				}
			}
			if want := tc.release && tc.shared && len(tc.copyHeld) > 0; inNS != want {
				t.Errorf("holder picture names pid 812's namespace: %v, want %v", inNS, want)
			}
		})
	}
}

// TestDetachedSequence: a detached target gets no fence, no syncfs and no
// umount2: its holders are revoked and the drain ends when no scan finds
// one; the plain modes are refused.
func TestDetachedSequence(t *testing.T) {
	f := newFake()
	det := inspect.Mount{ID: 500, ParentID: 500, Mountpoint: "(detached)", Detached: true, FSType: "tmpfs", Major: 0, Minor: 500}
	f.mounts = append(f.mounts, det)
	f.target = det.ID
	f.holders = [][]inspect.Holder{{holder(10, "cat", fdUse(3)), holder(11, "sh", inspect.Use{Kind: inspect.UseCwd, FD: -1})}, nil}
	u := New(f)
	for _, mode := range []Mode{ModeLazy, ModeExpire, ModeForce} {
		f.scans = 0
		if _, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: det.ID}, Mode: mode}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "detached") {
			t.Errorf("%s of a detached mount: %v, want ErrRefused", mode, err)
		}
	}
	f.scans = 0
	p, err := u.Prepare(context.Background(), Plan{Target: inspect.Mount{ID: det.ID, Detached: true}, Mode: ModeStaged, Interval: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Holders) != 2 || !strings.Contains(PlanWords(&p), "no fence and no syncfs") {
		t.Fatalf("plan: %+v\n%s", p.Holders, PlanWords(&p))
	}
	f.scans = 0
	evs := collect(u.Run(context.Background(), p))
	var calls []string
	for _, c := range f.Calls() {
		if c != "scan" {
			calls = append(calls, c)
		}
	}
	want := []string{"revoke 10 put a placeholder on fd 3", "revoke 11 cwd into an empty directory (1 thread)"}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls %q, want %q", calls, want)
	}
	if got := stages(evs); got != "plan fence revoke revoke unmount done" {
		t.Errorf("stages %q\n%s", got, dumpEvents(evs))
	}
	last := evs[len(evs)-1]
	if !last.Result.Gone || last.Err != nil || !strings.Contains(summaryOf(last.Result), "detached mount 500 is gone") {
		t.Errorf("result %+v %v", last.Result, last.Err)
	}
	if !strings.Contains(EventWords(evs[1]), "no fence") {
		t.Errorf("no note about the fence: %s", EventWords(evs[1]))
	}
}
