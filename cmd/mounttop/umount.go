package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

const umountUsage = `usage: mounttop umount (--lazy | --expire | --force | --staged) [flags] PATH
       mounttop umount --staged [flags] --id UNIQUE_ID
       mounttop umount --rollback-fence [--dry-run] [--yes] [--journal PATH|-] PATH

Get the mount at PATH off the system. PATH must be a mount point; no
component of it may be a symbolic link (mounttop never follows one into an
unmount). The mount is identified when the command starts and re-checked by
its unique mount ID right before acting.

--id names the mount by its unique ID instead (the "unique_id" of mounttop
list --json): any mount of this namespace, or a detached one, i.e. lazily
unmounted and still held by processes. A detached mount is in no mount
table, so only --staged can take it: no fence, its holders are revoked and
drained until none is left and the kernel lets it go.

  --lazy     umount2(MNT_DETACH): gone from the namespace at once; the
             filesystem lives on until its holders let go.
  --expire   umount2(MNT_EXPIRE): the first call on an idle mount marks it
             (exit 3), the next one unmounts it if nothing touched it in
             between; a busy mount is reported with its holders.
  --force    umount2(MNT_FORCE): aborts requests to a dead server (NFS, CIFS,
             9p, Ceph, FUSE); ignored by local filesystems (use --staged).
  --staged   the staged forced unmount: fence new opens, syncfs, revoke the
             holders (--revoke), drain every --interval, unmount for real.
  --recursive
             also unmount the submounts, deepest first. With --staged, also
             the overlays (stacking filesystems) of this namespace that use
             the mount or a submount as a layer: their holders are revoked
             with the mount's and each overlay is unmounted before the
             mount. Without it such an overlay is only named: it keeps the
             filesystem alive after the unmount.
  --release  with --staged: also free what holds the mount besides this
             namespace's processes, as the plan lists them: revoke the
             holders of its copies in other mount namespaces that our
             unmount propagates to, unmount other copies there (setns;
             lazily if held there), detach loop devices backed by a file on
             it (unless the loop device is itself mounted), swapoff swap
             files on it. Without it these are only named.
  --release-host
             with --release: also unmount a copy in the host's mount
             namespace (pid 1's). Refused without it: run from inside a
             container or an unshare'd shell, that changes what the whole
             machine sees.
  --allow-system-mount
             also take a mount the system runs on: /, /proc, /sys, /dev,
             /dev/pts, /dev/shm, /run, /sys/fs/cgroup, any kernel API
             filesystem by type (proc, sysfs, devtmpfs, devpts, cgroup,
             cgroup2, mqueue, debugfs, tracefs, bpf, autofs, ...), the
             /proc mounttop reads and the mount its journal is on. Refused
             without it (exit 2). mounttop's own executable and cwd are
             never unmounted from under it.

Every plan says what will keep the filesystem itself in use after the
unmount, and every result whether it is: "filesystem released" or
"filesystem still in use by: ..." (other mounts of it, here or in other
mount namespaces; a detached mount still held; overlays using it as a
layer; loop devices; swap files; for a block device, a claim that keeps an
exclusive open (O_EXCL) failing with EBUSY). --json carries it as
"filesystem" on the plan event and in "result".

Exit codes: 0 the mount is gone (verified), 1 failed, 2 bad usage or refused
(nothing changed), 3 --expire marked the mount but has not unmounted it yet,
4 gave up waiting: the run did not end within --timeout plus 5s (what is
still pending is printed), 128+N ended by signal N (130 for SIGINT).

A server that does not answer (a stopped FUSE daemon, an NFS or CIFS server
gone) never hangs mounttop: every call that can wait on it has a deadline
(--call-timeout) and is abandoned, and said, when it passes. --staged first
probes the server (statfs, 2s); if it does not answer, the plan says so and
the run cuts the filesystem off it before revoking (FUSE: the connection's
abort file in /sys/fs/fuse/connections, or MNT_FORCE; NFS, CIFS: MNT_FORCE),
skips syncfs (nothing can reach the server), then revokes, drains and
unmounts as usual. The holders keep running; their I/O on the mount fails.

SIGINT, SIGTERM or SIGHUP cancel the run: before any holder is revoked the
fence is rolled back; mounttop exits within 5s. A second one exits at once,
printing what is still pending (calls blocked in the kernel, holders being
revoked).

Flags:
`

