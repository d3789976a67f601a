package unmount

import (
	"strings"
	"testing"

	"mounttop/inspect"
)

// TestHostCopyNeedsConfirmation: a copy in the host's mount namespace (pid
// 1's) is named as the host's and refused unless the operator confirmed it
// (Plan.ReleaseHost, or ConfirmHost for the view's separate question); a
// copy in another namespace is not; when pid 1's namespace is unreadable
// the words say that it is unknown.
func TestHostCopyNeedsConfirmation(t *testing.T) {
	const ours, host, other = 4026531840, 4026531841, 4026532999
	snap := func(hostNS uint64) *inspect.Snapshot {
		s := inspect.NewSnapshot([]inspect.Mount{
			{ID: 1, ParentID: 1, Mountpoint: "/", OldID: 1},
			{ID: 2, ParentID: 1, Mountpoint: "/mnt/t", OldID: 2, Major: 0, Minor: 77},
		}, nil, nil)
		s.MountNS, s.HostNS = ours, hostNS
		for _, ino := range []uint64{host, other} {
			s.Namespaces = append(s.Namespaces, inspect.Namespace{Inode: ino, PIDs: []int{int(ino % 1000)}, Host: ino == hostNS,
				Mounts:  []inspect.Mount{{OldID: 60, OldParentID: 59, Mountpoint: "/mnt/t", Major: 0, Minor: 77}},
				Holders: map[int][]inspect.Holder{}})
		}
		return s
	}
	byNS := func(rs []Release) map[uint64]Release {
		out := map[uint64]Release{}
		for _, r := range rs {
			out[r.Namespace] = r
		}
		return out
	}
	rs := byNS(findReleases(snap(host), []inspect.MountID{2}, false))
	h, o := rs[host], rs[other]
	if !h.Host || !h.HostRefused() || !strings.Contains(ReleaseWords(h), "mnt:[4026531841] (the host's: pid 1's)") {
		t.Errorf("host copy = %+v, want refused and named the host's", h)
	}
	if o.Host || o.Refused() || strings.Contains(ReleaseWords(o), "host") {
		t.Errorf("other copy = %+v, want releasable and not the host's", o)
	}
	if c := h.ConfirmHost(); c.Refused() {
		t.Errorf("ConfirmHost left %v", c.Refusal)
	}
	if c := (Release{Refusal: ReleaseNoEntry}).ConfirmHost(); !c.Refused() {
		t.Error("ConfirmHost lifted a refusal that is not about the host")
	}
	if h := byNS(findReleases(snap(host), []inspect.MountID{2}, true))[host]; h.Refused() || !h.Host {
		t.Errorf("with ReleaseHost: %+v, want not refused", h)
	}
	for ns, r := range byNS(findReleases(snap(0), []inspect.MountID{2}, false)) {
		if r.Host || r.Refused() || !strings.Contains(ReleaseWords(r), "(the host's? unknown") {
			t.Errorf("pid 1's namespace unreadable: copy in mnt:[%d] = %+v, want the unknown said", ns, r)
		}
	}
}
