package scantext

import (
	"errors"
	"testing"
)

// TestErrTexts: the refusal of a detached mount and the hints of unmount's
// errors, word for word as they were written in unmount.
func TestErrTexts(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{DetachedRefused("lazy"), "the mount is detached (lazily unmounted: in no mount table), so umount2 (lazy) cannot name it; --staged revokes its holders so that the kernel lets it go"},
		{HintExpireSubmounts, "expire the submounts first"},
		{HintRecursive, "--recursive unmounts them too, deepest first"},
		{HintFenceLeftBeneath, "an empty read-only tmpfs is left beneath the mount; it shows only once the mount is gone"},
		{HintScanFailed(errors.New(`open /proc/7/fd: EACCES`)), "could not scan for holders: open /proc/7/fd: EACCES"},
	} {
		if c.got != c.want {
			t.Errorf("got %q\nwant %q", c.got, c.want)
		}
	}
}