// umountFlags are `mounttop umount`'s flags.
type umountFlags struct {
	lazy, expire, force, staged bool
	revoke                      string
	grace, interval, timeout    time.Duration
	callTimeout                 time.Duration
	recursive, whenIdle         bool
	dryRun, yes, json           bool
	journal                     string
	release, releaseHost        bool
	allowSystem                 bool
	id                          uint64
	rollbackFence               bool
}

func (f *umountFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.lazy, "lazy", false, "detach now (MNT_DETACH)")
	fs.BoolVar(&f.expire, "expire", false, "mark, then unmount if still idle (MNT_EXPIRE)")
	fs.BoolVar(&f.force, "force", false, "MNT_FORCE (network and FUSE filesystems)")
	fs.BoolVar(&f.staged, "staged", false, "fence, revoke, drain, unmount")
	fs.StringVar(&f.revoke, "revoke", "close", "--staged: close (ptrace: a placeholder on each fd, unmap, cwd into an empty read-only directory; processes keep running), close-plain (the same, but fds closed: their numbers are free for the next open) or signal (SIGTERM, SIGKILL after --grace)")
	fs.DurationVar(&f.grace, "grace", unmount.DefaultGrace, "--revoke=signal: SIGTERM to SIGKILL")
	fs.DurationVar(&f.interval, "interval", unmount.DefaultInterval, "--staged: drain rescan interval; --expire-when-idle: re-arm interval")
	fs.DurationVar(&f.timeout, "timeout", unmount.DefaultTimeout, "--staged: give up (and roll the fence back) this long after the run starts; mounttop exits by --timeout plus 5s whatever the kernel does; --expire-when-idle: 0 waits until cancelled")
	fs.DurationVar(&f.callTimeout, "call-timeout", unmount.DefaultCallTimeout, "--staged: abandon a call that waits on the filesystem's server (open, syncfs, statfs, fence, rollback) after this; at most --timeout")
	fs.BoolVar(&f.recursive, "recursive", false, "also unmount the submounts, deepest first; --staged: and, before the mount, the overlays elsewhere that use it as a layer (their holders revoked too)")
	fs.BoolVar(&f.whenIdle, "expire-when-idle", false, "--expire: re-arm every --interval until the mount goes")
	fs.BoolVar(&f.release, "release", false, "--staged: also release copies in other mount namespaces, loop devices and swap files that hold the mount")
	fs.BoolVar(&f.releaseHost, "release-host", false, "--release: also release a copy in the host's mount namespace (pid 1's)")
	fs.BoolVar(&f.rollbackFence, "rollback-fence", false, "roll back the fence a killed run left at PATH: the filesystem back in place, the fence gone (mounttop list shows them)")
	fs.BoolVar(&f.allowSystem, "allow-system-mount", false, "also unmount a mount the system runs on (/, /proc, /sys, /dev, /run, kernel API filesystems) or the /proc or journal mounttop uses")
	fs.Uint64Var(&f.id, "id", 0, "the mount's unique ID instead of PATH (as mounttop list --json shows it; also a detached mount)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&f.json, "json", false, `one JSON object per event per line, each with "stage"; the last ("done") has "result"`)
	fs.StringVar(&f.journal, "journal", "", "append the journal here, - for none (default /var/log/mounttop/journal.jsonl for root, $XDG_STATE_HOME/mounttop/journal.jsonl otherwise); expire.json goes beside it")
}

// parseInterleaved parses flags before and after the positional arguments
// (`umount PATH --staged` works as well as `umount --staged PATH`); after
// "--" everything is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i, a := range args {
		if a == "--" {
			rest = args[i+1:]
			args = args[:i]
			break
		}
	}
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return append(pos, rest...), nil
}

