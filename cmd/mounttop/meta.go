package main

import (
	"bufio"
	"context"
	"os"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/cli"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
)

// runVersion is `mounttop version` and `mounttop --version`.
func runVersion(_ *cli.Program, a *cli.Parsed) error {
	if len(a.Pos) > 0 {
		return usagef("version: unexpected argument %s", termsafe.Quote(a.Pos[0]))
	}
	return printVersion(a.Bool("json"))
}

// printVersion prints the build and the kernel features found.
func printVersion(asJSON bool) error {
	v := cli.BuildVersion(version).WithFeatures(context.Background(), "/proc")
	if asJSON {
		return present.WriteJSON(os.Stdout, v)
	}
	return v.WriteText(os.Stdout)
}

// runCompletion is `mounttop completion SHELL`.
func runCompletion(p *cli.Program, a *cli.Parsed) error {
	if len(a.Pos) != 1 {
		return usagef("completion: name one shell: %s", strings.Join(cli.Shells, ", "))
	}
	return p.Completion(os.Stdout, a.Pos[0])
}

// runMan is the hidden `mounttop man`: the manual page in roff.
func runMan(p *cli.Program, a *cli.Parsed) error {
	if len(a.Pos) > 0 {
		return usagef("man: unexpected argument %s", termsafe.Quote(a.Pos[0]))
	}
	return p.Man(os.Stdout, cli.BuildVersion(version).Version)
}

// runComplete is the hidden `mounttop __complete mounts`: the mount points
// of the mount table, one a line, unescaped (proc(5) octal escapes), for
// the completion scripts. It reads /proc/self/mountinfo only: no stat, no
// walk of a mount.
func runComplete(_ *cli.Program, a *cli.Parsed) error {
	if len(a.Pos) != 1 || a.Pos[0] != "mounts" {
		return usagef("__complete: only \"mounts\"")
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(os.Stdout)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// A name with a control character in it (a newline, an escape
		// sequence) is left out: it cannot be one line, nor reach the
		// terminal raw in the shell's menu.
		if mp := inspect.UnescapeSeqPath(fields[4]); termsafe.Text(mp) == mp {
			w.WriteString(mp + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return w.Flush()
}
