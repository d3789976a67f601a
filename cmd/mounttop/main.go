// Command mounttop shows who holds each mount and gets a mount off the
// system: `mounttop` opens the interactive view, `list`, `holders` and
// `umount` serve scripts, `demo` runs the view in a private sandbox.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"mounttop/internal/termsafe"
	"mounttop/unmount"
	"mounttop/unmount/revoke"
)

func init() {
	// Keep the main goroutine on the main OS thread, so that a goroutine
	// that setns(2)es into another mount namespace (and then lets its
	// thread die) is never on the main thread (DESIGN.md, other
	// namespaces).
	runtime.LockOSThread()
}

// Exit codes shared by every subcommand.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad usage or refused input: nothing was changed
	exitMarked = 3 // umount --expire marked the mount, not yet unmounted
)

// usageError is bad input or a refusal: one line on stderr, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitError carries a specific exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

type command struct {
	name  string
	brief string
	run   func(args []string) error
}

func commands() []command {
	return []command{
		{"list", "the mount tree, one line per mount, with holder counts", runList},
		{"holders", "who holds the mount at PATH, and how", runHolders},
		{"umount", "unmount PATH: --lazy, --expire, --force or --staged", runUmount},
		{"demo", "the interactive view in a private sandbox with busy demo mounts", runDemo},
	}
}

const mainUsage = `usage: mounttop [flags] [PATH]        interactive view (PATH: start on that mount)
       mounttop list [--json]
       mounttop holders [--json] PATH | --id ID
       mounttop umount (--lazy|--expire|--force|--staged) [flags] PATH
       mounttop umount --staged [--release] [flags] --id UNIQUE_ID
       mounttop demo

The view's flags: --interval D (refresh, default 2s), --proc DIR, --journal PATH|-;
press ? in the view for its keys. Run "mounttop COMMAND --help" for a command's flags.
Exit codes: 0 success, 1 failure, 2 bad usage or refused input, 3 expire marked the mount.
`

func main() {
	// Started as the revoke tracer process (unmount/revoke.Tracer): serve
	// that and exit; this comes before anything else happens.
	revoke.TracerMain()
	os.Exit(run(os.Args[1:]))
}

// closeUnmounter closes u when a command is done with it, saying on stderr
// what the revoke tracer process still holds (a process inside an injected
// syscall, restored and released by it when the call returns).
func closeUnmounter(u *unmount.Unmounter) {
	if err := u.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "mounttop: "+termsafe.Message(oneLine(err.Error())))
	}
}

func run(args []string) int {
	err := dispatch(args)
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "mounttop: "+termsafe.Message(oneLine(err.Error())))
	var ue *usageError
	var ee *exitError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitFailed
}

var errHelp = errors.New("help shown")

func dispatch(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "--help":
			fmt.Print(mainUsage)
			for _, c := range commands() {
				fmt.Printf("  %-8s %s\n", c.name, c.brief)
			}
			return nil
		}
		for _, c := range commands() {
			if c.name == args[0] {
				return c.run(args[1:])
			}
		}
	}
	return runTUI(args)
}

// oneLine keeps an error message on one line (a path in it may hold a
// newline; the paths themselves are escaped where the message is built,
// and termsafe.Message then escapes only a control left raw in it, never a
// name a second time).
func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
