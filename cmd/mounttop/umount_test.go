package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// mountTable is the namespace's mount table as "ID mountpoint" lines: what
// a refused command must leave exactly as it was.
func mountTable(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(l)
		lines = append(lines, f[0]+" "+f[4])
	}
	return strings.Join(lines, "\n")
}

// journalArgs keeps the journal and the expiry book in the test's temp dir.
func journalArgs(t *testing.T) []string {
	return []string{"--journal", filepath.Join(t.TempDir(), "journal.jsonl")}
}

// TestUmountRefusals: bad input and refusals give exit 2, one line on
// stderr, and leave the mount table exactly as it was.
func TestUmountRefusals(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	plain := filepath.Join(dir, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	linkDir := filepath.Join(t.TempDir(), "linkdir")
	if err := os.Symlink(filepath.Dir(dir), linkDir); err != nil {
		t.Fatal(err)
	}
	withSub := testns.Tmpfs(t, "")
	sub := filepath.Join(withSub, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("sub", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, sub)
	j := journalArgs(t)
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no mode", "", []string{dir}, "choose one of --lazy, --expire, --force, --staged"},
		{"two modes", "", []string{"--lazy", "--staged", dir}, "one mode at a time, not --lazy and --staged"},
		{"no path", "", []string{"--lazy"}, "give its PATH"},
		{"two paths", "", []string{"--lazy", dir, dir}, "one PATH at a time"},
		{"root", "", []string{"--staged", "--yes", "/"}, "root of this mount namespace"},
		{"not a mount point", "", []string{"--lazy", "--yes", plain}, "is not a mount point; it lies on the mount at " + dir + " (tmpfs"},
		{"missing", "", []string{"--lazy", "--yes", filepath.Join(dir, "missing")}, "no such file or directory"},
		{"symlink", "", []string{"--lazy", "--yes", link}, "is a symbolic link"},
		{"symlink in the middle", "", []string{"--expire", "--yes", filepath.Join(linkDir, filepath.Base(dir))}, "is a symbolic link"},
		{"bad policy", "", []string{"--staged", "--revoke=nice", dir}, `invalid value "nice" for --revoke: one of close, close-plain, signal`},
		{"revoke without staged", "", []string{"--lazy", "--revoke=signal", dir}, "apply to --staged only"},
		{"when-idle without expire", "", []string{"--lazy", "--expire-when-idle", dir}, "goes with --expire"},
		{"unknown flag", "", []string{"--lazy", "--nope", dir}, "flag provided but not defined"},
		{"no terminal to confirm on", "y\n", []string{"--lazy", dir}, "stdin is not a terminal"},
		{"submounts", "", []string{"--staged", "--yes", withSub}, "submounts: " + sub},
		{"expire with submounts", "", []string{"--expire", "--recursive", "--yes", withSub}, "never idle"},
		{"--id and PATH", "", []string{"--staged", "--yes", "--id", "12345", dir}, "give a PATH or --id, not both"},
		{"--id 0", "", []string{"--staged", "--yes", "--id", "0"}, "--id needs a unique mount ID"},
		{"unknown --id", "", []string{"--staged", "--yes", "--id", "18446744073709551000"}, "no mount with unique ID 18446744073709551000"},
		{"--release without --staged", "", []string{"--lazy", "--release", "--yes", dir}, "--release goes with --staged"},
		{"--call-timeout without --staged", "", []string{"--lazy", "--call-timeout", "2s", "--yes", dir}, "--call-timeout applies to --staged only"},
		{"--call-timeout 0", "", []string{"--staged", "--call-timeout", "0", "--yes", dir}, "--call-timeout must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := mountTable(t)
			r := runMounttop(t, tc.stdin, nil, append(append([]string{"umount"}, j...), tc.args...)...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", r.stderr, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Errorf("stderr is %d lines: %q", n+1, r.stderr)
			}
			if after := mountTable(t); after != before {
				t.Errorf("the mount table changed:\n%s\n->\n%s", before, after)
			}
		})
	}
}

