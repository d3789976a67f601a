package present

import (
	"testing"

	"mounttop/inspect"
)

// TestNamespaceName: the host's namespace, another, and one that cannot
// be told because pid 1's namespace was unreadable (HostNS 0).
func TestNamespaceName(t *testing.T) {
	known := inspect.NewSnapshot(nil, nil, nil)
	known.HostNS = 4026531841
	unknown := inspect.NewSnapshot(nil, nil, nil)
	for _, tc := range []struct {
		snap *inspect.Snapshot
		ino  uint64
		want string
	}{
		{known, 4026531841, "mnt:[4026531841] (the host's: pid 1's)"},
		{known, 4026532500, "mnt:[4026532500]"},
		{unknown, 7, "mnt:[7] (the host's? unknown: pid 1's namespace is unreadable)"},
	} {
		if got := NamespaceName(tc.snap, tc.ino); got != tc.want {
			t.Errorf("NamespaceName(%d) = %q, want %q", tc.ino, got, tc.want)
		}
	}
}
