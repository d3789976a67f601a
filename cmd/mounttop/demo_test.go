package main

import (
	"strings"
	"testing"
)

// The interactive view and the demo refuse bad input before the terminal
// is taken: one line on stderr, exit 2, nothing changed. (They run for
// real in a terminal in ui/e2e_test.go.)
func TestViewAndDemoRefuseBadInput(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "10ms"}, "--interval 10ms is too short"},
		{[]string{"--interval", "soon"}, "invalid value"},
		{[]string{"/a", "/b"}, "too many arguments: /b"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"/mnt"}, "the interactive view needs a terminal"},
		{[]string{"demo", "/mnt"}, "demo takes no PATH"},
		{[]string{"demo"}, "the demo needs a terminal"},
		{[]string{"/a", "\x1b[2Jevil"}, `too many arguments: \e[2Jevil`},
	}
	for _, c := range cases {
		r := runMounttop(t, "", nil, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("mounttop %q: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
}

func TestViewAndDemoHelp(t *testing.T) {
	// Plain "mounttop --help" is the main usage (main.go); the view's own
	// usage shows when --help follows one of its flags.
	for _, args := range [][]string{{"--interval", "1s", "--help"}, {"demo", "--help"}} {
		r := runMounttop(t, "", nil, args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "--interval") {
			t.Errorf("mounttop %q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}
