package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// runMounttopIn is runMounttop with the working directory dir.
func runMounttopIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), envAsMain+"=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// TestJournalDashWritesNothing: --journal - means no journal and no
// expiry state, in every mode: no file named "-" in the working directory,
// nothing in the default places (HOME, XDG dirs, /var/log/mounttop).
func TestJournalDashWritesNothing(t *testing.T) {
	cwd, home, xdg := t.TempDir(), t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(xdg, "state"), "XDG_RUNTIME_DIR=" + filepath.Join(xdg, "run")}
	// root's default place, /var/log/mounttop: an empty tmpfs over /var/log
	// in the test's own mount namespace, so what lands there is ours alone.
	testns.Require(t, testns.Namespace)
	if err := unix.Mount("mounttop-test", "/var/log", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("a tmpfs over /var/log (in the test namespace): %v", err)
	}
	testns.CleanupMount(t, "/var/log")
	for _, mode := range [][]string{{"--lazy"}, {"--force"}, {"--expire"}, {"--expire"}, {"--staged", "--revoke=signal", "--interval", "50ms"}} {
		dir := testns.Tmpfs(t, "")
		r := runMounttopIn(t, cwd, env, append(append([]string{"umount", "--yes", "--journal", "-"}, mode...), dir)...)
		if r.code != 0 && r.code != exitMarked {
			t.Fatalf("%v: exit %d: %s", mode, r.code, r.stderr)
		}
	}
	for _, d := range []string{cwd, home, xdg, "/var/log"} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s: %v was written", d, ents)
		}
	}
	// The control: without -, root's journal lands in that /var/log.
	dir := testns.Tmpfs(t, "")
	if r := runMounttopIn(t, cwd, env, "umount", "--yes", "--lazy", dir); r.code != 0 {
		t.Fatalf("without --journal: exit %d: %s", r.code, r.stderr)
	}
	if data, err := os.ReadFile("/var/log/mounttop/journal.jsonl"); os.Geteuid() == 0 && (err != nil || !strings.Contains(string(data), `"mode":"lazy"`)) {
		t.Errorf("the default journal: %v %q", err, data)
	}
}

// TestJournalUnsafePlacesRefused: a journal directory that another user
// pre-created or anyone can write in, and a symbolic link planted at
// journal.jsonl, are refused: exit 2, one line, nothing changed, the
// planted target untouched.
func TestJournalUnsafePlacesRefused(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	base := t.TempDir()
	world := filepath.Join(base, "world")
	if err := os.Mkdir(world, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(world, 0o777); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(base, "planted")
	if err := os.Mkdir(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(planted, "journal.jsonl")); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"world-writable directory": filepath.Join(world, "journal.jsonl"),
		"symlink at journal.jsonl": filepath.Join(planted, "journal.jsonl"),
	}
	if testns.IsRealRoot() {
		other := filepath.Join(base, "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		cases["owned by another user"] = filepath.Join(other, "journal.jsonl")
	}
	for name, jpath := range cases {
		t.Run(name, func(t *testing.T) {
			before := mountTable(t)
			r := runMounttop(t, "", nil, "umount", "--lazy", "--yes", "--journal", jpath, dir)
			if r.code != exitUsage || !strings.Contains(r.stderr, "unsafe state directory") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if mountTable(t) != before {
				t.Fatal("the mount table changed")
			}
		})
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious\n" {
		t.Fatalf("the planted target changed: %q", got)
	}
	if ents, _ := os.ReadDir(world); len(ents) != 0 {
		t.Fatalf("written into the world-writable dir: %v", ents)
	}
}

// TestJournalRefusalNamesThePathOnce: the one-line refusal of a journal
// place names its path escaped once (a newline as \n, a space-holding
// path in plain double quotes), whichever way the place is refused.
func TestJournalRefusalNamesThePathOnce(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	base := t.TempDir()
	file := filepath.Join(base, "a\nb")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	world := filepath.Join(base, "c d\ne")
	if err := os.Mkdir(world, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(world, 0o777); err != nil {
		t.Fatal(err)
	}
	for jpath, want := range map[string]string{
		filepath.Join(file, "journal.jsonl"):  base + `/a\nb: not a directory`,
		filepath.Join(world, "journal.jsonl"): `"` + base + `/c d\ne" is writable by group or others`,
	} {
		r := runMounttop(t, "", nil, "umount", "--lazy", "--yes", "--journal", jpath, dir)
		if r.code != exitUsage || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, `\\`) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("--journal %q: exit %d, stderr %q, want one line saying %q", jpath, r.code, r.stderr, want)
		}
	}
}

