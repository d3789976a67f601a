package present

import (
	"fmt"
	"io"

	"mounttop/inspect"
)

// WriteList writes `mounttop list`'s text: a line naming the mount
// namespace, then the mount tree, one line per mount (ListColumns), the
// children indented below their parent. Warnings are not written here
// (WriteWarnings: they go to stderr).
func WriteList(w io.Writer, snap *inspect.Snapshot) error {
	fmt.Fprintln(w, "mount namespace "+NamespaceLine(snap))
	var rows []MountRow
	seen := map[inspect.MountID]bool{}
	var walk func(id inspect.MountID, indent string)
	walk = func(id inspect.MountID, indent string) {
		m, ok := snap.Mount(id)
		if !ok || seen[id] {
			return
		}
		seen[id] = true
		rows = append(rows, MountRow{Snap: snap, Mount: m, Prefix: indent, HiddenNote: true})
		for _, c := range m.Children {
			walk(c, indent+"  ")
		}
	}
	for _, r := range snap.Roots() {
		walk(r, "")
	}
	return ListColumns.WriteText(w, true, rows)
}

// NamespaceLine names our mount namespace and whether it is the host's:
// "mnt:[4026531841] (the host's)", "mnt:[N], not the host's (pid 1's is
// mnt:[M])".
func NamespaceLine(snap *inspect.Snapshot) string {
	switch host, known := snap.IsHost(snap.MountNS); {
	case snap.MountNS == 0:
		return "unknown (/proc/self/ns/mnt unreadable)"
	case !known || host:
		return NamespaceName(snap, snap.MountNS)
	}
	return fmt.Sprintf("mnt:[%d], not the host's (pid 1's is mnt:[%d])", snap.MountNS, snap.HostNS)
}

// WriteWarnings writes a scan's warnings, one "mounttop: warning: " line
// each (for stderr).
func WriteWarnings(w io.Writer, ws []inspect.Warning) {
	for _, warn := range ws {
		fmt.Fprintln(w, "mounttop: warning: "+WarningText(warn))
	}
}
