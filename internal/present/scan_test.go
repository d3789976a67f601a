package present

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
)

// TestEveryWarningKindHasASentence renders one warning of every kind inspect
// has, with the wording the scan wrote before warnings became data (the
// stderr lines of `list`/`holders`, their JSON "warnings" and the view's
// holders pane show these). A kind added to inspect without a sentence
// here fails.
func TestEveryWarningKindHasASentence(t *testing.T) {
	since := time.Date(2026, 12, 2, 14, 3, 4, 0, time.UTC)
	eacces := errors.New("permission denied")
	cases := map[inspect.WarningKind][]struct {
		w    inspect.Warning
		want string
	}{
		inspect.WarnRead: {
			{inspect.Warning{PID: 12, What: "reading stat", Err: eacces}, "pid 12: reading stat: permission denied"},
			{inspect.Warning{PIDs: []int{12}, What: "cannot read open files", Err: eacces}, "pid 12: cannot read open files: permission denied"},
			{inspect.Warning{PIDs: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, What: "cannot read open files", Err: eacces},
				"cannot read open files: permission denied (10 processes: pids 1, 2, 3, 4, 5, 6, 7, 8, … 2 more)"},
			{inspect.Warning{What: "something"}, "something"},
		},
		inspect.WarnMapsByPath: {{inspect.Warning{Kind: inspect.WarnMapsByPath, PIDs: []int{3, 4}},
			"mappings attributed by path among bind mounts (map_files needs CAP_SYS_ADMIN) (2 processes: pids 3, 4)"}},
		inspect.WarnLocks: {{inspect.Warning{Kind: inspect.WarnLocks, Err: eacces},
			"reading /proc/locks; locks are not shown: permission denied"}},
		inspect.WarnListPIDs: {{inspect.Warning{Kind: inspect.WarnListPIDs, Err: eacces}, "listing processes: permission denied"}},
		inspect.WarnCutShort: {{inspect.Warning{Kind: inspect.WarnCutShort, Err: context.DeadlineExceeded},
			"scan cut short: context deadline exceeded"}},
		inspect.WarnStuck: {{inspect.Warning{Kind: inspect.WarnStuck, PIDs: []int{42},
			Stuck:   []inspect.StuckRead{{File: "/proc/42/cmdline", Since: since, For: 71 * time.Second}},
			LeftOut: []string{"cmdline", "maps", "map_files"}},
			"pid 42: stuck in the kernel (a page fault or I/O on a filesystem whose server does not answer?): reading /proc/42/cmdline since 14:03:04 (1m11s ago) has not returned; not read again until it does: cmdline, maps, map_files"}},
		inspect.WarnGaveUp: {{inspect.Warning{Kind: inspect.WarnGaveUp, PIDs: []int{7}, Limit: time.Second},
			"gave up on pid 7 after 1s, twice (stuck in the kernel, e.g. on a hung filesystem; state D?); the reads that did not return are not asked again until they do"}},
		inspect.WarnNotScanned: {{inspect.Warning{Kind: inspect.WarnNotScanned, Count: 3}, "3 processes not scanned before the deadline"}},
		inspect.WarnUniqueIDs: {{inspect.Warning{Kind: inspect.WarnUniqueIDs, Err: errors.New("function not implemented")},
			"unique mount IDs unavailable; using the reusable 32-bit IDs with device and root: function not implemented"}},
		inspect.WarnTableChanged: {{inspect.Warning{Kind: inspect.WarnTableChanged, Count: 2},
			"2 mounts changed while the table was read; their IDs are stand-ins until the next scan"}},
		inspect.WarnUnreadableMount: {
			{inspect.Warning{Kind: inspect.WarnUnreadableMount, PIDs: []int{7, 9}, Device: "0:99", FSType: "tmpfs", Path: "/mnt/a", Advice: inspect.AdviceRoot},
				"2 processes: pids 7, 9 hold a mount of 0:99 (tmpfs, as at /mnt/a) that is in no mount table mounttop could read: a copy in another mount namespace, or a detached mount; run as root to tell"},
			{inspect.Warning{Kind: inspect.WarnUnreadableMount, PIDs: []int{7}, Device: "0:99", FSType: "tmpfs", Path: "/mnt/a", Advice: inspect.AdviceSecurityModule},
				"pid 7 hold a mount of 0:99 (tmpfs, as at /mnt/a) that is in no mount table mounttop could read: a copy in another mount namespace, or a detached mount; even root may not read them here (a security module?)"},
			{inspect.Warning{Kind: inspect.WarnUnreadableMount, PIDs: []int{7}, Device: "0:99", FSType: "tmpfs", Path: "/mnt/a", Advice: inspect.AdviceInitialUserNS},
				"pid 7 hold a mount of 0:99 (tmpfs, as at /mnt/a) that is in no mount table mounttop could read: a copy in another mount namespace, or a detached mount; mounttop is root only inside a user namespace, which may not look at its parent's: run it from the initial user namespace to tell"},
		},
		inspect.WarnRelativeLayer: {
			{inspect.Warning{Kind: inspect.WarnRelativeLayer, Path: "/ov", Layer: inspect.Layer{Option: inspect.LayerUpper, Path: "up"}},
				"overlay at /ov names its layer upperdir=up by a path relative to the mounter's cwd at mount time: which mount it lies on cannot be told"},
			{inspect.Warning{Kind: inspect.WarnRelativeLayer, Path: "/ov", Namespace: 4026532999, Layer: inspect.Layer{Option: inspect.LayerLower, Path: "lo"}},
				"overlay at /ov in mount namespace mnt:[4026532999] names its layer lowerdir=lo by a path relative to the mounter's cwd at mount time: which mount it lies on cannot be told"},
		},
	}
	// Every kind, by its name: past the last one String says
	// "WarningKind(N)". A kind without a sentence of its own is written
	// as its bare name, which a sentence never is.
	var kinds []inspect.WarningKind
	for k := inspect.WarningKind(0); !strings.HasPrefix(k.String(), "WarningKind("); k++ {
		kinds = append(kinds, k)
	}
	if len(kinds) < len(cases) {
		t.Fatalf("found %d warning kinds by name, the table has %d", len(kinds), len(cases))
	}
	for _, kind := range kinds {
		if scantext.Warning(inspect.Warning{Kind: kind}) == kind.String() {
			t.Errorf("warning kind %v has no sentence (internal/present/scantext)", kind)
		}
		if len(cases[kind]) == 0 {
			t.Errorf("warning kind %v: no case in this test", kind)
		}
		for _, c := range cases[kind] {
			c.w.Kind = kind
			if got := WarningText(c.w); got != c.want {
				t.Errorf("%v:\n got %q\nwant %q", kind, got, c.want)
			}
		}
	}
}

