package main

import (
	"fmt"
	"os"

	"mounttop/internal/cli"
	"mounttop/internal/demo"
)

// A demo holder is mounttop itself in a hidden role; it must run before
// anything else (flags, dispatch), so it is picked here.
func init() {
	if role := os.Getenv(demo.EnvHolder); role != "" {
		os.Exit(demo.RunHolder(role, os.Args[1:]))
	}
}

// runDemo is `mounttop demo`: it re-executes itself inside a private
// namespace, builds the sandbox there and runs the view on it.
func runDemo(_ *cli.Program, a *cli.Parsed) error {
	f, err := viewFlags(a)
	if err != nil {
		return err
	}
	if f.path != "" {
		return usagef("demo takes no PATH (it opens on /mnt/projects)")
	}
	if !demo.Inside() {
		if !cli.IsTerminal(os.Stdin) || !cli.IsTerminal(os.Stdout) {
			return usagef("the demo needs a terminal")
		}
		code, err := demo.Enter([]string{"demo", "--interval", f.interval.String()})
		if err != nil {
			return err
		}
		if code != 0 {
			return &exitError{code: code, err: fmt.Errorf("the demo ended with exit code %d", code)}
		}
		return nil
	}
	root := "/mnt"
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		// No /mnt to mount over: a fresh directory will do (removed on exit).
		if root, err = os.MkdirTemp("", "mounttop-demo-"); err != nil {
			return err
		}
		defer os.Remove(root)
	}
	sb, err := demo.Build(root)
	if err != nil {
		return err
	}
	defer sb.Close()
	f.path = sb.Start
	f.journal = "-" // a sandbox's actions do not belong in the real journal
	return runView(f, "demo sandbox, private to this demo: try F on "+sb.Start+", e on /mnt/scratch, ? help")
}
