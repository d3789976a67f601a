// Command workload is mounttop's benchmark: it builds a busy machine (see
// package mounttop/bench/workload) inside a private mount namespace and
// times `mounttop list --json`, `mounttop holders --json MOUNT`,
// `fuser -m MOUNT` and `lsof +f -- MOUNT` on it, alternating the tools
// within one run, then tears everything down and checks that it did.
//
//	workload -size small,large -reps 7 -mounttop ./mounttop -out results.json
//	workload -size small -exec 'perf record -g -- ./mounttop list --json >/dev/null'
//	workload -table results.json        # the one table of a run's results
//
// It must run as root: it mounts tmpfs (only ever inside the namespace it
// makes, which dies with it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"mounttop/bench/workload"
)

func init() {
	// Holders are started with Pdeathsig, which fires when the *thread*
	// that forked them exits: keep main on the main thread, which lives
	// as long as the process.
	runtime.LockOSThread()
}

// envBase marks the re-executed process inside the namespace and names the
// directory its mounts go on (made and removed by the outer process).
const envBase = "MOUNTTOP_BENCH_BASE"

type options struct {
	sizes    []workload.Size
	reps     int
	warmup   int
	mounttop string
	floor    string
	fuser    string
	lsof     string
	time     string
	out      string
	exec     string
	timeout  time.Duration
	view     map[string]bool // sizes at which the view's idle cost is measured
	viewIdle time.Duration
	viewKeys int
	viewOnly bool
}

func main() {
	workload.RunHolderIfAsked()
	if len(os.Args) == 3 && os.Args[1] == "-table" {
		// workload -table RESULTS.json: the one table of a run.
		if err := printTable(os.Stdout, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(2)
	}
	if base := os.Getenv(envBase); base != "" {
		os.Exit(inside(opts, base))
	}
	os.Exit(outside())
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	var o options
	sizes := fs.String("size", "small,large", "workload sizes to run, comma-separated: small, large (issue 2: 500 procs/50k fds/20 mounts; 2000/200k/50), "+
		"mixed-half, mixed, fat-half, fat, thin-half, thin (issue 12's shapes at half and full size: see package workload)")
	fs.IntVar(&o.reps, "reps", 7, "measured repetitions per tool (tools alternate within each)")
	fs.IntVar(&o.warmup, "warmup", 1, "unrecorded rounds before measuring")
	fs.StringVar(&o.mounttop, "mounttop", "mounttop", "the mounttop binary to time")
	fs.StringVar(&o.floor, "floor", "floor", "the floor scanner (bench/cmd/floor)")
	fs.StringVar(&o.fuser, "fuser", "fuser", "fuser (psmisc)")
	fs.StringVar(&o.lsof, "lsof", "lsof", "lsof")
	fs.StringVar(&o.time, "time", "/usr/bin/time", "GNU time, for each tool's own peak RSS (%M)")
	fs.StringVar(&o.out, "out", "", "write every sample and the summary as JSON to this file (one object per size, appended)")
	fs.StringVar(&o.exec, "exec", "", "instead of measuring, run this sh command inside the namespace with the workload up "+
		"($WORKLOAD_TARGET: the measured mount, $WORKLOAD_BASE: where the mounts are)")
	view := fs.String("view", "", "sizes at which to measure the interactive view idling on the measured mount (tmux), comma-separated")
	fs.DurationVar(&o.viewIdle, "view-idle", time.Minute, "how long the view idles while its CPU is measured")
	fs.BoolVar(&o.viewOnly, "view-only", false, "measure only the view (at every size given), not the scan commands")
	fs.IntVar(&o.viewKeys, "view-keys", 5, "key presses (each opening and closing help) timed while the view is busy")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one tool run after this long")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, n := range strings.Split(*sizes, ",") {
		s, ok := workload.SizeByName(strings.TrimSpace(n))
		if !ok {
			var names []string
			for _, s := range workload.Sizes {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("unknown size %q (%s)", n, strings.Join(names, ", "))
		}
		o.sizes = append(o.sizes, s)
	}
	o.view = map[string]bool{}
	for _, n := range strings.Split(*view, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.view[n] = true
		}
	}
	if o.reps < 1 {
		return nil, errors.New("-reps must be at least 1")
	}
	if o.exec == "" {
		for _, p := range []*string{&o.mounttop, &o.floor, &o.fuser, &o.lsof, &o.time} {
			found, err := exec.LookPath(*p)
			if err != nil {
				return nil, err
			}
			// Tools run with their cwd at / (so none holds a mount).
			if *p, err = filepath.Abs(found); err != nil {
				return nil, err
			}
		}
	}
	return &o, nil
}

// outside makes the directory the mounts go on, runs the benchmark in a new
// private mount namespace, and removes the directory afterwards. Nothing
// is ever mounted out here.
func outside() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "workload: must run as root (it mounts tmpfs inside a private mount namespace)")
		return 2
	}
	base, err := os.MkdirTemp("", "mounttop-bench.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		return 1
	}
	defer os.Remove(base)
	code, err := workload.Enter(os.Args[1:], []string{envBase + "=" + base})
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		return 1
	}
	return code
}

// inside runs in the private namespaces (pid 1 of its own pid namespace,
// with its own /proc): each size in turn is built,
// measured (or handed to -exec) and torn down.
func inside(o *options, base string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		return 1
	}
	if err := workload.MountProc(); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		return 1
	}
	code := 0
	for _, s := range o.sizes {
		if ctx.Err() != nil {
			return 1
		}
		fmt.Printf("\n## %s\n\n", s)
		w, err := workload.Start(ctx, s, base, exe)
		if err == nil {
			fmt.Printf("workload up in %v: %d holders, %d processes on the machine\n", w.Setup.Round(time.Millisecond), len(w.Holders), countProcesses())
			if o.exec != "" {
				err = runExec(ctx, o.exec, w)
			} else {
				err = measure(ctx, o, w)
			}
		}
		if w != nil {
			td, cerr := w.Close()
			fmt.Println(td)
			err = errors.Join(err, cerr)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "workload %s: %v\n", s.Name, err)
			code = 1
		}
	}
	return code
}

func runExec(ctx context.Context, command string, w *workload.Workload) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "WORKLOAD_TARGET="+w.Layout.Mount(0), "WORKLOAD_BASE="+w.Layout.Base)
	return cmd.Run()
}

func countProcesses() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if c := e.Name()[0]; c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}