// TestWarningNamesEscapedOnce: a warning naming a path with a newline and a
// colour escape shows it escaped once, on the terminal (the stderr line,
// the view's pane) and in JSON.
func TestWarningNamesEscapedOnce(t *testing.T) {
	ws := []inspect.Warning{
		{PID: 9, What: "reading " + hostileMount + "/f"},
		{Kind: inspect.WarnUnreadableMount, PIDs: []int{7}, Device: "0:99", FSType: "tmpfs", Path: hostileMount, Advice: inspect.AdviceRoot},
		{Kind: inspect.WarnRelativeLayer, Path: hostileMount, Layer: inspect.Layer{Option: inspect.LayerUpper, Path: hostileComm}},
	}
	for _, w := range ws {
		checkShownOnce(t, w.Kind.String(), WarningText(w), shownMount)
	}
	checkShownOnce(t, "relative layer", WarningText(ws[2]), shownComm)
	var b strings.Builder
	WriteWarnings(&b, ws)
	checkShownOnce(t, "stderr warnings", b.String(), shownMount)
	doc, err := json.Marshal(Warnings(ws))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(string(doc), 0x1b) || strings.Contains(string(doc), `\\n`) || strings.Contains(string(doc), `\\u001b`) {
		t.Errorf("JSON warnings: a raw control or a name escaped twice: %s", doc)
	}
	var back []string
	if err := json.Unmarshal(doc, &back); err != nil {
		t.Fatal(err)
	}
	for i, s := range back {
		if s != scantext.Warning(ws[i]) || !strings.Contains(s, hostileMount) {
			t.Errorf("JSON warning %d decodes to %q, want the sentence with the raw name", i, s)
		}
	}
}

