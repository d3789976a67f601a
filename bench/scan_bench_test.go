// Package bench holds Go benchmarks of mounttop's scanner on the workload
// of package workload, for profiling:
//
//	sudo go test ./bench -run '^$' -bench Scan -benchtime 20x -cpuprofile cpu.out
//	go tool pprof -top bench.test cpu.out
//
// The benchmark binary re-executes itself into a private mount namespace
// (testns.Main) and again as the workload's holders (RunHolderIfAsked).
// bench/run.sh times the real command line against fuser and lsof.
package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/bench/workload"
	"mounttop/inspect"
	"mounttop/internal/testns"
)

func TestMain(m *testing.M) {
	workload.RunHolderIfAsked()
	testns.Main(m)
}

// startWorkload brings up size s for one benchmark and tears it down after.
func startWorkload(b *testing.B, s workload.Size) *workload.Workload {
	b.Helper()
	testns.Require(b, testns.Namespace)
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	base, err := os.MkdirTemp("", "mounttop-bench.")
	if err != nil {
		b.Fatal(err)
	}
	w, err := workload.Start(context.Background(), s, base, exe)
	b.Cleanup(func() {
		if w != nil {
			td, err := w.Close()
			if err != nil {
				b.Errorf("%v: %v", td, err)
			}
		}
		os.Remove(base)
	})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// BenchmarkScan times one whole-system scan as `mounttop list` makes it
// (counts for every mount) and as `mounttop holders` makes it (full detail
// for the measured mount), without process start-up or JSON.
func BenchmarkScan(b *testing.B) {
	for _, s := range workload.Sizes {
		b.Run(s.Name, func(b *testing.B) {
			w := startWorkload(b, s)
			table, err := mustInspector(b).Mounts(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			target, ok := table.MountAt(w.Layout.Mount(0))
			if !ok {
				b.Fatalf("%s is not in the mount table", w.Layout.Mount(0))
			}
			want := expectedPIDs(w)
			for _, c := range []struct {
				name string
				opt  inspect.Option
			}{{"list", inspect.WithDetail(inspect.DetailCounts)}, {"holders", inspect.WithFocus(target.ID)}} {
				b.Run(c.name, func(b *testing.B) {
					in := mustInspector(b, c.opt)
					b.ReportAllocs()
					cpu0 := cpuTime()
					for b.Loop() {
						snap, err := in.Scan(context.Background())
						if err != nil {
							b.Fatal(err)
						}
						checkHolders(b, want, snap, target.ID)
					}
					// CPU per scan says more than wall time on a
					// shared machine: others' load stretches the
					// latter far more.
					b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
					b.ReportMetric(float64(s.FDs)*float64(b.N)/b.Elapsed().Seconds(), "fds/s")
				})
			}
		})
	}
}

// expectedPIDs is the set of holder pids the workload's plan puts on mount
// 0, computed once: planning is not what is being measured.
func expectedPIDs(w *workload.Workload) map[int]bool {
	want := map[int]bool{}
	for _, i := range workload.Expected(w.Size, 0) {
		want[w.Holders[i].Pid] = true
	}
	return want
}

// checkHolders fails the benchmark unless the scan found exactly the
// holders the workload's plan puts on mount 0.
func checkHolders(b *testing.B, want map[int]bool, snap *inspect.Snapshot, id inspect.MountID) {
	got := snap.HoldersOf(id)
	ok := len(got) == len(want)
	for _, h := range got {
		ok = ok && want[h.PID]
	}
	if !ok {
		var missing []int
		seen := map[int]bool{}
		for _, h := range got {
			seen[h.PID] = true
		}
		for pid := range want {
			if !seen[pid] {
				missing = append(missing, pid)
			}
		}
		b.Fatalf("%d holders of mount 0, want %d; missing pids %v; warnings: %v", len(got), len(want), missing, snap.Warnings)
	}
}

// cpuTime is this process's user + system time so far (getrusage(2)):
// scans, plus what little else the benchmark does.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustInspector(b *testing.B, opts ...inspect.Option) *inspect.Inspector {
	b.Helper()
	in, err := inspect.New("/proc", opts...)
	if err != nil {
		b.Fatal(err)
	}
	return in
}
