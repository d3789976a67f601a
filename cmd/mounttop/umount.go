package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/cli"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// runUmount is `mounttop umount`: the request checked by cli.UmountFrom,
// the target found in the mount table, the plan prepared by the engine,
// shown and confirmed, then run with its events printed.
func runUmount(_ *cli.Program, a *cli.Parsed) error {
	req, err := cli.UmountFrom(a)
	if err != nil {
		return err
	}
	if req.Rollback {
		return runRollbackFence(req)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl, stop := watchSignals(cancel, os.Stderr, os.Exit)
	defer stop()
	table, target, err := findTarget(ctx, req)
	if err != nil {
		return err
	}
	st, err := umountState(req, table, target)
	if err != nil {
		return err
	}
	defer st.close()
	u, err := unmount.Default(st.options()...)
	if err != nil {
		return err
	}
	defer closeUnmounter(u)
	plan, err := prepare(ctx, u, req, target)
	if err != nil {
		return err
	}
	warnState(st) // said once the plan stands (a refused target moves nothing)
	if err := showPlan(os.Stdout, req, &plan); err != nil || req.DryRun {
		return err
	}
	if err := confirm(os.Stdin, os.Stderr, req, &plan); err != nil {
		return err
	}
	last, err := runPlan(ctx, ctl, u, plan, req)
	if err != nil {
		return err
	}
	return outcome(ctl.signal(), last)
}

// findTarget identifies the mount from the table alone: Resolve lstat()s
// every component but the mount point itself (a stat of it would clear an
// expiry mark) and refuses symbolic links, missing paths and paths that
// are not mount points; --id looks the unique ID up.
func findTarget(ctx context.Context, req *cli.Umount) (*inspect.Snapshot, *inspect.Mount, error) {
	in, err := inspect.New("/proc")
	if err != nil {
		return nil, nil, err
	}
	table, err := in.Mounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	if req.Path == "" {
		target, err := byUniqueID(ctx, in, table, req.ID)
		return table, target, err
	}
	target, err := table.Resolve(req.Path)
	if err != nil {
		return nil, nil, usagef("umount: %v", err)
	}
	return table, target, nil
}

// umountState opens the journal and the expiry book for a run; a dry run
// writes nothing and gets none (nil).
func umountState(req *cli.Umount, table *inspect.Snapshot, target *inspect.Mount) (*state, error) {
	if req.DryRun {
		return nil, nil
	}
	st, err := openState(req.Journal, table, target)
	if err != nil {
		return nil, stateError(err)
	}
	return st, nil
}

// prepare has the engine prepare the request's plan for target; a refused
// or vanished target is bad input (exit 2).
func prepare(ctx context.Context, u *unmount.Unmounter, req *cli.Umount, target *inspect.Mount) (unmount.Plan, error) {
	want := req.Plan
	want.Target = *target
	plan, err := u.Prepare(ctx, want)
	if errors.Is(err, unmount.ErrRefused) || errors.Is(err, unmount.ErrGone) {
		return plan, usagef("%v", err)
	}
	return plan, err
}

// showPlan prints the plan, as text or as the plan event in JSON, and
// says so when it is a dry run.
func showPlan(out io.Writer, req *cli.Umount, plan *unmount.Plan) error {
	if req.JSON {
		return writeEvent(out, unmount.PlanEvent(plan))
	}
	present.PlanText(out, plan)
	if req.DryRun {
		fmt.Fprintln(out, "dry run: nothing changed")
	}
	return nil
}

// runPlan runs the plan, printing each event after the plan (shown
// already), and returns the last one; ctl learns the stages and arms its
// watchdog.
func runPlan(ctx context.Context, ctl *umountControl, u *unmount.Unmounter, plan unmount.Plan, req *cli.Umount) (unmount.Event, error) {
	out := os.Stdout
	ctl.started(func() []string { return present.PendingLines(u.Pending()) }, req.Plan.Timeout)
	var last unmount.Event
	for ev := range u.Run(ctx, plan) {
		last = ev
		ctl.reached(ev.Stage.String())
		switch {
		case ev.Stage == unmount.StagePlan:
		case req.JSON:
			if err := writeEvent(out, ev); err != nil {
				return last, err
			}
		default:
			writeEventText(out, ev)
		}
	}
	return last, nil
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

// outcome maps the final event to the exit code: 128+N when signal N
// ended a run that did not get the mount off, 0 gone (verified), 3
// marked, 2 refused with nothing changed, 1 anything else.
func outcome(sig os.Signal, last unmount.Event) error {
	res := last.Result
	if res == nil {
		return errors.New("the run ended without a result")
	}
	s, signalled := sig.(unix.Signal)
	switch {
	case signalled && !res.Gone:
		return &exitError{128 + int(s), errors.New(present.ResultSummary(*res))}
	case res.Gone && last.Err == nil:
		return nil
	case res.Marked && last.Err == nil:
		return &exitError{exitMarked, errors.New(present.ResultSummary(*res))}
	case errors.Is(last.Err, unmount.ErrChanged) || errors.Is(last.Err, unmount.ErrRefused):
		return &exitError{exitUsage, errors.New(present.ResultSummary(*res))}
	}
	return &exitError{exitFailed, errors.New(present.ResultSummary(*res))}
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

// confirm asks on the terminal, unless --yes, defaulting to No; with no
// terminal on stdin it refuses (exit 2): a script must say --yes.
func confirm(in *os.File, prompt io.Writer, req *cli.Umount, p *unmount.Plan) error {
	if req.Yes {
		return nil
	}
	return cli.AskYes(in, prompt, "umount", present.ConfirmQuestion(p))
}