// mode turns the four mode flags into one Mode, refusing none or several.
func (f *umountFlags) mode() (unmount.Mode, error) {
	var set []string
	var m unmount.Mode
	for _, c := range []struct {
		on   bool
		name string
		mode unmount.Mode
	}{{f.lazy, "--lazy", unmount.ModeLazy}, {f.expire, "--expire", unmount.ModeExpire}, {f.force, "--force", unmount.ModeForce}, {f.staged, "--staged", unmount.ModeStaged}} {
		if c.on {
			set = append(set, c.name)
			m = c.mode
		}
	}
	switch len(set) {
	case 0:
		return 0, usagef("umount: choose one of --lazy, --expire, --force, --staged (see mounttop umount --help)")
	case 1:
		return m, nil
	}
	return 0, usagef("umount: one mode at a time, not %s", strings.Join(set, " and "))
}

func runUmount(args []string) error {
	var f umountFlags
	fs := newFlagSet("umount", umountUsage)
	f.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if f.rollbackFence {
		return runRollbackFence(&f, fs, pos)
	}
	mode, err := f.mode()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { seen[fl.Name] = true })
	switch {
	case seen["id"] && len(pos) > 0:
		return usagef("umount: give a PATH or --id, not both")
	case seen["id"] && f.id == 0:
		return usagef("umount: --id needs a unique mount ID (mounttop list --json shows them)")
	case len(pos) == 0 && !seen["id"]:
		return usagef("umount: which mount? give its PATH (or --id UNIQUE_ID)")
	case len(pos) > 1:
		return usagef("umount: one PATH at a time (got %d)", len(pos))
	case f.release && mode != unmount.ModeStaged:
		return usagef("umount: --release goes with --staged (the staged run releases after revoking)")
	case f.releaseHost && !f.release:
		return usagef("umount: --release-host goes with --release")
	case f.revoke != "close" && f.revoke != "close-plain" && f.revoke != "signal":
		return usagef("umount: --revoke is close, close-plain or signal, not %s", termsafe.Quote(f.revoke))
	case mode != unmount.ModeStaged && (seen["revoke"] || seen["grace"]):
		return usagef("umount: --revoke and --grace apply to --staged only")
	case f.whenIdle && mode != unmount.ModeExpire:
		return usagef("umount: --expire-when-idle goes with --expire")
	case f.interval <= 0 || f.grace <= 0 || f.timeout < 0 || f.callTimeout <= 0:
		return usagef("umount: --interval, --grace and --call-timeout must be positive, --timeout not negative")
	case mode != unmount.ModeStaged && seen["call-timeout"]:
		return usagef("umount: --call-timeout applies to --staged only")
	}

	// Identify the mount from the table alone: Resolve lstat()s every
	// component but the mount point itself (a stat of it would clear an
	// expiry mark) and refuses symbolic links, missing paths and paths that
	// are not mount points.
	in, err := inspect.New("/proc")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl, stop := watchSignals(cancel, os.Stderr, os.Exit)
	defer stop()
	table, err := in.Mounts(ctx)
	if err != nil {
		return err
	}
	var target *inspect.Mount
	if seen["id"] {
		if target, err = byUniqueID(ctx, in, table, inspect.MountID(f.id)); err != nil {
			return err
		}
	} else if target, err = table.Resolve(pos[0]); err != nil {
		return usagef("umount: %v", err)
	}

	var opts []unmount.Option
	stateWarn := ""
	if !f.dryRun {
		st, err := openState(f.journal, table, target)
		if err != nil {
			return stateError(err)
		}
		defer st.close()
		stateWarn, opts = st.warn, st.options()
	}
	u, err := unmount.Default(opts...)
	if err != nil {
		return err
	}
	defer closeUnmounter(u)

	policy := unmount.PolicyClose
	switch f.revoke {
	case "signal":
		policy = unmount.PolicySignal
	case "close-plain":
		policy = unmount.PolicyClosePlain
	}
	timeout := f.timeout
	if mode == unmount.ModeExpire && !seen["timeout"] {
		timeout = 0 // expire-when-idle waits until the mount goes or Ctrl-C
	}
	plan, err := u.Prepare(ctx, unmount.Plan{Target: *target, Mode: mode, Policy: policy, Grace: f.grace,
		Interval: f.interval, Timeout: timeout, CallTimeout: f.callTimeout, Recursive: f.recursive, ExpireWhenIdle: f.whenIdle, Release: f.release, ReleaseHost: f.releaseHost, AllowSystem: f.allowSystem})
	if err != nil {
		if errors.Is(err, unmount.ErrRefused) || errors.Is(err, unmount.ErrGone) {
			return usagef("%v", err)
		}
		return err
	}

	if stateWarn != "" {
		// Said once the plan stands (a refused target moves nothing).
		fmt.Fprintln(os.Stderr, "mounttop: warning: "+oneLine(stateWarn))
	}
	out := os.Stdout
	if f.json {
		if err := writeEvent(out, unmount.PlanEvent(&plan)); err != nil {
			return err
		}
	} else {
		present.PlanText(out, &plan)
	}
	if f.dryRun {
		if !f.json {
			fmt.Fprintln(out, "dry run: nothing changed")
		}
		return nil
	}
	if !f.yes {
		if err := confirm(os.Stdin, os.Stderr, &plan); err != nil {
			return err
		}
	}

	ctl.started(u.Pending, timeout)
	var last unmount.Event
	for ev := range u.Run(ctx, plan) {
		last = ev
		ctl.reached(ev.Stage.String())
		if ev.Stage == unmount.StagePlan {
			continue // shown above
		}
		if f.json {
			if err := writeEvent(out, ev); err != nil {
				return err
			}
		} else {
			writeEventText(out, ev)
		}
	}
	if s, ok := ctl.signal().(unix.Signal); ok && last.Result != nil && !last.Result.Gone {
		return &exitError{128 + int(s), errors.New(last.Result.Summary)}
	}
	return outcome(last)
}

