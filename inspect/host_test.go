package inspect

import (
	"testing"

	"mounttop/internal/testns"
)

// TestHostNamespaceNamed: the tests run in a private copy of the host's
// mount namespace, so ours is not the host's (pid 1's), and the
// namespace pid 1 lives in, when a process of it was read, is marked Host.
// Works also where /proc/1/ns/mnt is denied to root (this machine): pid
// 1's root mount ID then names its namespace.
func TestHostNamespaceNamed(t *testing.T) {
	testns.Require(t, testns.RealRoot) // a user namespace may not read pid 1's
	snap := scan(t)
	if snap.MountNS == 0 || snap.HostNS == 0 || snap.MountNS == snap.HostNS {
		t.Fatalf("MountNS %d, HostNS %d: want both known and different", snap.MountNS, snap.HostNS)
	}
	if host, known := snap.IsHost(snap.MountNS); host || !known {
		t.Errorf("IsHost(ours) = %v, %v", host, known)
	}
	hosts := 0
	for _, ns := range snap.Namespaces {
		if ns.Host != (ns.Inode == snap.HostNS) {
			t.Errorf("namespace mnt:[%d] Host = %v", ns.Inode, ns.Host)
		}
		if ns.Host {
			hosts++
		}
	}
	if hosts > 1 {
		t.Errorf("%d namespaces marked the host's", hosts)
	}
	s := NewSnapshot(nil, nil, nil)
	if host, known := s.IsHost(7); host || known {
		t.Errorf("unknown host: IsHost = %v, %v", host, known)
	}
}
