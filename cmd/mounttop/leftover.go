package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/cli"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// runRollbackFence is `mounttop umount --rollback-fence PATH`: the fence a
// killed run left at PATH (unmount.FindLeftovers) is rolled back through
// the engine (unmount.RollbackLeftover): the filesystem is back at PATH
// with its unique ID, the fence and its stash are gone. It plans, asks
// (or --yes), supports --dry-run and journals, like every destructive act.
func runRollbackFence(req *cli.Umount) error {
	path, err := filepath.Abs(req.Path)
	if err != nil {
		return usagef("umount: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	table, left, err := findLeftover(ctx, path)
	if err != nil {
		return err
	}
	out := os.Stdout
	fmt.Fprintln(out, oneLine("plan: "+present.LeftoverWhat(*left)+"; the rollback will "+present.LeftoverPlan(*left)))
	if req.DryRun {
		fmt.Fprintln(out, "dry run: nothing changed")
		return nil
	}
	if !req.Yes {
		if err := cli.AskYes(os.Stdin, os.Stderr, "umount", fmt.Sprintf("roll back the fence at %s, as planned above: go ahead? [y/N] ", termsafe.Quote(path))); err != nil {
			return err
		}
	}
	fence, _ := table.Mount(left.Fence.FenceID)
	st, err := openState(req.Journal, table, fence)
	if err != nil {
		return stateError(err)
	}
	defer st.close()
	warnState(st)
	u, err := unmount.Default(st.options()...)
	if err != nil {
		return err
	}
	defer u.Close()
	what, err := u.RollbackLeftover(ctx, *left)
	switch {
	case errors.Is(err, unmount.ErrRefused):
		return usagef("umount: %v (nothing changed)", err)
	case err != nil:
		return fmt.Errorf("rollback of the fence at %s: %w", termsafe.Quote(path), err)
	}
	fmt.Fprintln(out, oneLine("rollback "+present.NoteText(what)))
	return nil
}

// findLeftover finds the fence a killed run left at path, by the mount
// table alone; none there is bad input.
func findLeftover(ctx context.Context, path string) (*inspect.Snapshot, *unmount.Leftover, error) {
	in, err := inspect.New("/proc")
	if err != nil {
		return nil, nil, err
	}
	table, err := in.Mounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range unmount.FindLeftovers(ctx, table) {
		if l.Fence.Target == path {
			return table, &l, nil
		}
	}
	return nil, nil, usagef("umount: no fence left by a killed run at %s (mounttop list names them)", termsafe.Quote(path))
}

// writeLeftoversText says, after the mount table, what killed runs left.
func writeLeftoversText(w io.Writer, ls []unmount.Leftover) {
	for _, l := range ls {
		fmt.Fprintln(w, oneLine("LEFTOVER: "+present.LeftoverDescribe(l, "")))
	}
}