// byUniqueID finds the mount with unique ID id: in the table, or else
// among the detached mounts a full scan finds (a detached mount is known
// only through the processes that hold it). An unknown ID is bad input.
func byUniqueID(ctx context.Context, in *inspect.Inspector, table *inspect.Snapshot, id inspect.MountID) (*inspect.Mount, error) {
	if m, ok := table.Mount(id); ok {
		return m, nil
	}
	snap, err := in.Scan(ctx)
	if err != nil {
		return nil, err
	}
	if m, ok := snap.Mount(id); ok {
		return m, nil
	}
	return nil, usagef("umount: no mount with unique ID %d (in this namespace, or detached and still held; mounttop list --json shows them)", id)
}

// outcome maps the final event to the exit code: 0 gone (verified), 3
// marked, 2 refused with nothing changed, 1 anything else.
func outcome(last unmount.Event) error {
	res := last.Result
	if res == nil {
		return errors.New("the run ended without a result")
	}
	switch {
	case res.Gone && last.Err == nil:
		return nil
	case res.Marked && last.Err == nil:
		return &exitError{exitMarked, errors.New(res.Summary)}
	case errors.Is(last.Err, unmount.ErrChanged) || errors.Is(last.Err, unmount.ErrRefused):
		return &exitError{exitUsage, errors.New(res.Summary)}
	}
	return &exitError{exitFailed, errors.New(res.Summary)}
}

func writeEvent(w io.Writer, ev unmount.Event) error {
	b, err := present.EventJSON(ev)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeEventText prints one event as a line of text (present.EventText).
func writeEventText(w io.Writer, ev unmount.Event) { fmt.Fprintln(w, present.EventText(ev)) }

// confirm asks on the terminal, defaulting to No; with no terminal on
// stdin it refuses (exit 2): a script must say --yes.
func confirm(in *os.File, prompt io.Writer, p *unmount.Plan) error {
	return askYes(in, prompt, present.ConfirmQuestion(p))
}

// askYes asks question on the terminal, defaulting to No; with no
// terminal on stdin it refuses (exit 2).
func askYes(in *os.File, prompt io.Writer, question string) error {
	if _, err := unix.IoctlGetTermios(int(in.Fd()), unix.TCGETS); err != nil {
		return usagef("umount: refusing to act without confirmation: stdin is not a terminal (add --yes; nothing changed)")
	}
	fmt.Fprint(prompt, question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return usagef("umount: not confirmed; nothing changed")
}