// TestKernelHolderAction: what releases each kind of kernel holder, derived
// from its kind and fields, escaped once.
func TestKernelHolderAction(t *testing.T) {
	for _, c := range []struct {
		k    inspect.KernelHolder
		want string
	}{
		{inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop3"}, "detach loop device (losetup -d /dev/loop3)"},
		{inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop3", MountedAt: "/mnt/img"}, "unmount /mnt/img (it mounts /dev/loop3), then detach the loop device"},
		{inspect.KernelHolder{Kind: inspect.KernelSwap, Name: "/mnt/t/swapfile"}, "swapoff"},
		{inspect.KernelHolder{Kind: inspect.KernelNFSExport, Name: "/srv"}, "exportfs -u"},
		{inspect.KernelHolder{Kind: inspect.KernelIOURing, FD: 9, PID: 4}, "stop the process or unregister the file"},
		{inspect.KernelHolder{Kind: inspect.KernelBinfmt, Name: "qemu", Entry: "/proc/sys/fs/binfmt_misc/qemu"}, "echo -1 > /proc/sys/fs/binfmt_misc/qemu"},
		{inspect.KernelHolder{Kind: inspect.KernelBlockHolder, Name: "dm-0"}, "remove the dm-0 device (dmsetup remove / mdadm --stop)"},
		{inspect.KernelHolder{Kind: inspect.KernelSubmount, Name: "/mnt/t/sub"}, "unmount it first (deepest first)"},
		{inspect.KernelHolder{Kind: inspect.KernelOverMount, Name: "/mnt/t"}, "unmount it first (deepest first)"},
		{inspect.KernelHolder{Kind: inspect.KernelOverlay, Name: "/ov", Layers: []inspect.Layer{{Option: inspect.LayerUpper, Path: "/mnt/t/up"}}}, "unmount the overlay at /ov first"},
		{inspect.KernelHolder{Kind: "fuse.mergerfs", Name: "/ov", Namespace: 4026532999, Layers: []inspect.Layer{{Option: inspect.LayerLower, Path: "/mnt/t/lo"}}},
			"unmount the overlay at /ov in mount namespace mnt:[4026532999] first"},
		{inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop3", MountedAt: hostileMount}, `unmount ` + shownMount + ` (it mounts /dev/loop3), then detach the loop device`},
		{inspect.KernelHolder{Kind: "unheard-of"}, ""},
	} {
		if got := KernelHolderAction(c.k); got != c.want {
			t.Errorf("%s %s: action %q, want %q", c.k.Kind, c.k.Name, got, c.want)
		}
	}
}

// TestAutomountText reads the automount fixture /proc tree (every kind of
// automounting: inspect's TestAutomountFromFixture) and renders the
// AUTOMOUNT cell, the unmount warning and the JSON note of each.
func TestAutomountText(t *testing.T) {
	in, err := inspect.New("../../inspect/testdata/automount")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := in.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	at := func(p string, i int) *inspect.Mount {
		t.Helper()
		for j := range snap.Mounts {
			if m := &snap.Mounts[j]; m.Mountpoint == p {
				if i == 0 {
					return m
				}
				i--
			}
		}
		t.Fatalf("no mount %d at %s", i, p)
		return nil
	}
	for _, c := range []struct {
		path       string
		i          int
		cell, warn string // warn: a part of the warning
		note       string
	}{
		// The unit name holds a backslash (systemd-escape): shown as \\ on a terminal.
		{"/home", 0, "autofs trigger", "/home is an autofs trigger (indirect) of the automount daemon (process group 1234, automount): unmounting it under the daemon confuses it", ""},
		{"/home/alice", 0, "autofs 5m0s", "the next access mounts it again; it is also expired by itself after 5m0s idle; the real fix is to remove its map entry and reload autofs", ""},
		{"/mnt/data set", 0, "systemd trigger", `is the autofs trigger of systemd's mnt-data\\x20set.automount: unmounting it under systemd leaves the unit failed`, "autofs mount of pid 1 (systemd)"},
		{"/mnt/data set", 1, "systemd 2m0s", `systemctl stop mnt-data\\x20set.automount (then unmount)`, "autofs mount of pid 1 (systemd)"},
		{"/net/srv/export", 1, "autofs never", "the next access mounts it again; it never expires by itself", ""},
		{"/net/srv/export/sub", 0, "kernel 10m0s", "the kernel mounted /net/srv/export/sub on access (a NFS submount", "a submount of a nfs"},
		{"/srv/cifs/dfslink", 0, "kernel 8m20s", "(a CIFS DFS link): the next access to its path mounts it again; it is also expired by itself after 8m20s idle; to keep it away, unmount the mount above it", "a submount of a cifs"},
	} {
		m := at(c.path, c.i)
		if m.Automount == nil {
			t.Errorf("%s (%d): no automount", c.path, c.i)
			continue
		}
		if got := automountCell(m); got != c.cell {
			t.Errorf("%s (%d): cell %q, want %q", c.path, c.i, got, c.cell)
		}
		if got := AutomountWarning(m); !strings.Contains(got, c.warn) {
			t.Errorf("%s (%d): warning %q lacks %q", c.path, c.i, got, c.warn)
		}
		if got := automount(m).Note; !strings.HasPrefix(got, c.note) || (c.note == "") != (got == "") {
			t.Errorf("%s (%d): note %q, want %q...", c.path, c.i, got, c.note)
		}
	}
	if got := automountCell(at("/tmp", 0)); got != "-" {
		t.Errorf("/tmp: cell %q, want -", got)
	}
}
