package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// TestDetachedInList: a lazily unmounted mount that a process still holds
// is listed as detached, and `holders --id` shows its holder.
func TestDetachedInList(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := testns.StartVictim(t, testns.RoleFD, filepath.Join(dir, "f"), "r")
	id := detachedID(t, dir, 1) // lazily unmounts dir; found in list --json
	r := runMounttop(t, "", nil, "holders", "--json", "--id", fmt.Sprint(id))
	var h struct {
		Mount   struct{ Detached bool } `json:"mount"`
		Holders []struct {
			PID  int `json:"pid"`
			Uses []struct{ Path string }
		} `json:"holders"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("%v: %s %s", err, r.stdout, r.stderr)
	}
	if !h.Mount.Detached || len(h.Holders) != 1 || h.Holders[0].PID != v.PID || h.Holders[0].Uses[0].Path != "/f" {
		t.Errorf("holders --id of the detached mount: %+v", h)
	}
	if r := runMounttop(t, "", nil, "holders", "--id", "12345"); r.code != 2 {
		t.Errorf("unknown --id: exit %d, want 2", r.code)
	}
}

// TestKernelHoldersInJSON: a submount shows as a kernel holder with its
// action.
func TestKernelHoldersInJSON(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("x", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	r := runMounttop(t, "", nil, "holders", "--json", dir)
	var out struct {
		KernelHolders []struct{ Kind, Name, Action string } `json:"kernel_holders"`
		OtherNS       []any                                 `json:"other_namespaces"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.KernelHolders) != 1 || out.KernelHolders[0].Kind != "submount" || out.KernelHolders[0].Name != sub || out.OtherNS == nil {
		t.Errorf("kernel holders: %+v", out)
	}
}
