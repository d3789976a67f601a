package ui

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// TestEndToEndLeftoverFence: a real `mounttop umount --staged` SIGKILLed
// mid-drain leaves its fence; the view, in a real terminal, shows the
// banner; K asks, y rolls it back: the same mount (unique ID) is back at
// its place with its data.
func TestEndToEndLeftoverFence(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "fenced")
	if err := os.WriteFile(dir+"/data", []byte("e2e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A holder the close policy cannot revoke (its executable is on the
	// mount) keeps the run draining.
	holder := testns.StartVictimExe(t, testns.CopySelf(t, dir), testns.RoleSleep)
	id := listedID(t, bin, dir)

	run := exec.Command(bin, "umount", "--staged", "--yes", "--json", "--journal", "-", "--interval", "100ms", "--timeout", "5m", dir)
	out, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(detachStashes)
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), `"stage":"drain"`) {
	}
	_ = run.Process.Signal(unix.SIGKILL)
	_ = run.Wait()
	if listedID(t, bin, dir) == id {
		t.Fatal("no fence over the mount after the kill")
	}

	term := newTerminal(t, 160, 30, bin+" --interval 500ms --journal - "+dir)
	term.waitFor(30*time.Second, "a fence left by a killed run covers "+dir, "press K")
	term.keys("K")
	term.waitFor(30*time.Second, "Roll back the fence at "+dir+"?", "[ No ]", "(y) Yes, roll it back")
	term.keys("y")
	scr := term.waitFor(30*time.Second, "rolled back: the filesystem (mount")
	if strings.Contains(scr, "a fence left by a killed run") {
		t.Errorf("the banner stayed:\n%s", scr)
	}
	if got := listedID(t, bin, dir); got != id {
		t.Fatalf("mount %d at %s after the rollback, want %d", got, dir, id)
	}
	if data, err := os.ReadFile(dir + "/data"); err != nil || string(data) != "e2e\n" {
		t.Fatalf("data %q %v", data, err)
	}
	if !holder.Alive() {
		t.Error("the holder died")
	}
	term.keys("q")
}

// listedID is the unique ID of the top mount at path, from `mounttop list
// --json` (mountinfo lists a mount stacked on top after the one below).
func listedID(t *testing.T, bin, path string) uint64 {
	t.Helper()
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "list", "--json")
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Mounts []struct {
			UniqueID   uint64 `json:"unique_id"`
			Mountpoint string `json:"mountpoint"`
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	var id uint64
	for _, m := range out.Mounts {
		if m.Mountpoint == path {
			id = m.UniqueID
		}
	}
	return id
}

// detachStashes removes the fence stashes left mounted in this test's
// namespace (by a failed rollback); only this namespace's mounts are seen.
func detachStashes() {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(filepath.Base(f[4]), "mounttop-fence-") {
			_ = unix.Unmount(f[4]+"/mnt", unix.MNT_DETACH)
			_ = unix.Unmount(f[4], unix.MNT_DETACH)
			_ = os.RemoveAll(f[4])
		}
	}
}
