package present

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/unmount"
)

// TestPlanNotesRender: every note of the plan, releases and leftovers has
// a renderer (NoteText's fallback prints the Go type: a note without one
// fails here) and says what it always said.
func TestPlanNotesRender(t *testing.T) {
	loop := unmount.Release{Kind: unmount.ReleaseLoop, Name: "/dev/loop3", BackingFile: "/mnt/x/disk.img"}
	fence := unmount.Leftover{Fence: unmount.Fence{Kind: unmount.FenceBeneath, Target: "/mnt/x", RealPath: "/run/stash/mnt", FenceID: 90, RealID: 80, Stash: "/run/stash"}}
	plan := unmount.Plan{Mode: unmount.ModeStaged, Policy: unmount.PolicyClose, Interval: time.Second, Timeout: 30 * time.Second,
		Target: inspect.Mount{ID: 80, Mountpoint: "/mnt/x", FSType: "ext4", Source: "/dev/sdb1"}, Releases: []unmount.Release{loop}}
	for _, tc := range []struct {
		note unmount.Note
		want string
	}{
		{unmount.PlanNote{Plan: plan, Later: []unmount.PlanWarning{{Kind: unmount.WarnJournal, State: unmount.StateMove{Kind: unmount.StateNoPlace, From: "/mnt/x/s"}}}},
			"staged unmount of /mnt/x (ext4 /dev/sdb1, mount 80): fence, syncfs, revoke by close, drain every 1s for up to 30s; 0 holders; " +
				"1 release (with --release): detach loop device /dev/loop3 (its backing file /mnt/x/disk.img); the journal and the expiry state in /mnt/x/s lie on the mount to unmount (they would keep it busy) and no other place is left: this run goes without a journal"},
		{unmount.ReleaseIntent{Release: loop}, "detach loop device /dev/loop3 (its backing file /mnt/x/disk.img)"},
		{unmount.ReleaseOutcome{Release: loop, Done: true}, "done: detach loop device /dev/loop3 (its backing file /mnt/x/disk.img)"},
		{unmount.ReleaseOutcome{Release: loop}, "detach loop device /dev/loop3 (its backing file /mnt/x/disk.img)"},
		{unmount.LeftoverIntent{Leftover: fence}, "a fence left by a killed run covers /mnt/x; the filesystem is at /run/stash/mnt (mount 80); run `mounttop umount --rollback-fence /mnt/x`"},
		{unmount.LeftoverRolledBack{Target: "/mnt/x", Stash: "/run/stash", FenceID: 90, RealID: 80, Moved: true},
			"the filesystem (mount 80) is back at /mnt/x; the fence and the stash /run/stash are gone"},
		{unmount.LeftoverRolledBack{Target: "/mnt/x", FenceID: 90, RealID: 80}, "the fence (mount 90) at /mnt/x is unmounted; the filesystem (mount 80) shows there again"},
		{unmount.LeftoverRolledBack{Target: "/mnt/x", FenceID: 90, RealGone: true, JournalErr: "ENOSPC"}, "the fence (mount 90) at /mnt/x is unmounted (the journal could not record it: ENOSPC)"},
		{unmount.LeftoverRolledBack{Failed: true}, "rolling the fence back failed"},
	} {
		if got := NoteText(tc.note); got != tc.want {
			t.Errorf("%T:\ngot  %q\nwant %q", tc.note, got, tc.want)
		}
	}
}

