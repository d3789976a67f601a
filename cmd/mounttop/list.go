package main

import (
	"context"
	"fmt"
	"os"
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
	in, err := inspect.New(f.proc, opts...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return in.Scan(ctx)
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
	in, err := inspect.New(f.proc)
	if err != nil {
		return usagef("%v", err)
	}
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
