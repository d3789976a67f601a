package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"mounttop/internal/testns"
	"mounttop/unmount/revoke"
)

// envAsMain makes the test binary act as mounttop itself, so tests run the
// real command (real exit codes, real stdout/stderr) inside the test's
// private mount namespace.
const envAsMain = "MOUNTTOP_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	revoke.TracerMain()
	if os.Getenv(envAsMain) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	testns.Main(m)
}

// result is one run of the mounttop command.
type result struct {
	stdout, stderr string
	code           int
}

// runMounttop runs `mounttop args...` as a child process (the test binary
// in its main role) with optional extra environment and stdin.
func runMounttop(t testing.TB, stdin string, env []string, args ...string) result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), envAsMain+"=1"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running mounttop %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}
