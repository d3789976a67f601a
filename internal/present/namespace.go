package present

import (
	"fmt"

	"mounttop/inspect"
)

// NamespaceName names mount namespace ino for the operator: "mnt:[N]",
// with "(the host's: pid 1's)" for the initial one, or "(the host's?
// unknown: ...)" when pid 1's namespace could not be read
// (inspect.Snapshot.IsHost). It carries no name from the system, only
// numbers, so it needs no escaping.
func NamespaceName(snap *inspect.Snapshot, ino uint64) string {
	name := NamespaceID(ino)
	switch host, known := snap.IsHost(ino); {
	case !known:
		return name + " (the host's? unknown: pid 1's namespace is unreadable)"
	case host:
		return name + " (the host's: pid 1's)"
	}
	return name
}

// NamespaceID names mount namespace ino as the kernel does in
// /proc/PID/ns/mnt ("mnt:[4026531841]", namespaces(7)).
func NamespaceID(ino uint64) string { return fmt.Sprintf("mnt:[%d]", ino) }
