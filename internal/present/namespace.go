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
	name := fmt.Sprintf("mnt:[%d]", ino)
	switch host, known := snap.IsHost(ino); {
	case !known:
		return name + " (the host's? unknown: pid 1's namespace is unreadable)"
	case host:
		return name + " (the host's: pid 1's)"
	}
	return name
}