// TestJournalOnTheTarget: `umount --staged` of the mount the journal lies
// on succeeds (the journal would keep it busy): the journal lands in
// $XDG_RUNTIME_DIR/mounttop with a warning on stderr.
func TestJournalOnTheTarget(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	testns.StartVictim(t, testns.RoleCwd, dir)
	jpath := filepath.Join(dir, "log", "journal.jsonl")
	run := t.TempDir()
	r := runMounttop(t, "", []string{"XDG_RUNTIME_DIR=" + run}, "umount", "--staged", "--revoke=signal", "--grace", "200ms",
		"--interval", "50ms", "--yes", "--journal", jpath, dir)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	moved := filepath.Join(run, "mounttop", "journal.jsonl")
	if !strings.Contains(r.stderr, "warning: the journal and the expiry state in "+filepath.Dir(jpath)+" lie on the mount to unmount") ||
		!strings.Contains(r.stderr, "written to "+filepath.Dir(moved)+" instead") {
		t.Errorf("stderr %q", r.stderr)
	}
	data, err := os.ReadFile(moved)
	if err != nil || !strings.Contains(string(data), `"stage":"plan"`) || !strings.Contains(string(data), `"gone":true`) {
		t.Fatalf("the moved journal: %v %s", err, data)
	}
}

// TestJournalWriteErrorRefuses: a journal on a full filesystem cannot take
// the plan line: the run stops before the fence (exit 2, one line,
// nothing changed); one in a read-only directory is refused at start.
func TestJournalWriteErrorRefuses(t *testing.T) {
	full := testns.Tmpfs(t, "size=4k")
	if err := os.Mkdir(filepath.Join(full, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The journal file exists (empty); the filesystem's one page is taken.
	if err := os.WriteFile(filepath.Join(full, "log", "journal.jsonl"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(full, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	f.Close()
	ro := testns.Tmpfs(t, "")
	if err := os.Mkdir(filepath.Join(ro, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleCwd, dir)
	for name, c := range map[string]struct{ journal, want string }{
		"full":      {filepath.Join(full, "log", "journal.jsonl"), "the journal cannot be written"},
		"read-only": {filepath.Join(ro, "log", "journal.jsonl"), "read-only file system"},
	} {
		t.Run(name, func(t *testing.T) {
			before := mountTable(t)
			r := runMounttop(t, "", nil, "umount", "--staged", "--revoke=signal", "--yes", "--journal", c.journal, dir)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "nothing changed") ||
				strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q\n%s", r.code, r.stderr, r.stdout)
			}
			if strings.Contains(r.stdout, "\nfence ") {
				t.Errorf("it went on to the fence:\n%s", r.stdout)
			}
			if mountTable(t) != before || !v.Alive() {
				t.Fatal("something changed")
			}
		})
	}
}

// TestExpireStateLinkNotFollowed: a symbolic link planted at
// expire.json.new is unlinked, not followed, when `umount --expire` saves
// its mark: the planted target is unchanged, expire.json is a regular file
// and the second invocation still finds the mark and unmounts.
func TestExpireStateLinkNotFollowed(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	state := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(state, "expire.json.new")); err != nil {
		t.Fatal(err)
	}
	args := []string{"umount", "--expire", "--yes", "--journal", filepath.Join(state, "journal.jsonl"), dir}
	if r := runMounttop(t, "", nil, args...); r.code != exitMarked {
		t.Fatalf("first: exit %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious\n" {
		t.Fatalf("the planted target changed: %q", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(state, "expire.json"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("expire.json: %v", err)
	}
	if r := runMounttop(t, "", nil, args...); r.code != 0 || !strings.Contains(r.stdout, "untouched and still marked since") || testns.IsMountPoint(dir) {
		t.Fatalf("second: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
