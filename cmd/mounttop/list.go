package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"mounttop/inspect"
	"mounttop/internal/cli"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// scanFlags are the flags every scanning subcommand shares.
type scanFlags struct {
	proc    string
	timeout time.Duration
	json    bool
}

func scanFlagsFrom(a *cli.Parsed) scanFlags {
	return scanFlags{proc: a.String("proc"), timeout: a.Duration("timeout"), json: a.Bool("json")}
}

func (f *scanFlags) scan(opts ...inspect.Option) (*inspect.Snapshot, error) {
	scanMemory()
	in, err := inspect.New(f.proc, opts...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return in.Scan(ctx)
}

// scanMemory keeps a one-shot scan's heap near what it holds: the scan
// builds its snapshot while the iterator's files are live, and GOGC=50
// (debug.SetGCPercent) lets the heap grow half the live data between
// collections instead of all of it: 1.5 MB less at the peak of `list` at
// issue 12's workload, for no time measured (bench/README.md). GOGC in
// the environment wins.
func scanMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}

func runList(_ *cli.Program, a *cli.Parsed) error {
	f := scanFlagsFrom(a)
	if len(a.Pos) > 0 {
		return usagef("list: unexpected argument %s", termsafe.Quote(a.Pos[0]))
	}
	snap, err := f.scan(inspect.WithDetail(inspect.DetailCounts))
	if err != nil {
		return err
	}
	left := unmount.FindLeftovers(context.Background(), snap)
	if f.json {
		return present.WriteJSON(os.Stdout, present.List(snap, left))
	}
	if err := present.WriteList(os.Stdout, snap); err != nil {
		return err
	}
	present.WriteWarnings(os.Stderr, snap.Warnings)
	writeLeftoversText(os.Stdout, left)
	return nil
}

func runHolders(_ *cli.Program, a *cli.Parsed) error {
	f := scanFlagsFrom(a)
	byID := a.Uint("id")
	if len(a.Pos) != 1 && !(byID != 0 && len(a.Pos) == 0) {
		return usagef("holders: give exactly one PATH, or --id (see mounttop holders --help)")
	}
	scanMemory()
	in, err := inspect.New(f.proc)
	if err != nil {
		return usagef("%v", err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	id := inspect.MountID(byID)
	if byID == 0 {
		table, err := in.Mounts(ctx)
		if err != nil {
			return err
		}
		target, err := table.Resolve(a.Pos[0])
		if err != nil {
			return usagef("holders: %v", err)
		}
		id = target.ID
	}
	snap, err := f.scan(inspect.WithFocus(id))
	if err != nil {
		return err
	}
	m, ok := snap.Mount(id)
	if !ok {
		if byID != 0 {
			return usagef("holders: no mount with unique ID %d (in this namespace or detached and held)", byID)
		}
		return fmt.Errorf("holders: the mount went away during the scan")
	}
	if f.json {
		return present.WriteJSON(os.Stdout, present.HoldersOf(snap, m))
	}
	if err := present.WriteHolders(os.Stdout, snap, m); err != nil {
		return err
	}
	present.WriteWarnings(os.Stderr, snap.Warnings)
	return nil
}
