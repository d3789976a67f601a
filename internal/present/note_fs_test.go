package present

import (
	"encoding/json"
	"testing"

	"mounttop/unmount"
)

// TestDoubtText: each reason the filesystem check is incomplete, and each
// reason the run had no watch to tell, in words.
func TestDoubtText(t *testing.T) {
	for _, tc := range []struct {
		d    unmount.Doubt
		want string
	}{
		{unmount.Doubt{}, ""},
		{unmount.Doubt{Kind: unmount.DoubtScan, ErrText: "open /proc/self/mountinfo: EMFILE"}, "could not scan: open /proc/self/mountinfo: EMFILE"},
		{unmount.Doubt{Kind: unmount.DoubtClaim, Device: "7:3", ErrText: "EIO"}, "could not open the block device 7:3 exclusively: EIO"},
		{unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{"/mnt/new", "/mnt/c d"}},
			`it is uncertain: the device number 0:52 now names only mounts made after the plan (/mnt/new, "/mnt/c d"), which may be another filesystem given the freed number (no inotify watch on its root)`},
		{unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{"/n"}, Watch: unmount.WatchLoss{Kind: unmount.WatchExpire}},
			"it is uncertain: the device number 0:52 now names only mounts made after the plan (/n), which may be another filesystem given the freed number (no inotify watch on the expire path (the lookup would clear the expiry mark))"},
		{unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{"/n"}, Watch: unmount.WatchLoss{Kind: unmount.WatchDetached}},
			"it is uncertain: the device number 0:52 now names only mounts made after the plan (/n), which may be another filesystem given the freed number (no inotify watch on a detached mount (no path leads to it))"},
		{unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{"/n"}, Watch: unmount.WatchLoss{Kind: unmount.WatchFailed, ErrText: "permission denied"}},
			"it is uncertain: the device number 0:52 now names only mounts made after the plan (/n), which may be another filesystem given the freed number (no inotify watch on its root: permission denied)"},
		{unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{"/n"}, Watch: unmount.WatchLoss{Kind: unmount.WatchDropped}},
			"it is uncertain: the device number 0:52 now names only mounts made after the plan (/n), which may be another filesystem given the freed number (its root's inotify watch was dropped without IN_UNMOUNT)"},
	} {
		if got := DoubtText(tc.d); got != tc.want {
			t.Errorf("DoubtText(%+v) =\n%q, want\n%q", tc.d, got, tc.want)
		}
	}
}

// TestDoubtEscapedOnce: a newer mount's path with a newline and a colour
// escape, carried raw by the doubt, shows escaped once in the finding's
// text; an error text escaped when it was made (\n already written out)
// is not escaped again; the JSON "note" is that same text.
func TestDoubtEscapedOnce(t *testing.T) {
	for _, f := range []unmount.Filesystem{
		{Checked: true, Doubt: unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{hostileMount}}},
		{Doubt: unmount.Doubt{Kind: unmount.DoubtScan, ErrText: "reading " + shownMount + ": EIO"}},
		{Checked: true, Doubt: unmount.Doubt{Kind: unmount.DoubtReused, Device: "0:52", Newer: []string{"/n"},
			Watch: unmount.WatchLoss{Kind: unmount.WatchFailed, ErrText: "inotify watch on the root of " + shownMount + ": EACCES"}}},
	} {
		text := FilesystemText(&f)
		checkShownOnce(t, "FilesystemText", text, shownMount)
		doc, err := json.Marshal(newRunFilesystemJSON(&f))
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Note string }
		if err := json.Unmarshal(doc, &got); err != nil {
			t.Fatal(err)
		}
		if got.Note != DoubtText(f.Doubt) {
			t.Errorf("JSON note %q, want %q", got.Note, DoubtText(f.Doubt))
		}
	}
}
