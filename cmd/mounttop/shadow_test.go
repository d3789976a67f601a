package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// TestShadowedMount: X/y mounted, X over-mounted, X/y mounted again. The
// table lists two mounts at X/y; the path leads to the second one, so
// `holders X/y` names its holder, `list` marks the first one hidden, and
// `holders --id` still reaches the hidden one with its own holder.
func TestShadowedMount(t *testing.T) {
	top := testns.Tmpfs(t, "")
	x := filepath.Join(top, "X")
	y := filepath.Join(x, "y")
	mount := func(source, dir string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(source, dir, "tmpfs", 0, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", source, dir, err)
		}
		// Lazily, in reverse order (t.Cleanup is LIFO), so the hidden
		// mount goes with its over-mount.
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	}
	mount("first-y", y)
	writeAt(t, filepath.Join(y, "a"))
	hiddenHolder := testns.StartVictim(t, testns.RoleFD, filepath.Join(y, "a"), "r")
	mount("over-x", x)
	mount("second-y", y)
	writeAt(t, filepath.Join(y, "b"))
	visibleHolder := testns.StartVictim(t, testns.RoleFD, filepath.Join(y, "b"), "r")

	type holdersOut struct {
		Mount struct {
			UniqueID uint64 `json:"unique_id"`
			Source   string `json:"source"`
			Hidden   bool   `json:"hidden"`
		} `json:"mount"`
		Holders []struct {
			PID int `json:"pid"`
		} `json:"holders"`
	}
	holdersOf := func(args ...string) holdersOut {
		t.Helper()
		r := runMounttop(t, "", nil, append([]string{"holders", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("holders %v: exit %d: %s", args, r.code, r.stderr)
		}
		var out holdersOut
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		return out
	}
	vis := holdersOf(y)
	if vis.Mount.Source != "second-y" || vis.Mount.Hidden || len(vis.Holders) != 1 || vis.Holders[0].PID != visibleHolder.PID {
		t.Errorf("holders %s = %+v, want the visible mount second-y held by pid %d", y, vis, visibleHolder.PID)
	}

	r := runMounttop(t, "", nil, "list", "--json")
	if r.code != 0 {
		t.Fatalf("list: exit %d: %s", r.code, r.stderr)
	}
	var list struct {
		Mounts []struct {
			UniqueID   uint64 `json:"unique_id"`
			Mountpoint string `json:"mountpoint"`
			Source     string `json:"source"`
			Hidden     bool   `json:"hidden"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	var hiddenID uint64
	seen := map[string]bool{}
	for _, m := range list.Mounts {
		if !strings.HasPrefix(m.Mountpoint, top) {
			continue
		}
		seen[m.Source] = m.Hidden
		if m.Source == "first-y" {
			hiddenID = m.UniqueID
		}
	}
	if want := map[string]bool{"mounttop-test": false, "first-y": true, "over-x": false, "second-y": false}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("list --json hidden marks under %s = %v, want %v", top, seen, want)
	}
	if r := runMounttop(t, "", nil, "list"); !strings.Contains(r.stdout, "first-y") ||
		!strings.Contains(lineWith(r.stdout, "first-y"), "(hidden") || strings.Contains(lineWith(r.stdout, "second-y"), "hidden") {
		t.Errorf("list text does not mark just the shadowed mount hidden:\n%s", r.stdout)
	}

	hid := holdersOf("--id", fmt.Sprint(hiddenID))
	if hid.Mount.Source != "first-y" || !hid.Mount.Hidden || len(hid.Holders) != 1 || hid.Holders[0].PID != hiddenHolder.PID {
		t.Errorf("holders --id %d = %+v, want the hidden first-y held by pid %d", hiddenID, hid, hiddenHolder.PID)
	}

	if r := runMounttop(t, "", nil, "holders", "--id", fmt.Sprint(hiddenID)); !strings.Contains(r.stdout, "\nhidden: the path leads to another mount") {
		t.Errorf("holders --id text of the hidden mount does not say it is hidden:\n%s", r.stdout)
	}

	// The staged run takes the mount the path leads to, revoking its
	// holder, and leaves the hidden one (and its holder) alone.
	r = runMounttop(t, "", nil, append([]string{"umount", "--staged", "--interval", "50ms", "--yes", y}, journalArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("umount --staged %s: exit %d\n%s%s", y, r.code, r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, "list", "--json")
	if strings.Contains(r.stdout, `"second-y"`) || !strings.Contains(r.stdout, `"first-y"`) || !hiddenHolder.Alive() {
		t.Errorf("after the staged run, want second-y gone and first-y with its holder left:\n%s", r.stdout)
	}
}

func writeAt(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineWith is the first line of text containing s.
func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
