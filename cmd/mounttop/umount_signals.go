package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// exitAbandoned: `mounttop umount` gave up waiting for its run (the
// --timeout watchdog, or a second signal) and exited with calls still
// pending; exit 128+N is for a run ended by signal N (130 for SIGINT).
const exitAbandoned = 4

// stopGrace is how long `mounttop umount` waits, after the first SIGINT,
// SIGTERM or SIGHUP, for the cancelled run to roll back and end.
const stopGrace = 5 * time.Second

// umountControl keeps `mounttop umount` to its time limits whatever the
// kernel does. Every call of the run that can wait on a filesystem's
// server is bounded (internal/bounded), so a run ends on its own; this is
// the outer guard for what is not (a process that never stops for ptrace,
// a bug):
//
//   - before the run starts (planning, the confirmation) a signal exits at
//     once: nothing was changed yet;
//   - during the run the first signal cancels it (the engine rolls the
//     fence back when no holder was revoked yet) and mounttop exits when it
//     ends, or after stopGrace;
//   - a second signal exits at once, printing what is still pending: the
//     calls abandoned in the kernel, the holders a revoke is working on;
//   - a watchdog exits at --timeout plus 5 s after the run started.
//
// A forced exit is 128+N for signal N, exitAbandoned for the watchdog.
type umountControl struct {
	cancel context.CancelFunc
	stderr io.Writer
	exit   func(code int)
	grace  time.Duration // stopGrace

	mu      sync.Mutex
	running bool
	gaveUp  bool            // giveUp ran: the process is exiting
	got     os.Signal       // the first signal, if any
	pending func() []string // what is still pending (unmount.Unmounter.Pending)
	stage   string          // the last stage the run reported
}

// watchSignals starts handling SIGINT, SIGTERM and SIGHUP; stop ends it.
func watchSignals(cancel context.CancelFunc, stderr io.Writer, exit func(int)) (c *umountControl, stop func()) {
	c = &umountControl{cancel: cancel, stderr: stderr, exit: exit, grace: stopGrace}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, unix.SIGTERM, unix.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				c.onSignal(s)
			case <-done:
				return
			}
		}
	}()
	return c, func() { signal.Stop(sigs); close(done) }
}

// started says the run began (something may change from now on), with
// what to list as pending, and arms the watchdog: limit after now, plus
// stopGrace (0: no limit, e.g. --expire-when-idle without --timeout).
func (c *umountControl) started(pending func() []string, limit time.Duration) {
	c.mu.Lock()
	c.running, c.pending = true, pending
	c.mu.Unlock()
	if limit > 0 {
		time.AfterFunc(limit+c.grace, func() {
			c.giveUp(exitAbandoned, fmt.Sprintf("the run did not end within --timeout %v plus %v", limit, c.grace))
		})
	}
}

// reached records the stage of the last event, for a forced exit's
// message.
func (c *umountControl) reached(stage string) {
	c.mu.Lock()
	c.stage = stage
	c.mu.Unlock()
}

// signal is the first signal received, or nil.
func (c *umountControl) signal() os.Signal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got
}

func (c *umountControl) onSignal(s os.Signal) {
	c.mu.Lock()
	first, running := c.got == nil, c.running
	if first {
		c.got = s
	}
	c.mu.Unlock()
	code := 128 + int(s.(unix.Signal))
	switch {
	case !running:
		fmt.Fprintf(c.stderr, "mounttop: got %s before anything changed: exiting\n", unix.SignalName(s.(unix.Signal)))
		c.exit(code)
	case first:
		fmt.Fprintf(c.stderr, "mounttop: got %s: cancelling the run (the fence is rolled back if no holder was revoked yet); again to exit at once\n", unix.SignalName(s.(unix.Signal)))
		c.cancel()
		time.AfterFunc(c.grace, func() {
			c.giveUp(code, fmt.Sprintf("the cancelled run did not end within %v of %s", c.grace, unix.SignalName(s.(unix.Signal))))
		})
	default:
		c.giveUp(code, "got "+unix.SignalName(s.(unix.Signal))+" again")
	}
}

// giveUp exits now, saying why and what is still pending.
func (c *umountControl) giveUp(code int, why string) {
	c.mu.Lock()
	if c.gaveUp { // the watchdog and a second signal at once: say it once
		c.mu.Unlock()
		return
	}
	c.gaveUp = true
	pending, stage := c.pending, c.stage
	c.mu.Unlock()
	var left []string
	if pending != nil {
		left = pending()
	}
	msg := "mounttop: " + why + ": exiting now"
	if stage != "" {
		msg += " (the run was at stage " + stage + "; mounttop list shows what is left, e.g. a fence)"
	}
	if len(left) == 0 {
		msg += "; nothing of mounttop's own is pending"
	} else {
		msg += "; still pending:"
	}
	fmt.Fprintln(c.stderr, msg)
	for _, l := range left {
		fmt.Fprintln(c.stderr, "  "+oneLine(l))
	}
	c.exit(code)
}
