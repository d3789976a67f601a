package unmount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// The signal policy holds each holder by a pidfd opened once and checked
// against the start time the scan read (issue 9.2): once the holder exits
// and its pid goes to another process, a signal through the pidfd gives
// ESRCH and the new process is not hit; opening the pid again with the old
// start time is refused (ErrHolderGone).
func TestOpenProcessPidReused(t *testing.T) {
	if !testns.InNewPIDNamespace(t) {
		return
	}
	sys := realSystem(t)
	h := startHolder(t, testns.RoleSleep)
	scanned, err := processStartTicks(h.pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.OpenProcess(h.pid, scanned+1); !errors.Is(err, ErrHolderGone) {
		t.Errorf("OpenProcess with another start time: %v, want ErrHolderGone", err)
	}
	proc, err := sys.OpenProcess(h.pid, scanned)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()

	if err := unix.Kill(h.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.v.Wait(10 * time.Second); !ok {
		t.Fatal("the holder did not exit")
	}
	v2, pid2 := testns.StartTraceeAt(t, h.pid, testns.RoleSleep)
	if err := proc.Signal(unix.SIGTERM); !errors.Is(err, unix.ESRCH) {
		t.Errorf("signal through the old pidfd: %v, want ESRCH", err)
	}
	if _, err := sys.OpenProcess(pid2, scanned); !errors.Is(err, ErrHolderGone) {
		t.Errorf("OpenProcess of the reused pid with the scanned start time: %v, want ErrHolderGone", err)
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(pid2) {
		t.Fatalf("the process that got the pid was hit; it said %q", v2.Seen())
	}
}

// An fd flipped to an unrelated file between the scan and the injection,
// with a submount present (issue 9.2): the revoker checks every use against
// every mount the run targets (the target and its submounts, by unique
// ID) once the holder is stopped, leaves the flipped fd alone and says so;
// the uses on the target and on the submount are revoked.
func TestStagedFlippedFD(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("mounttop-sub", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, sub)
	other := filepath.Join(testns.Tmpfs(t, ""), "unrelated")
	writeFile(t, other, "unrelated")
	writeFile(t, filepath.Join(sub, "f"), "on the submount")

	flip := startHolder(t, testns.RoleRevokeFlip, filepath.Join(sub, "f"), other)
	line := flip.v.WaitLine(t, "fd: ", 5*time.Second)
	fd := strings.TrimPrefix(line, "fd: ")
	reader := startHolder(t, testns.RoleFifoRead, mkfifo(t, sub))

	// The flip happens after the run's scan, right before the revoke.
	var flipped bool
	sys := &revokeHook{System: realSystem(t), hook: func(pid int) {
		if pid != flip.pid || flipped {
			return
		}
		flipped = true
		if err := unix.Kill(flip.pid, unix.SIGUSR1); err != nil {
			t.Error(err)
		}
		flip.v.WaitLine(t, "flipped", 5*time.Second)
	}}
	evs := staged(t, New(sys), dir, Plan{Policy: PolicyClose, Recursive: true})
	requireGone(t, evs, dir)
	if !flipped {
		t.Fatal("the flip holder was never revoked")
	}
	if l, err := os.Readlink("/proc/" + itoa(flip.pid) + "/fd/" + fd); err != nil || l != other {
		t.Errorf("the flipped fd %s now reads %q (%v), want it left on %s", fd, l, err, other)
	}
	said := false
	for _, ev := range evs {
		if ev.PID == flip.pid && strings.Contains(EventWords(ev), "fd "+fd+": now on mount") && strings.Contains(EventWords(ev), "left alone") {
			said = true
		}
	}
	if !said {
		t.Errorf("no event says fd %s of pid %d was left alone", fd, flip.pid)
	}
	reader.v.WaitLine(t, "read: EBADF", 5*time.Second)
	if !alive(flip.pid) || !alive(reader.pid) {
		t.Fatal("a holder died")
	}
}

// revokeHook is the real System with a hook run right before each Revoke.
type revokeHook struct {
	System
	hook func(pid int)
}

func (r *revokeHook) Revoke(ctx context.Context, pid int, t RevokeTargets) (Revoked, error) {
	r.hook(pid)
	return r.System.Revoke(ctx, pid, t)
}

// No fd number reuse (issue 9.3): a process logs to a file on the target
// while it opens, writes and closes record files elsewhere. After the
// staged run (PolicyClose) its log fd is a placeholder: the writes to it
// fail with EBADF, the number stays taken, so no record file ever gets it
// and no log line lands in a record. Under PolicyClosePlain the number is
// free again, which the control shows: the next record gets it and the log
// lines go there, the attack of the issue.
func TestStagedNoFDReuse(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		reused bool
	}{{PolicyClose, false}, {PolicyClosePlain, true}} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			dir := testns.Tmpfs(t, "")
			records := testns.Tmpfs(t, "")
			h := startHolder(t, testns.RoleRevokeLogger, filepath.Join(dir, "log"), records)
			fd := strings.TrimPrefix(h.v.WaitLine(t, "log fd: ", 5*time.Second), "log fd: ")
			evs := staged(t, realUnmounter(t), dir, Plan{Policy: tc.policy})
			requireGone(t, evs, dir)
			if !tc.reused {
				if line := h.v.WaitLine(t, "log write:", 5*time.Second); line != "log write: EBADF" {
					t.Errorf("%q, want log write: EBADF", line)
				}
				h.v.WaitLine(t, "done", 10*time.Second) // 50 records after that
			}
			var mixed []string
			var ents []os.DirEntry
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var err error
				if ents, err = os.ReadDir(records); err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					b, err := os.ReadFile(filepath.Join(records, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(string(b), "LOG line") {
						mixed = append(mixed, e.Name())
					}
				}
				if len(mixed) > 0 || !tc.reused || time.Now().After(deadline) {
					break
				}
			}
			if reused := len(mixed) > 0; reused != tc.reused {
				t.Errorf("%d of %d records hold log lines (%v), want reuse %v", len(mixed), len(ents), mixed, tc.reused)
			}
			if _, err := os.Readlink("/proc/" + itoa(h.pid) + "/fd/" + fd); !tc.reused && err != nil {
				t.Errorf("fd %s is free after the run (%v), want its placeholder", fd, err)
			}
			if !alive(h.pid) {
				t.Fatal("the logger died")
			}
		})
	}
}
