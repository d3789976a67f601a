package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"mounttop/inspect"
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

func (f *scanFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.proc, "proc", "/proc", "the proc filesystem to read")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up on the scan after this long (partial results are reported)")
	fs.BoolVar(&f.json, "json", false, "print JSON (names carried exactly; invalid UTF-8 as \\udcXX)")
}

// newFlagSet makes a subcommand's flag set whose errors are usage errors
// (exit 2) and whose --help prints the usage and exits 0.
func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(os.Stdout, usage)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp { // flag has printed the usage already
			return errHelp
		}
		return usagef("%s: %v (see mounttop %s --help)", fs.Name(), err, fs.Name())
	}
	return nil
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

const listUsage = `usage: mounttop list [--json] [--proc DIR] [--timeout D]

The mount tree of this mount namespace, one line per mount, with the number
of processes holding each. Walks no mount point: MNT_EXPIRE marks survive.
The first line names the namespace and whether it is the host's (pid 1's).
A mount no path leads to (shadowed by a later mount over it or over a
directory above it) is marked hidden: reach it by its unique ID (--id).
AUTOMOUNT says what mounts it again on access and when it expires by itself:
autofs (with its timeout), a systemd automount unit, or the kernel (NFS, AFS,
CIFS submounts), or "trigger" for an autofs trigger mount itself.
`

func runList(args []string) error {
	var f scanFlags
	fs := newFlagSet("list", listUsage)
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("list: unexpected argument %s", termsafe.Quote(fs.Arg(0)))
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

const holdersUsage = `usage: mounttop holders [--json] [--proc DIR] [--timeout D] PATH
       mounttop holders [--json] --id UNIQUE_ID

Who holds the mount at PATH, and how: open fds (with access mode), cwd and
root, executable, memory mappings and file locks, per process. PATH must be
a mount point: a path inside a mount is refused with the mount it lies on.
Also shows holders that are not processes (loop devices, swap files, nfsd
exports, io_uring registered files, binfmt_misc, submounts, overlays with a
layer on it, in any namespace) and copies of the filesystem in other mount
namespaces with their holders (the host's namespace named as such). PATH
leads to the mount a path walk reaches there, never a shadowed one.
`

func runHolders(args []string) error {
	var f scanFlags
	fs := newFlagSet("holders", holdersUsage)
	f.register(fs)
	var byID uint64
	fs.Uint64Var(&byID, "id", 0, "the mount's unique ID instead of PATH (for a detached mount, as list shows it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 && !(byID != 0 && fs.NArg() == 0) {
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
		target, err := table.Resolve(fs.Arg(0))
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
