package present

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// TestBusyReasonText: what else keeps a mount busy, in words: each kernel
// holder with what releases it, a held copy elsewhere, none seen; and the
// same words in an unmount.Error that carries them, with the force hint.
func TestBusyReasonText(t *testing.T) {
	loop := unmount.BusyReason{Kernel: &inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop7", Path: "/t/disk img"}}
	uring := unmount.BusyReason{Kernel: &inspect.KernelHolder{Kind: inspect.KernelIOURing, FD: 5, Index: 1, Path: "/t/q", PID: 9}}
	swap := unmount.BusyReason{Kernel: &inspect.KernelHolder{Kind: inspect.KernelSwap, Name: "/t/swap", Path: "/t/swap"}}
	cp := unmount.BusyReason{Namespace: 4026532000, Mountpoint: "/mnt/t", Holders: []inspect.Holder{{PID: 812, Comm: "sleep"}, {PID: 9, Comm: "a"}, {PID: 10, Comm: "b"}, {PID: 11, Comm: "c"}}}
	for _, tc := range []struct {
		r    unmount.BusyReason
		want string
	}{
		{loop, `loop /dev/loop7 ("/t/disk img"): detach loop device (losetup -d /dev/loop7)`},
		{uring, `io_uring "io_uring fd 5, file 1" (/t/q): stop the process or unregister the file`},
		{swap, "swap /t/swap: swapoff"},
		{cp, "its copy in mount namespace mnt:[4026532000] at /mnt/t, held there by pid 812 (sleep), pid 9 (a), pid 10 (b), and 1 more"},
	} {
		if got := BusyReasonText(tc.r); got != tc.want {
			t.Errorf("BusyReasonText =\n%q, want\n%q", got, tc.want)
		}
	}
	if got, want := BusyOthersText([]unmount.BusyReason{swap, cp}), "held by "+BusyReasonText(swap)+"; "+BusyReasonText(cp); got != want {
		t.Errorf("BusyOthersText = %q, want %q", got, want)
	}
	if got := BusyOthersText(nil); got != "no process holds it: a kernel holder (loop device or swap file on it, nfsd export, io_uring, fd in flight) or a copy in another mount namespace" {
		t.Errorf("BusyOthersText(nil) = %q", got)
	}
	force := &unmount.ForceIgnoredFS{FSType: "ext4"}
	for _, tc := range []struct {
		e    unmount.Error
		want string
	}{
		{unmount.Error{Op: "umount", Target: "/t", Err: unix.EBUSY, Busy: []unmount.BusyReason{swap}},
			"umount /t: busy (EBUSY) (held by swap /t/swap: swapoff)"},
		{unmount.Error{Op: "umount --force", Target: "/t", Err: unix.EBUSY, Holders: []inspect.Holder{{PID: 4, Comm: "cat"}}, Busy: []unmount.BusyReason{swap}, ForceIgnored: force},
			"umount --force /t: busy (EBUSY); held by pid 4 (cat) (also held by swap /t/swap: swapoff; MNT_FORCE is ignored by ext4: a busy mount stays busy; --staged revokes its holders instead)"},
		{unmount.Error{Op: "umount --force", Target: "/t", Err: unix.EBUSY, Hint: "no process holds it", ForceIgnored: force},
			"umount --force /t: busy (EBUSY) (no process holds it; MNT_FORCE is ignored by ext4: a busy mount stays busy; --staged revokes its holders instead)"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() =\n%q, want\n%q", got, tc.want)
		}
	}
	if got := ForceIgnoredText("tmpfs"); got != "MNT_FORCE is ignored by tmpfs: a busy mount stays busy; --staged revokes its holders instead" {
		t.Errorf("ForceIgnoredText = %q", got)
	}
}

// TestBusyReasonsEscapedOnce: a kernel holder's file, a copy's mount
// point and its holder's command with a newline and a colour escape, and
// a filesystem type with one, carried raw, show escaped once in the plan
// warning, the drain's note and the error's text as cmd shows it.
func TestBusyReasonsEscapedOnce(t *testing.T) {
	rs := []unmount.BusyReason{
		{Kernel: &inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop7", Path: hostileMount + "/img"}},
		{Namespace: 4026532000, Mountpoint: hostileMount, Holders: []inspect.Holder{{PID: 812, Comm: hostileComm}}},
	}
	for _, r := range rs {
		checkShownOnce(t, "plan warning", PlanWarningText(unmount.PlanWarning{Kind: unmount.WarnBusy, Reason: r}), shownMount)
	}
	checkShownOnce(t, "drain note", "> "+NoteText(unmount.BusyNoHolder{Why: unmount.BusyWhy{Others: rs}}), shownMount, shownComm)
	err := error(&unmount.Error{Op: "umount --force", Target: hostileMount, Err: unix.EBUSY, Busy: rs,
		ForceIgnored: &unmount.ForceIgnoredFS{FSType: "x\x1b[31my"}})
	shown := termsafe.Message(err.Error())
	checkShownOnce(t, "error", shown, shownMount, shownComm, `MNT_FORCE is ignored by x\e[31my`)
	if !errors.Is(err, unix.EBUSY) {
		t.Error(fmt.Sprint("not EBUSY: ", err))
	}
	checkShownOnce(t, "force note", NoteText(unmount.ForceIgnoredFS{FSType: "x\ny\x1b[31mz"}), `x\ny\e[31mz`)
}
