package unmount

import "testing"

// TestFilesystemText: the words of each finding, escaped where they name
// something from the system.
func TestFilesystemText(t *testing.T) {
	for _, tc := range []struct {
		f    Filesystem
		want string
	}{
		{Filesystem{Checked: true, Released: true}, "filesystem released"},
		{Filesystem{Checked: true, Released: true, Exclusive: true, DeviceName: "/dev/loop3"}, "filesystem released (the block device /dev/loop3 opens exclusively)"},
		{Filesystem{Checked: true, InUseBy: []FilesystemUse{{Kind: "mount", Where: "/a\nb"}, {Kind: "detached", PIDs: []int{7, 8}},
			{Kind: "mount", Where: "/x", Namespace: 42, Host: true}, {Kind: "overlay", Where: "/ov"}, {Kind: "loop", Where: "/dev/loop1"},
			{Kind: "swap", Where: "/t/swap"}, {Kind: "device", Where: "/dev/loop3"}}},
			`filesystem still in use by: the mount /a\nb; a detached mount held by pid 7, 8; the mount /x in mount namespace mnt:[42] (the host's); ` +
				"the overlay /ov; the loop device /dev/loop1; the swap file /t/swap; a claim on the block device /dev/loop3 (open O_EXCL: EBUSY)"},
		{Filesystem{Checked: true, Doubt: Doubt{Kind: DoubtClaim, Device: "7:3", ErrText: "EIO"}}, "no other use of the filesystem found, but could not open the block device 7:3 exclusively: EIO"},
		{Filesystem{Doubt: Doubt{Kind: DoubtScan, ErrText: "boom"}}, "whether the filesystem is released is unknown: could not scan: boom"},
	} {
		if got := FilesystemText(&tc.f); got != tc.want {
			t.Errorf("Text() = %q\nwant      %q", got, tc.want)
		}
	}
}
