package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"mounttop/internal/cli"
	"mounttop/internal/testns"

	"golang.org/x/sys/unix"
)

// TestBadFlagValueIsOneLine: a bad value names the command, the value and
// the flag, on one line, exit 2, and no usage dump.
func TestBadFlagValueIsOneLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"umount", "--timeout", "x", "/mnt"}, `mounttop: umount: invalid value "x" for --timeout: time: invalid duration "x" (see mounttop umount --help)`},
		{[]string{"umount", "--staged", "--revoke=nice", "/mnt"}, `mounttop: umount: invalid value "nice" for --revoke: one of close, close-plain, signal`},
		{[]string{"holders", "--id", "twelve"}, `mounttop: holders: invalid value "twelve" for --id: invalid syntax`},
		{[]string{"list", "--json=maybe"}, `mounttop: list: invalid value "maybe" for --json: invalid syntax`},
		{[]string{"--interval", "soon"}, `mounttop: invalid value "soon" for --interval`},
		{[]string{"completion", "tcsh"}, `mounttop: completion: no completion for "tcsh": one of bash, zsh, fish`},
	} {
		r := runMounttop(t, "", nil, c.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("mounttop %q: exit %d, stdout %q, stderr %q; want exit 2 and one line starting %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
}

// TestHelpFromTheTable: every command's --help is its synopsis, its flags
// with their help and its exit codes, from the table; the full help also
// lists every visible command and the view's keys (from ui's keymap).
func TestHelpFromTheTable(t *testing.T) {
	p := program()
	for _, c := range append([]cli.Command{p.Root}, p.Commands...) {
		if c.Hidden {
			continue
		}
		args := []string{"--help"}
		if c.Name != "" {
			args = []string{c.Name, "--help"}
		}
		r := runMounttop(t, "", nil, args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("mounttop %q: exit %d, stderr %q", args, r.code, r.stderr)
		}
		for _, f := range c.Flags {
			if !strings.Contains(r.stdout, "--"+f.Name) {
				t.Errorf("mounttop %q lacks --%s", args, f.Name)
			}
		}
		if !strings.Contains(r.stdout, "Exit codes:\n  0 ") {
			t.Errorf("mounttop %q lacks the exit codes:\n%s", args, r.stdout)
		}
	}
	r := runMounttop(t, "", nil, "--help")
	for _, want := range []string{"  umount      unmount PATH", "  version ", "  completion ", "  F           staged: fence, revoke, drain", "  ↑/k "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mounttop --help lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "__complete") {
		t.Error("mounttop --help lists the hidden __complete")
	}
}

// TestVersion: --version and the version command say the version (devel
// for a test build), the Go version and every kernel feature probed, with
// --json the same as one object.
func TestVersion(t *testing.T) {
	a := runMounttop(t, "", nil, "--version")
	b := runMounttop(t, "", nil, "version")
	if a.code != 0 || b.code != 0 || a.stdout != b.stdout || a.stderr != "" {
		t.Fatalf("--version: exit %d %q %q; version: exit %d %q", a.code, a.stdout, a.stderr, b.code, b.stdout)
	}
	for _, want := range []string{"mounttop devel\n", "go       go1.", "unique mount IDs", "listmount/statmount", "MOVE_MOUNT_BENEATH", "pidfd", "openat2", "fusectl"} {
		if !strings.Contains(a.stdout, want) {
			t.Errorf("version lacks %q:\n%s", want, a.stdout)
		}
	}
	j := runMounttop(t, "", nil, "version", "--json")
	var v cli.Version
	if err := json.Unmarshal([]byte(j.stdout), &v); err != nil || j.code != 0 {
		t.Fatalf("version --json: exit %d, %v: %q", j.code, err, j.stdout)
	}
	if v.Version != "devel" || len(v.Features) != 6 || v.Kernel == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("version --json: %+v", v)
	}
}

// TestManPage: `mounttop man` renders with groff without one warning,
// and names every command, flag, key, exit code and JSON field of the
// table.
func TestManPage(t *testing.T) {
	groff := testns.RequireTool(t, "groff")
	r := runMounttop(t, "", nil, "man")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("man: exit %d, stderr %q", r.code, r.stderr)
	}
	cmd := exec.Command(groff, "-ww", "-man", "-Tutf8")
	cmd.Stdin = strings.NewReader(r.stdout)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	// Drop the overstrike bold and the hyphenation to search the text.
	text := regexp.MustCompile(".\b").ReplaceAllString(out.String(), "")
	text = regexp.MustCompile("‐\n *").ReplaceAllString(text, "")
	text = strings.Join(strings.Fields(text), " ")
	p := program()
	want := []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "KEYS", "EXIT STATUS", "JSON FIELDS", "FILES", "ENVIRONMENT", "EXAMPLES", "SEE ALSO",
		"NO_COLOR", "journal.jsonl", "expire.json", "The dead NFS server", "The container holding a copy", "The loop device", "The lazily unmounted disk still busy"}
	for _, c := range append([]cli.Command{p.Root}, p.Commands...) {
		if !c.Hidden {
			want = append(want, "mounttop "+c.Name)
		}
		for _, f := range c.Flags {
			want = append(want, "--"+f.Name)
		}
	}
	for _, g := range p.Keys {
		for _, k := range g.Keys {
			want = append(want, k.Keys+" "+k.Help)
		}
	}
	for _, e := range p.ExitCodes {
		want = append(want, e.Code+" "+strings.Fields(e.Meaning)[0])
	}
	for _, d := range p.JSON {
		for _, f := range cli.JSONFields(d.Type) {
			want = append(want, f.Path)
		}
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the man page lacks %q", w)
		}
	}
	for _, field := range []string{"mounts[].unique_id", "holders[].uses[].fd", "result.filesystem.in_use_by[].kind", "features[].found"} {
		if !strings.Contains(text, field) {
			t.Errorf("the man page lacks the JSON field %s", field)
		}
	}
}

