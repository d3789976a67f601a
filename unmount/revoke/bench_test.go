//go:build linux && amd64

package revoke

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// BenchmarkRevoke revokes holder processes the way the staged engine's
// revoke round does: up to DefaultWorkers at once, each on a tracer thread
// of its own. Each holder is a sleep(1) (blocked in clock_nanosleep, so
// every revoke also exercises the restart_syscall fix-up) holding three
// fds on a tmpfs. One op is one holder: seize, stop, three injected
// close(2)s, restore, detach. Holders are started in batches of
// holdersPerBatch with the timer stopped; the metrics are holder processes
// revoked per second and the CPU this process (the tracer) spent per
// holder, from getrusage(2) around each batch's revokes.
func BenchmarkRevoke(b *testing.B) {
	const holdersPerBatch = 200
	sleep := testns.RequireTool(b, "sleep")
	dir := testns.Tmpfs(b, "")
	var files []*os.File
	for i := 0; i < 3; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("held%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	r := New()
	defer r.Close()
	want := []int{3, 4, 5}
	ctx := context.Background()
	var cpu time.Duration

	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		n := min(holdersPerBatch, b.N-done)
		holders := startSleepers(b, sleep, files, n)
		before := cpuTime()
		b.StartTimer()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, DefaultWorkers)
		for _, cmd := range holders {
			wg.Add(1)
			sem <- struct{}{}
			go func(pid int) {
				defer func() { <-sem; wg.Done() }()
				rep, err := r.Revoke(ctx, pid, Targets{FDs: want})
				if err != nil || !slices.Equal(rep.Closed, want) {
					errs <- fmt.Errorf("revoking %d: %v, %+v", pid, err, rep)
				}
			}(cmd.Process.Pid)
		}
		wg.Wait()
		b.StopTimer()
		cpu += cpuTime() - before
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		stopSleepers(holders)
		done += n
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "holders/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/holder")
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startSleepers starts n sleep processes holding files as fds 3, 4, 5 and
// waits until each sits in clock_nanosleep. They are not Waited for until
// stopSleepers: a waiter in this process would take the tracer's stops (see
// testns.RoleRevokeHolder).
func startSleepers(b *testing.B, sleep string, files []*os.File, n int) []*exec.Cmd {
	cmds := make([]*exec.Cmd, 0, n)
	for i := 0; i < n; i++ {
		cmd := exec.Command(sleep, "1000")
		cmd.ExtraFiles = files
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
		if err := cmd.Start(); err != nil {
			stopSleepers(cmds)
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	deadline := time.Now().Add(10 * time.Second)
	prefix := fmt.Sprintf("%d ", unix.SYS_CLOCK_NANOSLEEP)
	for _, cmd := range cmds {
		for {
			sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", cmd.Process.Pid))
			if strings.HasPrefix(string(sc), prefix) {
				break
			}
			if time.Now().After(deadline) {
				stopSleepers(cmds)
				b.Fatalf("sleep %d never reached clock_nanosleep: %q", cmd.Process.Pid, sc)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return cmds
}

func stopSleepers(cmds []*exec.Cmd) {
	for _, cmd := range cmds {
		_ = cmd.Process.Kill()
	}
	for _, cmd := range cmds {
		_ = cmd.Wait()
	}
}
