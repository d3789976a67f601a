package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/testns"
)

// topMountID is the unique ID of the mount visible at path, by the table.
func topMountID(t *testing.T, path string) inspect.MountID {
	t.Helper()
	in, err := inspect.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := in.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, ok := snap.MountAt(path)
	if !ok {
		t.Fatalf("%s is not a mount point", path)
	}
	return m.ID
}

// killMidDrain starts `mounttop umount --staged` of dir and SIGKILLs it
// at its first drain event (a holder it cannot revoke keeps it draining).
func killMidDrain(t *testing.T, dir string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "umount", "--staged", "--interval", "50ms", "--timeout", "5m", "--yes", "--json", "--journal", "-", dir)
	cmd.Env = append(os.Environ(), envAsMain+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var stages []string
	for sc.Scan() {
		var ev struct{ Stage string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		stages = append(stages, ev.Stage)
		if ev.Stage == "drain" {
			break
		}
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(stages) == 0 || stages[len(stages)-1] != "drain" {
		t.Fatalf("the run never drained: %v", stages)
	}
}

type leftoverOut struct {
	Target   string `json:"target"`
	Kind     string `json:"kind"`
	FenceID  uint64 `json:"fence_unique_id"`
	RealID   uint64 `json:"unique_id"`
	RealPath string `json:"real_path"`
	Stash    string `json:"stash"`
	Rollback string `json:"rollback"`
}

// TestLeftoverFenceAfterKill: mounttop SIGKILLed mid-drain leaves its
// fence up; `list` (text and JSON) says so, with the command that rolls it
// back; --dry-run changes nothing; the rollback puts the same mount (unique
// ID) back at its place with its data, removes fence and stash, and is
// journaled. Under both fences: beneath-swap (private parent) and
// over-mount (shared parent).
func TestLeftoverFenceAfterKill(t *testing.T) {
	for _, c := range []struct {
		name   string
		shared bool
		kind   string
	}{{"beneath", false, "beneath-swap"}, {"over-mount", true, "over-mount"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := testns.TmpfsUnder(t, c.shared)
			if err := os.WriteFile(filepath.Join(dir, "data"), []byte("kept\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			v := testns.StartVictimExe(t, testns.CopySelf(t, dir), testns.RoleSleep)
			id := topMountID(t, dir)
			killMidDrain(t, dir)

			r := runMounttop(t, "", nil, "list", "--json")
			var out struct{ Leftovers []leftoverOut }
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
				t.Fatalf("list --json: exit %d %v: %s", r.code, err, r.stderr)
			}
			var l *leftoverOut
			for i := range out.Leftovers {
				if out.Leftovers[i].Target == dir {
					l = &out.Leftovers[i]
				}
			}
			if l == nil {
				t.Fatalf("list --json does not report the fence at %s: %+v", dir, out.Leftovers)
			}
			if l.Stash != "" {
				t.Cleanup(func() { // the rollback failed: do not leave the stash
					_ = unix.Unmount(filepath.Join(l.Stash, "mnt"), unix.MNT_DETACH)
					_ = unix.Unmount(l.Stash, unix.MNT_DETACH)
					_ = os.RemoveAll(l.Stash)
				})
			}
			if l.Kind != c.kind || l.RealID != uint64(id) || l.Rollback != "mounttop umount --rollback-fence "+dir {
				t.Fatalf("leftover %+v, want kind %s, unique_id %d", l, c.kind, id)
			}
			if top := topMountID(t, dir); uint64(top) != l.FenceID {
				t.Fatalf("the top mount at %s is %d, not the fence %d", dir, top, l.FenceID)
			}
			r = runMounttop(t, "", nil, "list")
			if want := "LEFTOVER: a fence left by a killed run covers " + dir; !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "run `mounttop umount --rollback-fence "+dir+"`") {
				t.Fatalf("list lacks %q:\n%s", want, r.stdout)
			}

			before := mountTable(t)
			r = runMounttop(t, "", nil, "umount", "--rollback-fence", "--dry-run", dir)
			if r.code != 0 || !strings.Contains(r.stdout, "plan: a fence left by a killed run covers "+dir) || !strings.Contains(r.stdout, "dry run: nothing changed") || mountTable(t) != before {
				t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			r = runMounttop(t, "", nil, "umount", "--rollback-fence", dir)
			if r.code != exitUsage || !strings.Contains(r.stderr, "stdin is not a terminal") || mountTable(t) != before {
				t.Fatalf("without --yes: exit %d %s", r.code, r.stderr)
			}

			jpath := filepath.Join(t.TempDir(), "journal.jsonl")
			r = runMounttop(t, "", nil, "umount", "--rollback-fence", "--yes", "--journal", jpath, dir)
			if r.code != 0 {
				t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if top := topMountID(t, dir); top != id {
				t.Fatalf("after the rollback the top mount at %s is %d, want %d", dir, top, id)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "data")); err != nil || string(data) != "kept\n" {
				t.Fatalf("data %q %v", data, err)
			}
			if l.Stash != "" {
				if _, err := os.Lstat(l.Stash); !os.IsNotExist(err) || testns.IsMountPoint(l.Stash) {
					t.Errorf("the stash %s is left: %v", l.Stash, err)
				}
			}
			if j, _ := os.ReadFile(jpath); strings.Count(string(j), `"mode":"rollback-fence"`) != 2 {
				t.Errorf("journal:\n%s", j)
			}
			if r := runMounttop(t, "", nil, "list"); strings.Contains(r.stdout, "LEFTOVER") {
				t.Errorf("still reported:\n%s", r.stdout)
			}
			if r := runMounttop(t, "", nil, "umount", "--rollback-fence", "--yes", "--journal", "-", dir); r.code != exitUsage || !strings.Contains(r.stderr, "no fence left by a killed run at "+dir) {
				t.Errorf("a second rollback: exit %d %s", r.code, r.stderr)
			}
			if !v.Alive() {
				t.Error("the holder died")
			}
		})
	}
}

// TestRollbackFenceRefusals: --rollback-fence with a mode, --id, other
// flags, no PATH, or a PATH with no leftover fence: exit 2, one line,
// nothing changed.
func TestRollbackFenceRefusals(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--staged", dir}, "an act of its own"},
		{[]string{"--id", "5"}, "not --id"},
		{[]string{"--json", dir}, "goes with --dry-run, --yes and --journal only"},
		{[]string{"--timeout", "1s", dir}, "goes with --dry-run, --yes and --journal only"},
		{nil, "needs the one PATH the fence covers"},
		{[]string{"--yes", dir}, "no fence left by a killed run at " + dir},
	} {
		before := mountTable(t)
		r := runMounttop(t, "", nil, append([]string{"umount", "--rollback-fence", "--journal", "-"}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || mountTable(t) != before {
			t.Errorf("%v: exit %d, stderr %q", c.args, r.code, r.stderr)
		}
	}
}