// TestUmountDryRun prints the plan with the holders and changes nothing.
func TestUmountDryRun(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleCwd, dir)
	before := mountTable(t)
	r := runMounttop(t, "", nil, "umount", "--staged", "--revoke=signal", "--dry-run", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "plan: staged unmount of "+dir) ||
		!strings.Contains(r.stdout, "pid "+strconv.Itoa(v.PID)) || !strings.Contains(r.stdout, "SIGTERM, SIGKILL after 5s") ||
		!strings.Contains(r.stdout, "dry run: nothing changed") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, "umount", "--dry-run", "--json", dir, "--staged")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var ev map[string]any
	if r.code != 0 || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev["stage"] != "plan" {
		t.Fatalf("--json dry run: exit %d %q", r.code, r.stdout)
	}
	if after := mountTable(t); after != before || !v.Alive() {
		t.Fatal("a dry run changed something")
	}
}

// TestUmountRevokeFDModes: --revoke=close puts a placeholder on each fd
// (the number stays taken), --revoke=close-plain closes it, and the plan
// says which, before anything is done.
func TestUmountRevokeFDModes(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testns.StartVictim(t, testns.RoleFD, f, "r")
	for policy, want := range map[string]string{
		"close":       "revoke by close, ",
		"close-plain": "revoke by close-plain, ",
	} {
		r := runMounttop(t, "", nil, "umount", "--staged", "--revoke="+policy, "--dry-run", dir)
		action := "put a placeholder on fd "
		if policy == "close-plain" {
			action = "close fd "
		}
		if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, action) {
			t.Errorf("--revoke=%s: exit %d, want %q and %q in the plan:\n%s%s", policy, r.code, want, action, r.stdout, r.stderr)
		}
	}
}

// jsonEvents parses --json output: one object per line, each with a stage.
func jsonEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		if _, ok := ev["stage"].(string); !ok {
			t.Fatalf("no stage: %q", l)
		}
		evs = append(evs, ev)
	}
	return evs
}

func stagesOf(evs []map[string]any) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev["stage"].(string))
	}
	return strings.Join(s, " ")
}

func TestUmountLazyJSON(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	testns.StartVictim(t, testns.RoleCwd, dir)
	r := runMounttop(t, "", nil, append([]string{"umount", "--lazy", "--yes", "--json", dir}, journalArgs(t)...)...)
	evs := jsonEvents(t, r.stdout)
	if r.code != 0 || stagesOf(evs) != "plan unmount done" {
		t.Fatalf("exit %d, stages %q, stderr %q", r.code, stagesOf(evs), r.stderr)
	}
	res := evs[len(evs)-1]["result"].(map[string]any)
	if res["gone"] != true || testns.IsMountPoint(dir) {
		t.Fatalf("result %v", res)
	}
	// Each step says its kind ("note") for a script to switch on.
	if evs[1]["note"] != "plain-unmounted" || evs[2]["note"] != "plain-gone" {
		t.Errorf("notes %v, %v; want plain-unmounted, plain-gone", evs[1]["note"], evs[2]["note"])
	}
}

