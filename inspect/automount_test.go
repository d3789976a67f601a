package inspect

import (
	"context"
	"testing"
	"time"
)

// TestAutomountFromFixture reads a recorded-style mount table with every
// kind of automounting (this kernel has no autofs, so it is a fixture /proc
// tree): an indirect autofs map with an NFS home under it, a systemd
// direct automount (pgrp 1) with ext4 on it, a -hosts map with an offset
// trigger, an NFS export on it and a submount the kernel crossed into,
// AFS and CIFS DFS submounts, a bind mount of CIFS (same device: not a
// kernel submount) and a plain tmpfs.
func TestAutomountFromFixture(t *testing.T) {
	in, err := New("testdata/automount")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := in.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string][]*Mount{}
	for i := range snap.Mounts {
		m := &snap.Mounts[i]
		byPath[m.Mountpoint] = append(byPath[m.Mountpoint], m)
	}
	one := func(p string, i int) *Automount {
		t.Helper()
		if len(byPath[p]) <= i {
			t.Fatalf("no mount %d at %s", i, p)
		}
		return byPath[p][i].Automount
	}
	for _, c := range []struct {
		path string
		i    int
		want Automount // compared field by field below; zero fields ignored except By
	}{
		{"/home", 0, Automount{By: "autofs", Kind: "indirect", Trigger: true, PGrp: 1234, Daemon: "automount", Timeout: 5 * time.Minute}},
		{"/home/alice", 0, Automount{By: "autofs", Kind: "indirect", PGrp: 1234, Daemon: "automount", Timeout: 5 * time.Minute}},
		{"/mnt/data set", 0, Automount{By: "systemd", Kind: "direct", Trigger: true, PGrp: 1, Unit: `mnt-data\x20set.automount`, Timeout: 2 * time.Minute}},
		{"/mnt/data set", 1, Automount{By: "systemd", Kind: "direct", PGrp: 1, Unit: `mnt-data\x20set.automount`, Timeout: 2 * time.Minute}},
		{"/net/srv/export", 0, Automount{By: "autofs", Kind: "offset", Trigger: true, PGrp: 1234, Daemon: "automount"}},
		{"/net/srv/export", 1, Automount{By: "autofs", Kind: "offset", PGrp: 1234, Daemon: "automount"}},
		{"/net/srv/export/sub", 0, Automount{By: "kernel", Timeout: 10 * time.Minute}},
		{"/afs/cambridge.redhat.com", 0, Automount{By: "kernel", Timeout: 10 * time.Minute}},
		{"/srv/cifs/dfslink", 0, Automount{By: "kernel", Timeout: 500 * time.Second}},
	} {
		a := one(c.path, c.i)
		if a == nil {
			t.Errorf("%s (%d): no automount state", c.path, c.i)
			continue
		}
		w := c.want
		if a.By != w.By || a.Trigger != w.Trigger || (w.Kind != "" && a.Kind != w.Kind) || a.PGrp != w.PGrp || a.Daemon != w.Daemon ||
			a.Unit != w.Unit || a.Timeout != w.Timeout || !a.TimeoutKnown {
			t.Errorf("%s (%d) = %+v, want %+v", c.path, c.i, *a, w)
		}
		if !a.Trigger && a.TriggerID == 0 {
			t.Errorf("%s (%d): no trigger named", c.path, c.i)
		}
	}
	for _, p := range []string{"/", "/afs", "/srv/cifs", "/srv/cifs/bind", "/tmp"} {
		if a := one(p, 0); a != nil {
			t.Errorf("%s: automount %+v, want none", p, *a)
		}
	}
}
