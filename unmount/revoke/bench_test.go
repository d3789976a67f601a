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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// BenchmarkRevoke revokes holder processes one after another, the way the
// staged engine's revoke stage does: each holder is a sleep(1) (blocked in
// clock_nanosleep, so every revoke also exercises the restart_syscall
// fix-up) holding three fds on a tmpfs. One op is one holder: seize, stop,
// three injected close(2)s, restore, detach. Holders are started in
// batches of holdersPerBatch with the timer stopped; the metric is holder
// processes revoked per second.
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

	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		n := min(holdersPerBatch, b.N-done)
		holders := startSleepers(b, sleep, files, n)
		b.StartTimer()
		for _, cmd := range holders {
			rep, err := r.Revoke(ctx, cmd.Process.Pid, Targets{FDs: want})
			if err != nil || !slices.Equal(rep.Closed, want) {
				b.Fatalf("revoking %d: %v, %+v", cmd.Process.Pid, err, rep)
			}
		}
		b.StopTimer()
		stopSleepers(holders)
		done += n
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "holders/s")
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