// TestUmountExpire: exit 3 when marked, 0 when the second invocation
// unmounts it; a stat between the two clears the mark, which the second
// invocation notices (exit 3 again).
func TestUmountExpire(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	j := journalArgs(t)
	args := append([]string{"umount", "--expire", "--yes", dir}, j...)
	r := runMounttop(t, "", nil, args...)
	if r.code != exitMarked || !strings.Contains(r.stdout, "now marked for expiry") {
		t.Fatalf("first: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	r = runMounttop(t, "", nil, args...)
	if r.code != exitMarked || !strings.Contains(r.stdout, "was cleared by an access since") {
		t.Fatalf("after a stat: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runMounttop(t, "", nil, append(args, "--json")...)
	evs := jsonEvents(t, r.stdout)
	if r.code != 0 || testns.IsMountPoint(dir) || evs[len(evs)-1]["result"].(map[string]any)["gone"] != true {
		t.Fatalf("third: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestUmountForceTmpfs(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleCwd, dir)
	r := runMounttop(t, "", nil, append([]string{"umount", "--force", "--yes", dir}, journalArgs(t)...)...)
	if r.code != exitFailed || !testns.IsMountPoint(dir) {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{"MNT_FORCE is ignored by tmpfs", "--staged", "pid " + strconv.Itoa(v.PID)} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q lacks %q", r.stderr, want)
		}
	}
}

// TestUmountStaged: the staged unmount by the command, signal policy,
// events as JSON lines ending in a verified result; the journal has every
// event.
func TestUmountStaged(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	v := testns.StartVictim(t, testns.RoleCwd, dir)
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	r := runMounttop(t, "", nil, "umount", "--staged", "--revoke=signal", "--grace", "200ms", "--interval", "50ms",
		"--yes", "--json", "--journal", jpath, dir)
	evs := jsonEvents(t, r.stdout)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d stderr %q\n%s", r.code, r.stderr, r.stdout)
	}
	got := stagesOf(evs)
	for _, want := range []string{"plan fence fence revoke", "drain", "unmount", "done"} {
		if !strings.Contains(got, want) {
			t.Errorf("stages %q lack %q", got, want)
		}
	}
	if _, ok := v.Wait(5e9); !ok {
		t.Error("the holder was not stopped")
	}
	data, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != len(evs) {
		t.Errorf("journal has %d lines for %d events", n, len(evs))
	}
}

// TestUmountStagedFails: an executable on the mount under the close policy
// cannot be revoked: exit 1, the reason on stderr, the mount back in place.
func TestUmountStagedFails(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	exe := testns.CopySelf(t, dir)
	v := testns.StartVictimExe(t, exe, testns.RoleSleep)
	r := runMounttop(t, "", nil, append([]string{"umount", "--staged", "--timeout", "300ms", "--interval", "50ms", "--yes", dir}, journalArgs(t)...)...)
	if r.code != exitFailed {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "its executable is on the mount") || !strings.Contains(r.stderr, "is back at "+dir) {
		t.Errorf("stderr %q", r.stderr)
	}
	if !testns.IsMountPoint(dir) || !v.Alive() {
		t.Error("the mount or the holder is gone")
	}
}

func TestUmountHelp(t *testing.T) {
	r := runMounttop(t, "", nil, "umount", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "usage: mounttop umount (--lazy | --expire | --force | --staged)") || !strings.Contains(r.stdout, "-expire-when-idle") {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
}

// TestUmountStagedClose: the default close policy from the command line
// (mounttop's tracer process, not the test process, traces the holder): a
// reader blocked on a FIFO gets EBADF and lives on; the mount is gone; the
// tracer process wrote to the journal and has exited with mounttop.
func TestUmountStagedClose(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	v := testns.StartVictim(t, testns.RoleFifoRead, fifo)
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	r := runMounttop(t, "", nil, "umount", "--staged", "--interval", "50ms", "--yes", "--journal", jpath, dir)
	if r.code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "pid "+strconv.Itoa(v.PID)+" (") || !strings.Contains(r.stdout, "put a placeholder on fd") {
		t.Errorf("no revoke line for the holder:\n%s", r.stdout)
	}
	v.WaitLine(t, "read: EBADF", 5e9)
	if !v.Alive() {
		t.Fatal("the holder died")
	}
	journal, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	var tracer int
	for _, line := range strings.Split(string(journal), "\n") {
		var l struct {
			Tracer int `json:"tracer"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Tracer != 0 {
			tracer = l.Tracer
		}
	}
	if tracer == 0 || !strings.Contains(string(journal), `"what":"every process released; exiting"`) {
		t.Fatalf("no tracer process lines in the journal:\n%s", journal)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", tracer)); err == nil {
		t.Errorf("tracer process %d still there after mounttop exited", tracer)
	}
}

// TestUmountRefusesOwnExe: mounttop never unmounts the mount its own
// executable lies on (exit 2, nothing changed).
func TestUmountRefusesOwnExe(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	exe := testns.CopySelf(t, dir)
	before := mountTable(t)
	cmd := exec.Command(exe, append([]string{"umount", "--staged", "--yes", dir}, journalArgs(t)...)...)
	cmd.Env = append(os.Environ(), envAsMain+"=1")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitUsage || !strings.Contains(string(out), "mounttop's own executable is on it") {
		t.Fatalf("%v: %s", err, out)
	}
	if mountTable(t) != before {
		t.Fatal("the mount table changed")
	}
}

// TestUmountExpireWhenIdle: re-armed every interval, each attempt
// reported, until the idle mount goes (exit 0).
func TestUmountExpireWhenIdle(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	r := runMounttop(t, "", nil, append([]string{"umount", "--expire", "--expire-when-idle", "--interval", "50ms", "--yes", "--json", dir}, journalArgs(t)...)...)
	evs := jsonEvents(t, r.stdout)
	if r.code != 0 || stagesOf(evs) != "plan expire expire done" || testns.IsMountPoint(dir) {
		t.Fatalf("exit %d stages %q\n%s", r.code, stagesOf(evs), r.stderr)
	}
}

// TestUmountInterrupt: Ctrl-C (SIGINT) during the drain rolls the fence
// back: the same mount is back, the refused holder untouched, exit 130
// (128+SIGINT).
func TestUmountInterrupt(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	exe := testns.CopySelf(t, dir)
	v := testns.StartVictimExe(t, exe, testns.RoleSleep)
	before := mountTable(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"umount", "--staged", "--interval", "50ms", "--timeout", "1m", "--yes", "--json", dir}, journalArgs(t)...)...)
	cmd.Env = append(os.Environ(), envAsMain+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	var stages []string
	for sc.Scan() {
		var ev struct{ Stage string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		stages = append(stages, ev.Stage)
		if ev.Stage == "drain" && len(stages) > 0 && stages[len(stages)-2] != "drain" {
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v; stages %v; stderr %s", err, stages, stderr.String())
	}
	got := strings.Join(stages, " ")
	if !strings.HasSuffix(got, "rollback done") {
		t.Fatalf("stages %q, want a rollback at the end", got)
	}
	if mountTable(t) != before || !v.Alive() {
		t.Fatal("not as it was after the rollback")
	}
}

// TestUmountConfirm: on a terminal (a pty from script(1)) the command asks,
// defaulting to No: "n" refuses with exit 2 and changes nothing, "y" goes
// ahead. TERM=dumb keeps terminal queries off the pty.
func TestUmountConfirm(t *testing.T) {
	scriptBin := testns.RequireTool(t, "script")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := testns.Tmpfs(t, "")
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	answer := func(reply string) (int, string) {
		line := fmt.Sprintf("'%s' umount --lazy --journal '%s' '%s'", self, jpath, dir)
		cmd := exec.Command(scriptBin, "-qec", line, "/dev/null")
		cmd.Env = append(os.Environ(), envAsMain+"=1", "TERM=dumb")
		cmd.Stdin = strings.NewReader(reply)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	before := mountTable(t)
	code, out := answer("n\n")
	if code != exitUsage || !strings.Contains(out, "go ahead? [y/N]") || !strings.Contains(out, "not confirmed; nothing changed") {
		t.Fatalf("answer n: exit %d\n%s", code, out)
	}
	if mountTable(t) != before {
		t.Fatal("the mount table changed after No")
	}
	code, out = answer("y\n")
	if code != 0 || testns.IsMountPoint(dir) {
		t.Fatalf("answer y: exit %d\n%s", code, out)
	}
}
