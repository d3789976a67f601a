// Command mounttop shows who holds each mount and gets a mount off the
// system: `mounttop` opens the interactive view, `list`, `holders` and
// `umount` serve scripts, `demo` runs the view in a private sandbox.
// Every command and flag is declared once, in internal/cli's table; this
// package wires each command to the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"

	"mounttop/internal/cli"
	"mounttop/internal/present"
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

// version is the release, set at link time by the release build:
// go build -ldflags "-X main.version=1.2.0". Empty for a plain build,
// which says "devel" and the commit.
var version string

// Exit codes shared by every subcommand (cli's table documents them).
const (
	exitOK     = cli.ExitOK
	exitFailed = cli.ExitFailed
	exitUsage  = cli.ExitUsage
	exitMarked = cli.ExitMarked
)

// usagef is bad input or a refusal: one line on stderr, exit 2.
func usagef(format string, a ...any) error { return cli.Usagef(format, a...) }

// exitError carries a specific exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errQuiet ends a command with exit 0 and nothing more to say (help
// printed).
var errQuiet = errors.New("nothing more to say")

// program is mounttop's command line with the JSON documents its
// commands print.
func program() *cli.Program {
	return cli.Mounttop(
		cli.JSONDoc{Name: "mounttop list --json", What: "One object: the namespace, the mount table and what killed runs left.", Type: reflect.TypeFor[present.ListJSON]()},
		cli.JSONDoc{Name: "mounttop holders --json", What: "One object: the mount, its holders and how they hold it, the kernel's holders, copies in other namespaces.", Type: reflect.TypeFor[present.HoldersJSON]()},
		cli.JSONDoc{Name: "mounttop umount --json", What: "One object per line per event (the journal's lines too); the last, stage \"done\", has \"result\".", Type: present.EventJSONType()},
		cli.JSONDoc{Name: "mounttop version --json", What: "One object: the build and the kernel features found.", Type: reflect.TypeFor[cli.Version]()},
	)
}

// runners are the commands' entry points, by name ("" the view).
var runners = map[string]func(*cli.Program, *cli.Parsed) error{
	"":           runTUI,
	"list":       runList,
	"holders":    runHolders,
	"umount":     runUmount,
	"demo":       runDemo,
	"version":    runVersion,
	"completion": runCompletion,
	"man":        runMan,
	"__complete": runComplete,
}

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
	err := dispatch(program(), args)
	if err == nil || errors.Is(err, errQuiet) {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "mounttop: "+termsafe.Message(oneLine(err.Error())))
	var ue *cli.UsageError
	var ee *exitError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitFailed
}

// dispatch picks the command (the view when the first argument names
// none), parses its flags by the table and runs it; --help prints the
// command's help from the same table.
func dispatch(p *cli.Program, args []string) error {
	c := &p.Root
	if len(args) > 0 {
		if sc, ok := p.Command(args[0]); ok {
			c, args = sc, args[1:]
		} else if args[0] == "help" {
			return p.Help(os.Stdout, "")
		}
	}
	parsed, err := c.Parse(args)
	if errors.Is(err, cli.ErrHelp) {
		return p.Help(os.Stdout, c.Name)
	}
	if err != nil {
		return err
	}
	return runners[c.Name](p, parsed)
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