// TestBashCompletion runs the bash script in a real bash, as bash calls
// it (COMP_WORDS, COMP_CWORD): the subcommands, a flag's values, a
// command's flags, and a mount point of this test's namespace (a fresh
// tmpfs) for PATH.
func TestBashCompletion(t *testing.T) {
	bash := testns.RequireTool(t, "bash")
	dir := testns.Tmpfs(t, "")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `
mounttop() { ` + envAsMain + `=1 "$EXE" "$@"; }
eval "$(mounttop completion bash)"
try() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _mounttop; echo "$*: ${COMPREPLY[*]}"; }
try mounttop ''
try mounttop umount --revoke ''
try mounttop holders --j
try mounttop umount --lazy "${DIR%/*}/"
try mounttop completion ''
`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	cmd.Env = append(os.Environ(), "EXE="+exe, "DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"mounttop : list holders umount demo version completion ",
		"mounttop umount --revoke : close close-plain signal\n",
		"mounttop holders --j: --json\n",
		" " + dir,
		"mounttop completion : bash zsh fish\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("bash completion lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "__complete") {
		t.Errorf("the hidden __complete is offered:\n%s", got)
	}
}

// TestCompleteMounts: the mount points come from the mount table,
// unescaped (a space is \040 in mountinfo).
func TestCompleteMounts(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	spaced := dir + "/a b"
	if err := os.Mkdir(spaced, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("mounttop-test", spaced, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, spaced)
	r := runMounttop(t, "", nil, "__complete", "mounts")
	for _, want := range []string{dir, spaced} {
		if r.code != 0 || !strings.Contains(r.stdout, "\n"+want+"\n") {
			t.Errorf("__complete mounts: exit %d, stderr %q, no %q in\n%s", r.code, r.stderr, want, r.stdout)
		}
	}
}

// TestZshAndFishCompletionParse: the zsh and fish scripts parse (zsh -n,
// fish -n), where those shells are installed.
func TestZshAndFishCompletionParse(t *testing.T) {
	for _, sh := range []string{"zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			bin, err := exec.LookPath(sh)
			if err != nil {
				t.Skipf("%s is not installed (its script is checked where it is)", sh)
			}
			r := runMounttop(t, "", nil, "completion", sh)
			if r.code != 0 {
				t.Fatalf("completion %s: exit %d %q", sh, r.code, r.stderr)
			}
			f := t.TempDir() + "/mounttop." + sh
			if err := os.WriteFile(f, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", sh, err, out)
			}
		})
	}
}
