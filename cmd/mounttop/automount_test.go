package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAutomountInList: list's text and JSON show each mount's automount
// state, read from a fixture /proc tree (this kernel has no autofs:
// inspect/testdata/automount holds a mount table with autofs indirect,
// offset and systemd direct triggers and kernel submounts).
func TestAutomountInList(t *testing.T) {
	const proc = "../../inspect/testdata/automount"
	r := runMounttop(t, "", nil, "list", "--json", "--proc", proc)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var out struct {
		Mounts []struct {
			Mountpoint string `json:"mountpoint"`
			Automount  *struct {
				By       string   `json:"by"`
				Kind     string   `json:"kind"`
				Trigger  bool     `json:"trigger"`
				TimeoutS *float64 `json:"timeout_s"`
				PGrp     int      `json:"pgrp"`
				Daemon   string   `json:"daemon"`
				Unit     string   `json:"unit"`
				Warning  string   `json:"warning"`
			} `json:"automount"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range out.Mounts {
		if a := m.Automount; a != nil {
			timeout := "null"
			if a.TimeoutS != nil {
				timeout = jsonNumber(*a.TimeoutS)
			}
			got[m.Mountpoint] += a.By + "/" + a.Kind + "/" + timeout + "/" + a.Daemon + a.Unit + ";"
			if !a.Trigger && !strings.Contains(a.Warning, "mounts it again") {
				t.Errorf("%s: warning %q does not say an access mounts it again", m.Mountpoint, a.Warning)
			}
		}
	}
	want := map[string]string{
		"/home":                     "autofs/indirect/300/automount;",
		"/home/alice":               "autofs/indirect/300/automount;",
		"/mnt/data set":             `systemd/direct/120/mnt-data\x20set.automount;systemd/direct/120/mnt-data\x20set.automount;`,
		"/net":                      "autofs/indirect/0/automount;",
		"/net/srv/export":           "autofs/offset/0/automount;autofs/offset/0/automount;",
		"/net/srv/export/sub":       "kernel/NFS submount (another export crossed into, or a referral)/600/;",
		"/afs/cambridge.redhat.com": "kernel/AFS cell or volume mount point/600/;",
		"/srv/cifs/dfslink":         "kernel/CIFS DFS link/500/;",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("automount states on %d mount points, want %d: %v", len(got), len(want), got)
	}
	r = runMounttop(t, "", nil, "list", "--proc", proc)
	if l := lineWith(r.stdout, "/home/alice"); !strings.HasSuffix(strings.TrimSpace(l), "autofs 5m0s") {
		t.Errorf("list text line %q: want the AUTOMOUNT column to say autofs 5m0s", l)
	}
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
