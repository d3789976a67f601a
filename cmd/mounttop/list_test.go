package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func init() {
	// evil-comm DIR: a process whose name carries terminal escapes, with
	// its cwd in DIR.
	testns.RegisterRole("evil-comm", 1, func(args []string) error {
		if err := unix.Prctl(unix.PR_SET_NAME, uintptrOf("\x1b[2J\x1b]0;x\x07"), 0, 0, 0); err != nil {
			return err
		}
		if err := unix.Chdir(args[0]); err != nil {
			return err
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

func uintptrOf(s string) uintptr {
	b, _ := unix.BytePtrFromString(s)
	return uintptr(unsafePointer(b))
}

func TestHoldersJSON(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	f := filepath.Join(dir, "data")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := testns.StartVictim(t, testns.RoleLock, f, "flock", "w")
	r := runMounttop(t, "", nil, "holders", "--json", dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var out struct {
		Mount struct {
			ID         int    `json:"id"`
			UniqueID   uint64 `json:"unique_id"`
			Mountpoint string `json:"mountpoint"`
			FSType     string `json:"fstype"`
			Source     string `json:"source"`
		} `json:"mount"`
		Holders []struct {
			PID  int    `json:"pid"`
			Comm string `json:"comm"`
			Uses []struct {
				Kind string `json:"kind"`
				FD   *int   `json:"fd"`
				Path string `json:"path"`
				Mode string `json:"mode"`
				Lock *struct {
					Type, Mode string
				} `json:"lock"`
			} `json:"uses"`
		} `json:"holders"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if out.Mount.Mountpoint != dir || out.Mount.FSType != "tmpfs" || out.Mount.ID == 0 || out.Mount.UniqueID == 0 || out.Warnings == nil {
		t.Errorf("mount = %+v", out.Mount)
	}
	if len(out.Holders) != 1 || out.Holders[0].PID != v.PID {
		t.Fatalf("holders = %+v, want just pid %d", out.Holders, v.PID)
	}
	kinds := map[string]bool{}
	for _, u := range out.Holders[0].Uses {
		kinds[u.Kind] = true
		if u.Path != f || u.FD == nil {
			t.Errorf("use %+v: want path %s and an fd", u, f)
		}
		if u.Kind == "fd" && u.Mode != "rw" {
			t.Errorf("fd mode %q, want rw", u.Mode)
		}
		if u.Kind == "lock" && (u.Lock == nil || u.Lock.Type != "FLOCK" || u.Lock.Mode != "WRITE") {
			t.Errorf("lock = %+v", u.Lock)
		}
	}
	if !kinds["fd"] || !kinds["lock"] {
		t.Errorf("uses %v, want fd and lock", kinds)
	}
}

func TestHoldersRefusals(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"not a mount point", []string{"holders", sub}, "is not a mount point; it lies on the mount at " + dir},
		{"missing", []string{"holders", filepath.Join(dir, "nope")}, "no such file or directory"},
		{"symlink", []string{"holders", link}, "is a symbolic link"},
		{"symlink inside", []string{"holders", link + "/sub"}, "is a symbolic link"},
		{"no path", []string{"holders"}, "exactly one PATH"},
		{"two paths", []string{"holders", dir, dir}, "exactly one PATH"},
		{"bad flag", []string{"holders", "--bogus", dir}, "flag provided but not defined"},
		{"list arg", []string{"list", dir}, "unexpected argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runMounttop(t, "", nil, c.args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", r.code, r.stderr, c.want)
			}
		})
	}
	for _, args := range [][]string{{"list", "--help"}, {"holders", "--help"}, {"umount", "--help"}, {"demo", "--help"}, {"--help"}} {
		if r := runMounttop(t, "", nil, args...); r.code != 0 || strings.Count(r.stdout, "usage:") != 1 || r.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want usage on stdout only", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestEscapes: a mount point and a process name carrying terminal escape
// sequences reach the terminal escaped, and JSON carries them exactly.
func TestEscapes(t *testing.T) {
	evil := filepath.Join(t.TempDir(), "\x1b[31mred\nline")
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("src\x1b[1m", evil, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, evil)
	testns.StartVictim(t, "evil-comm", evil)

	for _, args := range [][]string{{"list"}, {"holders", evil}} {
		r := runMounttop(t, "", nil, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") {
			t.Errorf("%v: raw escape reached the terminal: %q", args, r.stdout)
		}
		if !strings.Contains(r.stdout, `\e[31mred\nline`) {
			t.Errorf("%v: escaped mount point missing: %q", args, r.stdout)
		}
	}
	r := runMounttop(t, "", nil, "holders", evil)
	if !strings.Contains(r.stdout, `\e[2J\e]0;x\x07`) {
		t.Errorf("escaped process name missing: %q", r.stdout)
	}
	r = runMounttop(t, "", nil, "holders", "--json", evil)
	if strings.ContainsAny(r.stdout, "\x1b\x07") {
		t.Errorf("raw escape in JSON: %q", r.stdout)
	}
	var out struct {
		Mount   struct{ Mountpoint, Source string } `json:"mount"`
		Holders []struct{ Comm string }             `json:"holders"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Mount.Mountpoint != evil || out.Mount.Source != "src\x1b[1m" || len(out.Holders) != 1 || out.Holders[0].Comm != "\x1b[2J\x1b]0;x\x07" {
		t.Errorf("JSON did not carry names exactly: %+v", out)
	}
}

func TestListJSON(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	testns.StartVictim(t, testns.RoleCwd, dir)
	testns.StartVictim(t, testns.RoleCwd, dir)
	r := runMounttop(t, "", nil, "list", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var out struct {
		Mounts []struct {
			ID         int    `json:"id"`
			UniqueID   uint64 `json:"unique_id"`
			ParentID   int    `json:"parent_id"`
			Mountpoint string `json:"mountpoint"`
			FSType     string `json:"fstype"`
			Source     string `json:"source"`
			Holders    *int   `json:"holders"`
		} `json:"mounts"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range out.Mounts {
		if m.Holders == nil || m.UniqueID == 0 {
			t.Fatalf("mount without holders/unique_id: %+v", m)
		}
		if m.Mountpoint == dir {
			found = true
			if *m.Holders != 2 || m.FSType != "tmpfs" || m.ParentID == 0 {
				t.Errorf("%+v: want 2 holders", m)
			}
		}
	}
	if !found || out.Warnings == nil {
		t.Errorf("mount %s not listed (or no warnings array)", dir)
	}
}

// TestListOpenFilesBy: as root, list reads open files through the
// task_file iterator and says so; MOUNTTOP_OPEN_FILES=procfs makes it scan
// procfs, and the two lists agree mount for mount.
func TestListOpenFilesBy(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	testns.StartVictim(t, testns.RoleFD, file, "rw")
	testns.StartVictim(t, testns.RoleCwd, dir)
	type list struct {
		OpenFilesBy string            `json:"open_files_by"`
		Mounts      []json.RawMessage `json:"mounts"`
	}
	read := func(env []string) list {
		t.Helper()
		r := runMounttop(t, "", env, "list", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var l list
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	iter, procfs := read(nil), read([]string{"MOUNTTOP_OPEN_FILES=procfs"})
	if procfs.OpenFilesBy != "procfs" {
		t.Errorf("with MOUNTTOP_OPEN_FILES=procfs: open_files_by %q", procfs.OpenFilesBy)
	}
	if iter.OpenFilesBy != "task_file iterator" {
		if testns.IsRealRoot() {
			t.Fatalf("root listed with open_files_by %q, want the task_file iterator", iter.OpenFilesBy)
		}
		testns.Require(t, testns.RealRoot)
	}
	// The test's mount only: the machine's other mounts gain and lose
	// holders as other tests run.
	a, b := entryAt(t, iter.Mounts, dir), entryAt(t, procfs.Mounts, dir)
	if a != b || !strings.Contains(a, `"holders":2`) {
		t.Errorf("%s through the iterator:\n  %s\nthrough procfs:\n  %s\nwant the same, 2 holders", dir, a, b)
	}
}

// entryAt is the JSON of the mount at dir among mounts.
func entryAt(t *testing.T, mounts []json.RawMessage, dir string) string {
	t.Helper()
	for _, m := range mounts {
		var e struct {
			Mountpoint string `json:"mountpoint"`
		}
		if json.Unmarshal(m, &e) == nil && e.Mountpoint == dir {
			return string(m)
		}
	}
	t.Fatalf("no mount at %s listed", dir)
	return ""
}
