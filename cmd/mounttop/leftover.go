package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// runRollbackFence is `mounttop umount --rollback-fence PATH`: the fence a
// killed run left at PATH (unmount.FindLeftovers) is rolled back through
// the engine (unmount.RollbackLeftover): the filesystem is back at PATH
// with its unique ID, the fence and its stash are gone. It plans, asks
// (or --yes), supports --dry-run and journals, like every destructive act.
func runRollbackFence(f *umountFlags, fs *flag.FlagSet, pos []string) error {
	seen := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { seen[fl.Name] = true })
	switch {
	case f.lazy || f.expire || f.force || f.staged:
		return usagef("umount: --rollback-fence is an act of its own, not one with --lazy, --expire, --force or --staged")
	case seen["id"]:
		return usagef("umount: --rollback-fence takes the fenced PATH, not --id")
	case len(seen) > countSeen(seen, "rollback-fence", "dry-run", "yes", "journal"):
		return usagef("umount: --rollback-fence goes with --dry-run, --yes and --journal only")
	case len(pos) != 1:
		return usagef("umount: --rollback-fence needs the one PATH the fence covers (mounttop list names it)")
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return usagef("umount: %v", err)
	}
	in, err := inspect.New("/proc")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	table, err := in.Mounts(ctx)
	if err != nil {
		return err
	}
	var left *unmount.Leftover
	for _, l := range unmount.FindLeftovers(ctx, table) {
		if l.Fence.Target == path {
			left = &l
			break
		}
	}
	if left == nil {
		return usagef("umount: no fence left by a killed run at %s (mounttop list names them)", termsafe.Quote(path))
	}
	out := os.Stdout
	fmt.Fprintln(out, oneLine("plan: "+left.What()+"; the rollback will "+left.Plan()))
	if f.dryRun {
		fmt.Fprintln(out, "dry run: nothing changed")
		return nil
	}
	if !f.yes {
		if err := askYes(os.Stdin, os.Stderr, fmt.Sprintf("roll back the fence at %s, as planned above: go ahead? [y/N] ", termsafe.Quote(path))); err != nil {
			return err
		}
	}
	fence, _ := table.Mount(left.Fence.FenceID)
	st, err := openState(f.journal, table, fence)
	if err != nil {
		return stateError(err)
	}
	defer st.close()
	if st.warn != "" {
		fmt.Fprintln(os.Stderr, "mounttop: warning: "+oneLine(st.warn))
	}
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
	fmt.Fprintln(out, oneLine("rollback "+what))
	return nil
}

// countSeen counts the names among seen.
func countSeen(seen map[string]bool, names ...string) int {
	n := 0
	for _, name := range names {
		if seen[name] {
			n++
		}
	}
	return n
}

// writeLeftoversText says, after the mount table, what killed runs left.
func writeLeftoversText(w io.Writer, ls []unmount.Leftover) {
	for _, l := range ls {
		fmt.Fprintln(w, oneLine("LEFTOVER: "+l.Describe("")))
	}
}
