package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/cli"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
	"mounttop/ui"
	"mounttop/unmount"
)

// tuiFlags are the interactive view's settings; demo takes the same.
type tuiFlags struct {
	interval time.Duration
	proc     string
	journal  string
	path     string
}

// viewFlags reads the view's flags (demo has --interval only).
func viewFlags(a *cli.Parsed) (tuiFlags, error) {
	f := tuiFlags{interval: a.Duration("interval"), proc: "/proc"}
	if a.Root() {
		f.proc, f.journal = a.String("proc"), a.String("journal")
	}
	if f.interval < cli.MinInterval {
		return f, usagef("--interval %v is too short (at least %v)", f.interval, cli.MinInterval)
	}
	switch len(a.Pos) {
	case 0:
	case 1:
		f.path = a.Pos[0]
	default:
		return f, usagef("too many arguments: %s (one PATH at most)", termsafe.Quote(a.Pos[1]))
	}
	return f, nil
}

// runTUI is the interactive view (and --version).
func runTUI(_ *cli.Program, a *cli.Parsed) error {
	if a.Bool("version") {
		return printVersion(false)
	}
	f, err := viewFlags(a)
	if err != nil {
		return err
	}
	return runView(f, "")
}

// runView checks everything that can fail before the terminal is taken
// over, then runs the program until it quits. notice is shown in the
// status bar first (the demo's greeting).
func runView(f tuiFlags, notice string) error {
	if !cli.IsTerminal(os.Stdin) || !cli.IsTerminal(os.Stdout) {
		return usagef("the interactive view needs a terminal; for scripts use mounttop list, holders or umount")
	}
	in, err := inspect.New(f.proc, inspect.WithWorkers(viewWorkers()))
	if err != nil {
		return err
	}
	defer in.Close()
	viewMemory()
	st, err := openState(f.journal, nil, nil)
	switch {
	case err != nil && f.journal != "":
		return stateError(err)
	case err != nil:
		// The default place is not usable: the view still runs, and says
		// so until the first action.
		notice = joinNotice(notice, "no journal: "+termsafe.Message(err.Error()))
		st, _ = openState(noJournal, nil, nil)
	}
	defer st.close()
	u, err := unmount.Default(st.options()...)
	if err != nil {
		return err
	}
	book := st.book
	defer closeUnmounter(u)
	var scanner ui.Scanner = in
	if os.Getenv(envTestPanic) != "" {
		scanner = &panicScanner{Scanner: in}
	}
	engine := ui.Engine{U: u, Book: book}
	model := ui.New(ui.Options{
		Scanner:   scanner,
		Unmounter: engine,
		Leftovers: engine,
		Interval:  f.interval,
		StartPath: f.path,
		Notice:    notice,
	})
	return runProgram(model, func() []string { return present.PendingLines(u.Pending()) })
}

// viewWorkers is how many goroutines the view's scans read processes
// with: half the CPUs (at least 1), so that a background scan leaves a
// CPU to the goroutine that answers keys (issue 12: keys within 100 ms
// while a scan runs). The refresh interval adapts to the scan's cost, so
// a slower scan is not a costlier one.
func viewWorkers() int { return max(runtime.NumCPU()/2, 1) }

// viewMemory keeps the long-running view's heap near what it holds: each
// refresh makes a new snapshot and drops the old one, and with Go's
// default GOGC=100 the heap would grow to twice the live data between
// collections. GOGC=50 and a soft limit of 40 MiB (debug.SetMemoryLimit;
// the GC works harder near it, never fails) keep the resident memory
// under issue 12's 48 MiB; GOGC or GOMEMLIMIT in the environment win.
func viewMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(40 << 20)
	}
}

func joinNotice(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// runProgram runs the bubbletea program. Its own signal handling is off:
// SIGTERM, SIGHUP and SIGINT become a message, so the model can cancel a
// running unmount (rolling a fence back) before it quits, and the
// terminal is restored by the program on the way out. bubbletea restores
// it on a panic too (in Update, View or a command). If a run was still
// going when the view quit, the error says so, with what is still pending
// (calls blocked in the kernel, holders being revoked).
func runProgram(model ui.Model, pending func() []string) error {
	p := tea.NewProgram(model, tea.WithAltScreen(), tea.WithoutSignalHandler())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGHUP, unix.SIGINT)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				p.Send(ui.SignalMsg(s))
			case <-done:
				return
			}
		}
	}()
	final, err := p.Run()
	if err != nil {
		return fmt.Errorf("the interactive view failed: %w", err)
	}
	if m, ok := final.(ui.Model); ok {
		if warn := m.LeftRunning(); warn != "" {
			if left := pending(); len(left) > 0 {
				warn += "; still pending: " + strings.Join(left, "; ")
			}
			return errors.New(warn)
		}
	}
	return nil
}

// envTestPanic makes the view panic on its second scan (the first screen
// is drawn normally): the end-to-end test uses it to prove the terminal is
// restored after a panic. It changes nothing else.
const envTestPanic = "MOUNTTOP_TEST_PANIC"

type panicScanner struct {
	ui.Scanner
	calls atomic.Int32
}

// ScanFocus implements ui.FocusScanner, panicking as Scan does.
func (p *panicScanner) ScanFocus(ctx context.Context, ids ...inspect.MountID) (*inspect.Snapshot, error) {
	if p.calls.Add(1) > 1 {
		panic(envTestPanic + " is set: panicking on purpose")
	}
	return p.Scanner.(ui.FocusScanner).ScanFocus(ctx, ids...)
}

func (p *panicScanner) Scan(ctx context.Context) (*inspect.Snapshot, error) {
	if p.calls.Add(1) > 1 {
		panic(envTestPanic + " is set: panicking on purpose")
	}
	return p.Scanner.Scan(ctx)
}
