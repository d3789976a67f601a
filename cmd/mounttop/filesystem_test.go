package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mounttop/internal/testns"
)

// filesystemJSON is the "filesystem" object of `umount --json` and the
// journal.
type filesystemJSON struct {
	Released bool `json:"released"`
	Checked  bool `json:"checked"`
	InUseBy  []struct {
		Kind, Where, Namespace string
	} `json:"in_use_by"`
}

// TestUmountSaysFilesystemInUse: a lazy unmount of a tmpfs bind-mounted
// elsewhere: the dry run forecasts the bind mount; the run's last line, its
// JSON result and the journal's done line say the filesystem is still in
// use by it.
func TestUmountSaysFilesystemInUse(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	bind := testns.Bind(t, dir)
	r := runMounttop(t, "", nil, append([]string{"umount", "--lazy", "--dry-run", dir}, journalArgs(t)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "after this unmount the filesystem stays in use by: the mount "+bind) {
		t.Fatalf("dry run: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, "umount", "--lazy", "--yes", "--json", "--dry-run", dir)
	var plan struct {
		Stage      string          `json:"stage"`
		Filesystem *filesystemJSON `json:"filesystem"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || plan.Filesystem == nil || plan.Filesystem.Released ||
		len(plan.Filesystem.InUseBy) != 1 || plan.Filesystem.InUseBy[0].Where != bind {
		t.Fatalf("--json --dry-run: %v: %s", err, r.stdout)
	}

	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	r = runMounttop(t, "", nil, "umount", "--lazy", "--yes", "--json", "--journal", jpath, dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	check := func(where, line string) {
		var ev struct {
			Stage  string `json:"stage"`
			Result *struct {
				Summary    string          `json:"summary"`
				Filesystem *filesystemJSON `json:"filesystem"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s: %v: %s", where, err, line)
		}
		f := ev.Result.Filesystem
		if ev.Stage != "done" || f == nil || f.Released || !f.Checked || len(f.InUseBy) != 1 ||
			f.InUseBy[0].Kind != "mount" || f.InUseBy[0].Where != bind || f.InUseBy[0].Namespace != "" {
			t.Errorf("%s: %s, want the filesystem in use by the mount %s", where, line, bind)
		}
		if !strings.HasSuffix(ev.Result.Summary, "filesystem still in use by: the mount "+bind) {
			t.Errorf("%s: summary %q", where, ev.Result.Summary)
		}
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	check("stdout", lines[len(lines)-1])
	jf, err := os.Open(jpath)
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	var last string
	for sc := bufio.NewScanner(jf); sc.Scan(); {
		last = sc.Text()
	}
	check("journal", last)
}

// TestUmountSaysFilesystemReleased: a forced unmount of an idle tmpfs
// with no other mount ends "filesystem released" in the text output.
func TestUmountSaysFilesystemReleased(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	r := runMounttop(t, "", nil, append([]string{"umount", "--force", "--yes", dir}, journalArgs(t)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "after this unmount nothing mounttop can see uses the filesystem: it is released") ||
		!strings.Contains(r.stdout, "is unmounted; filesystem released") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
}