// TestPlanWarningsRender: each kind of plan warning in its words.
func TestPlanWarningsRender(t *testing.T) {
	loop1 := unmount.BusyReason{Kernel: &inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop1", Path: "/t/img"}}
	for _, tc := range []struct {
		w    unmount.PlanWarning
		want string
	}{
		{unmount.PlanWarning{Kind: unmount.WarnAutomount, Detail: "/a is an autofs trigger"}, "/a is an autofs trigger"},
		{unmount.PlanWarning{Kind: unmount.WarnForceIgnored, FSType: "ext4"}, "MNT_FORCE is ignored by ext4: a busy mount stays busy; --staged revokes its holders instead"},
		{unmount.PlanWarning{Kind: unmount.WarnAllowedSystem, Detail: "it is the /proc mounttop reads"}, "allowed by --allow-system-mount: it is the /proc mounttop reads"},
		{unmount.PlanWarning{Kind: unmount.WarnSelfUnknown, Message: "EACCES"}, "could not check mounttop's own executable, cwd and /proc: EACCES"},
		{unmount.PlanWarning{Kind: unmount.WarnStacked, Mounts: []inspect.Mount{{Mountpoint: "/o1"}, {Mountpoint: "/o 2"}}}, `--recursive unmounts first what uses it as a layer: /o1, "/o 2"`},
		{unmount.PlanWarning{Kind: unmount.WarnBusy, Reason: loop1}, "held by loop /dev/loop1 (/t/img): detach loop device (losetup -d /dev/loop1) (no revoke can release it)"},
		{unmount.PlanWarning{Kind: unmount.WarnBusy, Reason: loop1, Busy: unmount.BusyReleased}, "held by loop /dev/loop1 (/t/img): detach loop device (losetup -d /dev/loop1) (released during the run)"},
		{unmount.PlanWarning{Kind: unmount.WarnBusy, Reason: loop1, Busy: unmount.BusyWithRelease}, "held by loop /dev/loop1 (/t/img): detach loop device (losetup -d /dev/loop1) (no revoke of ours releases it; a staged run with --release does)"},
		{unmount.PlanWarning{Kind: unmount.WarnAliveElsewhere, Namespace: 42, PIDs: []int{7, 8, 9}, Mountpoint: "/c"}, "the filesystem is also mounted in mount namespace mnt:[42] (pid 7 and 2 more) at /c: it stays alive there after this unmount"},
		{unmount.PlanWarning{Kind: unmount.WarnAlsoMounted, Mountpoint: "/b"}, "the filesystem is also mounted at /b: it stays alive there"},
		{unmount.PlanWarning{Kind: unmount.WarnPartialScan, Count: 2, Detail: "pid 7: EACCES"}, "the scan was partial (2 warnings, first: pid 7: EACCES)"},
		{unmount.PlanWarning{Kind: unmount.WarnJournal, State: unmount.StateMove{Kind: unmount.StateUnknown, ErrText: "EIO"}}, "could not check where the journal lies: EIO"},
	} {
		if got := PlanWarningText(tc.w); got != tc.want {
			t.Errorf("kind %d:\ngot  %q\nwant %q", tc.w.Kind, got, tc.want)
		}
	}
}

// TestServerAbortReleaseWords: the probe's findings, the ways to abort,
// refusals and releases in their words.
func TestServerAbortReleaseWords(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeAnswered, Path: "/m", Took: time.Millisecond}}), "the server answers (statfs of /m took 1ms)"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeNoPath}}), "not probed: no path leads to the detached mount and no holder's fd or cwd does either"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeCancelled, Err: "statfs of /m: cancelled"}}), "the probe was cancelled: statfs of /m: cancelled"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeTimedOut, Path: "/m", Limit: 2 * time.Second, Waiting: 3, WaitingKnown: true, Conn: 45}}),
			"statfs of /m did not return within 2s; 3 requests waiting on FUSE connection 45"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeTimedOut, Call: "syncfs of /m", Limit: time.Second}}), "syncfs of /m did not return within 1s"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeAborted, Path: "/m"}}), "statfs of /m: ENOTCONN: the connection to the server is aborted already; every request fails at once"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeDown, Path: "/m", Errno: unix.EHOSTDOWN}}), "statfs of /m: EHOSTDOWN (the server does not answer)"},
		{ServerHow(unmount.Server{Probe: unmount.Probe{Outcome: unmount.ProbeUnsure, Path: "/m", Err: "EIO"}}), "the probe could not tell (statfs of /m: EIO); taken as answering"},
		{AbortText(unmount.Abort{Kind: unmount.AbortFuseConn, Conn: 45}), "abort FUSE connection 45 (/sys/fs/fuse/connections/45/abort)"},
		{AbortText(unmount.Abort{Kind: unmount.AbortForce, FUSE: true}), "abort the FUSE connection by umount2(MNT_FORCE) (fuse_umount_begin; fusectl is not mounted at /sys/fs/fuse/connections)"},
		{AbortText(unmount.Abort{Kind: unmount.AbortForce, Network: true, FSType: "nfs4"}), "abort the requests waiting on the nfs4 server by umount2(MNT_FORCE) (umount_begin), again on each drain pass while holders stay stuck"},
		{AbortText(unmount.Abort{FUSE: true, Detached: true}), "nothing can abort the FUSE connection: fusectl is not mounted at /sys/fs/fuse/connections and no path names the detached mount for MNT_FORCE"},
		{AbortText(unmount.Abort{Network: true, Detached: true}), "nothing can abort the requests to the server: MNT_FORCE needs a path, and the mount is detached"},
		{AbortText(unmount.Abort{FSType: "ext4"}), "nothing in userspace can cut ext4 off what it waits on"},
		{AbortText(unmount.Abort{Detached: true}), "nothing in userspace can cut its filesystem (of a type no table names: it is detached) off what it waits on"},
		{RefusalText(unmount.RefusalExe), "its executable is on the mount: it cannot be revoked, only stopped (--revoke=signal)"},
		{RefusalText(unmount.RefusalRoot), "its root directory (chroot) is on the mount: it cannot be revoked, only stopped (--revoke=signal)"},
		{ReleaseText(unmount.Release{Kind: unmount.ReleaseSwap, Name: "/s"}), "swapoff /s (its pages move back to memory)"},
		{ReleaseText(unmount.Release{Kind: unmount.ReleaseCopy, Mountpoint: "/c", Namespace: 42, HostKnown: true, PID: 7,
			Holders: []inspect.Holder{{PID: 1, Comm: "a"}, {PID: 2, Comm: "b"}, {PID: 3, Comm: "c"}, {PID: 4, Comm: "d"}}, Lazy: true, Propagates: true}),
			"unmount its copy at /c in mount namespace mnt:[42] (pid 7), lazily (held there by pid 1 (a), pid 2 (b), pid 3 (c), and 1 more, which keep it alive until they let go); " +
				"our unmount propagates to it: a staged run revokes its holders there instead and takes it along"},
		{ReleaseText(unmount.Release{Kind: unmount.ReleaseCopy, Mountpoint: "/c", Namespace: 42, PID: 7}), "unmount its copy at /c in mount namespace mnt:[42] (the host's? unknown: pid 1's namespace is unreadable) (pid 7)"},
		{ReleaseText(unmount.Release{Kind: unmount.ReleaseCopy, Mountpoint: "/c", Namespace: 42, PID: 7, Host: true, HostKnown: true}), "unmount its copy at /c in mount namespace mnt:[42] (the host's: pid 1's) (pid 7)"},
		{ReleaseRefusalText(unmount.Release{Refusal: unmount.ReleaseLoopMounted, RefusedAt: "/srv", RefusedIn: 42}), "the loop device is itself mounted (at /srv in mount namespace mnt:[42]): unmount it first"},
		{ReleaseRefusalText(unmount.Release{Refusal: unmount.ReleaseNoEntry}), "no process of that namespace is known to enter it through"},
		{ReleaseRefusalText(unmount.Release{Refusal: unmount.ReleaseHostNamespace}), "it is the host's mount namespace (pid 1's): releasing there needs an explicit confirmation (--release-host)"},
		{ReleaseRefusalText(unmount.Release{}), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
}

