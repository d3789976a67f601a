package workload

import (
	"golang.org/x/sys/unix"

	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"mounttop/internal/testns"
)

func TestMain(m *testing.M) {
	RunHolderIfAsked()
	testns.Main(m)
}

// TestPlanTotals: the plans add up to the size's totals, in the stated
// proportions, and each mount has about span*Procs/Mounts holders.
func TestPlanTotals(t *testing.T) {
	for _, s := range Sizes {
		if s.Shape != Uniform || s.Procs < 100 {
			continue // the proportions need many holders
		}
		fds, locks, cwds, maps := 0, map[LockKind]int{}, 0, 0
		for i := 0; i < s.Procs; i++ {
			p := PlanFor(s, i)
			fds += p.FDs()
			locks[p.Lock]++
			if p.Cwd != "" {
				cwds++
			}
			if p.Mmap != "" {
				maps++
			}
		}
		if fds != s.FDs {
			t.Errorf("%s: %d fds in the plans, want %d", s.Name, fds, s.FDs)
		}
		if n := locks[Flock] + locks[POSIX] + locks[OFD]; n != s.Procs/lockEvery || locks[Flock] == 0 || locks[POSIX] == 0 || locks[OFD] == 0 {
			t.Errorf("%s: locks %v", s.Name, locks)
		}
		if cwds != s.Procs/cwdEvery || maps != s.Procs/mmapEvery {
			t.Errorf("%s: %d cwds, %d maps", s.Name, cwds, maps)
		}
		if got, want := len(Expected(s, 0)), span*s.Procs/s.Mounts; got != want {
			t.Errorf("%s: %d holders of mount 0, want %d", s.Name, got, want)
		}
	}
}

// TestShapes: issue 12's shapes add up to their totals and hold what they
// say: the mixed one has sleep, bash and python3 holders (one in 20),
// chroots and locks; the thin one is all sleeps with 5 fds each.
func TestShapes(t *testing.T) {
	for _, s := range Sizes {
		if s.Shape == Uniform {
			continue
		}
		fds, roles, chroots, locks, maps := 0, map[Role]int{}, 0, 0, 0
		for i := 0; i < s.Procs; i++ {
			p := PlanFor(s, i)
			fds += p.FDs()
			roles[p.Role]++
			if p.Chroot != "" {
				chroots++
			}
			if p.Lock != NoLock {
				locks++
			}
			maps += len(p.Maps)
			if p.Role != RoleGo && (p.Mmap != "" || p.Exe || p.Chroot != "") {
				t.Errorf("%s: holder %d (role %d) plans what does not survive its exec: %+v", s.Name, i, p.Role, p)
			}
		}
		if fds != s.FDs {
			t.Errorf("%s: %d fds in the plans, want %d", s.Name, fds, s.FDs)
		}
		switch s.Shape {
		case Mixed:
			if roles[RolePython] != s.Procs/pythonEvery || roles[RoleSleep] == 0 || roles[RoleBash] == 0 || roles[RoleGo] == 0 ||
				chroots == 0 || locks == 0 || maps != roles[RolePython]*mapFiles {
				t.Errorf("%s: roles %v, %d chroots, %d locks, %d python maps", s.Name, roles, chroots, locks, maps)
			}
		case Thin:
			if roles[RoleSleep] != s.Procs || fds != 5*s.Procs {
				t.Errorf("%s: roles %v, %d fds", s.Name, roles, fds)
			}
		}
	}
}

// TestStartClose brings a small workload up in the test's private
// namespace and tears it down: every holder alive while it runs, then all
// killed and reaped, all mounts gone.
func TestStartClose(t *testing.T) {
	for _, s := range []Size{
		{Name: "tiny", Procs: 120, FDs: 1200, Mounts: 4},
		// The thin shape's bare forks (no os/exec, no pidfd).
		{Name: "tiny-thin", Procs: 120, FDs: 600, Mounts: 4, Shape: Thin},
	} {
		t.Run(s.Name, func(t *testing.T) { testStartClose(t, s) })
	}
}

func testStartClose(t *testing.T, s Size) {
	testns.Require(t, testns.Namespace)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	w, err := Start(context.Background(), s, base, exe)
	if w == nil {
		t.Fatal(err)
	}
	if err == nil {
		if n := w.Alive(); n != s.Procs {
			t.Errorf("%d of %d holders alive", n, s.Procs)
		}
		fds, err := os.ReadDir("/proc/" + strconv.Itoa(w.Holders[1].Pid) + "/fd")
		if err != nil || len(fds) < PlanFor(s, 1).FDs() {
			t.Errorf("holder 1 has %d fds (%v), want at least %d", len(fds), err, PlanFor(s, 1).FDs())
		}
	}
	td, cerr := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if cerr != nil || td.Killed != s.Procs || td.Reaped != s.Procs || td.Unmounted != s.Mounts+1 || len(td.Left) > 0 {
		t.Fatalf("%v: %v", td, cerr)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), base) {
		t.Errorf("a mount under %s is left", base)
	}
	for _, c := range w.Holders {
		// Reaped: no child of ours by that pid any more (ECHILD).
		if _, err := unix.Wait4(c.Pid, nil, unix.WNOHANG, nil); err != unix.ECHILD {
			t.Errorf("holder %d was not reaped (wait4: %v)", c.Pid, err)
		}
	}
}
