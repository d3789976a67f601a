package present

import (
	"errors"
	"testing"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// TestSystemMountText: each reason a mount is one the system runs on, as
// the view says it and as the engine's refusal says it.
func TestSystemMountText(t *testing.T) {
	for _, tc := range []struct {
		m       inspect.Mount
		kind    unmount.SystemKind
		want    string
		refusal string
	}{
		{inspect.Mount{Mountpoint: "/proc", FSType: "proc"}, unmount.SystemPath, "/proc is a mount the system runs on",
			"umount /proc: refused: /proc is a mount the system runs on (mounttop umount --allow-system-mount overrides this)"},
		{inspect.Mount{Mountpoint: "/srv/cg", FSType: "cgroup2"}, unmount.SystemAPI, "/srv/cg is a kernel API filesystem (cgroup2), not storage",
			"umount /srv/cg: refused: /srv/cg is a kernel API filesystem (cgroup2), not storage (mounttop umount --allow-system-mount overrides this)"},
		{inspect.Mount{Mountpoint: "/srv/c d", FSType: "mqueue"}, unmount.SystemAPI, `"/srv/c d" is a kernel API filesystem (mqueue), not storage`,
			`umount "/srv/c d": refused: "/srv/c d" is a kernel API filesystem (mqueue), not storage (mounttop umount --allow-system-mount overrides this)`},
		{inspect.Mount{Mountpoint: "/mnt/data", FSType: "ext4"}, unmount.SystemNone, "", ""},
	} {
		if k := unmount.SystemMount(&tc.m); k != tc.kind {
			t.Errorf("SystemMount(%s) = %v, want %v", tc.m.Mountpoint, k, tc.kind)
		}
		if got := SystemMountText(tc.kind, tc.m); got != tc.want {
			t.Errorf("SystemMountText = %q, want %q", got, tc.want)
		}
		if tc.kind == unmount.SystemNone {
			continue
		}
		err := error(&unmount.Error{Op: "umount", Target: tc.m.Mountpoint, Err: &unmount.SystemRefused{Kind: tc.kind, Mount: tc.m}})
		if !errors.Is(err, unmount.ErrRefused) || err.Error() != tc.refusal {
			t.Errorf("refusal %q (is ErrRefused: %v), want %q", err, errors.Is(err, unmount.ErrRefused), tc.refusal)
		}
	}
}

// TestSystemMountEscapedOnce: an API filesystem mounted at a path with a
// newline and a colour escape: the view's sentence and the engine's
// refusal, shown as cmd shows an error (termsafe.Message), escape the
// path once.
func TestSystemMountEscapedOnce(t *testing.T) {
	m := inspect.Mount{Mountpoint: hostileMount, FSType: "cgroup2"}
	k := unmount.SystemMount(&m)
	checkShownOnce(t, "NotOnSystemMount", NotOnSystemMount(unmount.Plan{Mode: unmount.ModeLazy}, k, m), shownMount)
	err := &unmount.Error{Op: "umount", Target: m.Mountpoint, Err: &unmount.SystemRefused{Kind: k, Mount: m}}
	checkShownOnce(t, "refusal", termsafe.Message(err.Error()), shownMount)
}