// TestFilesystemText: the finding after an unmount and the plan's
// forecast, each use named.
func TestFilesystemText(t *testing.T) {
	for _, tc := range []struct {
		f    unmount.Filesystem
		want string
	}{
		{unmount.Filesystem{Checked: true, Released: true}, "filesystem released"},
		{unmount.Filesystem{Checked: true, Released: true, Exclusive: true, DeviceName: "/dev/loop3"}, "filesystem released (the block device /dev/loop3 opens exclusively)"},
		{unmount.Filesystem{Checked: true, InUseBy: []unmount.FilesystemUse{{Kind: "mount", Where: "/a\nb"}, {Kind: "detached", PIDs: []int{7, 8}},
			{Kind: "mount", Where: "/x", Namespace: 42, Host: true}, {Kind: "overlay", Where: "/ov"}, {Kind: "loop", Where: "/dev/loop1"},
			{Kind: "swap", Where: "/t/swap"}, {Kind: "device", Where: "/dev/loop3"}}},
			`filesystem still in use by: the mount /a\nb; a detached mount held by pid 7, 8; the mount /x in mount namespace mnt:[42] (the host's); ` +
				"the overlay /ov; the loop device /dev/loop1; the swap file /t/swap; a claim on the block device /dev/loop3 (open O_EXCL: EBUSY)"},
		{unmount.Filesystem{Checked: true, Doubt: unmount.Doubt{Kind: unmount.DoubtClaim, Device: "7:3", ErrText: "EIO"}}, "no other use of the filesystem found, but could not open the block device 7:3 exclusively: EIO"},
		{unmount.Filesystem{Doubt: unmount.Doubt{Kind: unmount.DoubtScan, ErrText: "boom"}}, "whether the filesystem is released is unknown: could not scan: boom"},
	} {
		if got := FilesystemText(&tc.f); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	used := unmount.Filesystem{Checked: true, InUseBy: []unmount.FilesystemUse{{Kind: "mount", Where: "/y"}}}
	if got, want := FilesystemPlanText(&used), "after this unmount the filesystem stays in use by: the mount /y"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := FilesystemPlanText(&unmount.Filesystem{}); got != "" {
		t.Errorf("unchecked forecast %q", got)
	}
}

// TestPlanNotesEscapeOnce: a path with a newline and a colour escape in a
// plan, a release and a leftover renders escaped exactly once.
func TestPlanNotesEscapeOnce(t *testing.T) {
	m := inspect.Mount{ID: 9, Mountpoint: hostileMount, FSType: "tmpfs", Source: "src"}
	loop := unmount.Release{Kind: unmount.ReleaseLoop, Name: "/dev/loop3", BackingFile: hostileMount + "/img"}
	cp := unmount.Release{Kind: unmount.ReleaseCopy, Mountpoint: hostileMount, Namespace: 4, HostKnown: true, PID: 7,
		Holders: []inspect.Holder{{PID: 7, Comm: hostileComm}}, Lazy: true}
	plan := unmount.Plan{Mode: unmount.ModeStaged, Target: m, Submounts: []inspect.Mount{{Mountpoint: hostileMount + "/sub"}},
		Releases: []unmount.Release{loop, cp, {Kind: unmount.ReleaseLoop, Name: "/dev/loop4", Refusal: unmount.ReleaseLoopMounted, RefusedAt: hostileMount}},
		Warnings: []unmount.PlanWarning{{Kind: unmount.WarnAlsoMounted, Mountpoint: hostileMount}, {Kind: unmount.WarnAutomount, Detail: hostileMount + " is a trigger"},
			{Kind: unmount.WarnStacked, Mounts: []inspect.Mount{{Mountpoint: hostileMount}}}},
		Filesystem: unmount.Filesystem{Checked: true, InUseBy: []unmount.FilesystemUse{{Kind: "mount", Where: hostileMount}}},
		Server:     unmount.Server{Probed: true, Probe: unmount.Probe{Outcome: unmount.ProbeTimedOut, Path: hostileMount, Limit: time.Second}}}
	fence := unmount.Leftover{Fence: unmount.Fence{Kind: unmount.FenceBeneath, Target: hostileMount, RealPath: hostileMount + "/stash"}}
	var b strings.Builder
	PlanText(&b, &plan)
	for what, text := range map[string]string{
		"plan":                   NoteText(unmount.PlanNote{Plan: plan}),
		"plan text":              b.String(),
		"release":                NoteText(unmount.ReleaseOutcome{Release: cp, Done: true}),
		"loop release":           NoteText(unmount.ReleaseIntent{Release: loop}),
		"leftover":               NoteText(unmount.LeftoverIntent{Leftover: fence}),
		"leftover plan":          LeftoverPlan(fence),
		"rollback":               NoteText(unmount.LeftoverRolledBack{Target: hostileMount, Stash: hostileMount, Moved: true}),
		"filesystem":             FilesystemText(&plan.Filesystem),
		"server":                 ServerHow(plan.Server),
		"refusal":                ReleaseRefusalText(plan.Releases[2]),
		"staged dialog releases": strings.Join(ReleaseListLines(plan, nil, 5), "\n"),
	} {
		checkShownOnce(t, what, text, shownMount)
	}
	checkShownOnce(t, "copy holders", ReleaseText(cp), shownComm)
}

// TestStateMoveText: what became of the journal and the expiry state, word
// for word, and a hostile path escaped once (the plan's warning too).
func TestStateMoveText(t *testing.T) {
	for _, c := range []struct {
		m    unmount.StateMove
		want string
	}{
		{unmount.StateMove{}, ""},
		{unmount.StateMove{Kind: unmount.StateMoved, From: "/mnt/t/state", To: "/run/mounttop"},
			"the journal and the expiry state in /mnt/t/state lie on the mount to unmount (they would keep it busy): written to /run/mounttop instead"},
		{unmount.StateMove{Kind: unmount.StateNoPlace, From: "/mnt/t/state"},
			"the journal and the expiry state in /mnt/t/state lie on the mount to unmount (they would keep it busy) and no other place is left: this run goes without a journal"},
		{unmount.StateMove{Kind: unmount.StateCannotMove, From: "/mnt/t/state", To: "/run/mounttop", ErrText: "open /run/mounttop:\npermission denied"},
			"the journal in /mnt/t/state lies on the mount to unmount and cannot move to /run/mounttop (open /run/mounttop: permission denied): this run goes without a journal"},
		{unmount.StateMove{Kind: unmount.StateUnknown, ErrText: "mountinfo: EIO"}, "could not check where the journal lies: mountinfo: EIO"},
	} {
		if got := StateMoveText(c.m); got != c.want {
			t.Errorf("StateMoveText(%+v)\n got %q\nwant %q", c.m, got, c.want)
		}
	}
	hostile := unmount.StateMove{Kind: unmount.StateCannotMove, From: hostileMount, To: hostileMount + "/x", ErrText: "open " + shownMount + "/x: EACCES"}
	checkShownOnce(t, "state move", StateMoveText(hostile), shownMount)
	checkShownOnce(t, "journal warning", PlanWarningText(unmount.PlanWarning{Kind: unmount.WarnJournal, State: hostile}), shownMount)
}
