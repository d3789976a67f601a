package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"mounttop/internal/testns"
)

// TestIteratorAgreesWithProcfs: a scan that reads open files through the
// task_file iterator finds exactly what a scan through procfs finds, use
// for use, in full detail: fds of each access mode, a deleted file, locks,
// a thread's own fd table, a process whose leader exited, a bind mount,
// a copy in another mount namespace; and the mounts' counts agree too.
func TestIteratorAgreesWithProcfs(t *testing.T) {
	testns.Require(t, testns.Namespace)
	dir := testns.Tmpfs(t, "")
	for _, n := range []string{"r", "w", "rw", "gone", "flock", "posix", "ofd", "secret", "data"} {
		writeFile(t, filepath.Join(dir, n))
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	bind := testns.Bind(t, dir)
	var victims []*testns.Victim
	start := func(role string, args ...string) *testns.Victim {
		v := testns.StartVictim(t, role, args...)
		victims = append(victims, v)
		return v
	}
	start(testns.RoleFD, filepath.Join(dir, "r"), "r")
	start(testns.RoleFD, filepath.Join(dir, "w"), "w")
	start(testns.RoleFD, filepath.Join(bind, "rw"), "rw")
	start(testns.RoleFD, filepath.Join(dir, "gone"), "r")
	start(testns.RoleCwd, sub)
	start(testns.RoleMmap, filepath.Join(bind, "r"))
	start(testns.RoleLock, filepath.Join(dir, "flock"), "flock", "w")
	start(testns.RoleLock, filepath.Join(dir, "posix"), "posix", "w")
	start(testns.RoleLock, filepath.Join(dir, "ofd"), "ofd", "r")
	thr := start(testns.RoleRevokeThreadFiles, filepath.Join(dir, "secret"))
	victimInt(t, thr, "fd: ")
	exited := start(testns.RoleRevokeLeaderExit, sub, filepath.Join(dir, "data"))
	victimInt(t, exited, "fd: ")
	foreign := testns.StartVictimInNewNS(t, testns.RoleFD, filepath.Join(dir, "w"), "r")
	victims = append(victims, foreign)
	if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	waitZombieLeader(t, exited.PID)

	procfs := scan(t, WithoutIterator())
	iter := scan(t)
	if procfs.FilesBy != FilesProcfs {
		t.Fatalf("WithoutIterator scanned by %v", procfs.FilesBy)
	}
	if iter.FilesBy != FilesIterator {
		if testns.IsRealRoot() {
			t.Fatalf("root scanned by %v: %v", iter.FilesBy, iter.FilesWhy)
		}
		testns.Require(t, testns.RealRoot) // the iterator needs CAP_BPF: skips, or fails under CI
	}
	for _, path := range []string{dir, bind} {
		a, b := mountAt(t, procfs, path), mountAt(t, iter, path)
		pa, pb := ours(procfs.HoldersOf(a.ID), victims), ours(iter.HoldersOf(b.ID), victims)
		if len(pa) == 0 {
			t.Fatalf("procfs found no holder of %s", path)
		}
		if !reflect.DeepEqual(pa, pb) {
			t.Errorf("holders of %s differ:\nprocfs:   %s\niterator: %s", path, holdersText(pa), holdersText(pb))
		}
	}
	// Not the number of namespaces: other tests' come and go between the
	// two scans. The victim in a namespace of its own must be in both
	// (seen, below).
	seen := false
	for _, n := range procfs.Namespaces {
		for _, m := range iter.Namespaces {
			if n.Inode != m.Inode {
				continue
			}
			// Only the test's victims: the other namespaces here are
			// other tests', whose processes come and go between scans.
			ids := map[int]bool{}
			for id := range n.Holders {
				ids[id] = true
			}
			for id := range m.Holders {
				ids[id] = true
			}
			for id := range ids {
				pa, pb := ours(n.Holders[id], victims), ours(m.Holders[id], victims)
				seen = seen || len(pa) > 0
				if !reflect.DeepEqual(pa, pb) {
					t.Errorf("holders of mount %d in namespace %d differ:\nprocfs:   %s\niterator: %s", id, n.Inode, holdersText(pa), holdersText(pb))
				}
			}
		}
	}
	if !seen {
		t.Errorf("no holder in another namespace: the victim in a new mount namespace was not seen")
	}

	// Counts, as `list` scans.
	pc, ic := scan(t, WithoutIterator(), WithDetail(DetailCounts)), scan(t, WithDetail(DetailCounts))
	for _, path := range []string{dir, bind} {
		a, b := mountAt(t, pc, path), mountAt(t, ic, path)
		if pa, pb := ours(pc.HoldersOf(a.ID), victims), ours(ic.HoldersOf(b.ID), victims); !reflect.DeepEqual(pa, pb) {
			t.Errorf("counts of %s differ:\nprocfs:   %s\niterator: %s", path, holdersText(pa), holdersText(pb))
		}
	}
}

func waitZombieLeader(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader of %d not a zombie: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ours keeps the test's victims among hs, uses sorted, in pid order, and
// of each holder only its pid, name and uses: what the two ways of
// reading open files find. Its state, threads and the like are read the
// same way by both scans, and a running victim's state may change
// between them (R, S).
func ours(hs []Holder, victims []*testns.Victim) []Holder {
	want := map[int]bool{}
	for _, v := range victims {
		want[v.PID] = true
	}
	var out []Holder
	for _, h := range hs {
		if !want[h.PID] {
			continue
		}
		h = Holder{PID: h.PID, Comm: h.Comm, Uses: append([]Use(nil), h.Uses...)}
		sort.Slice(h.Uses, func(i, j int) bool {
			a, b := h.Uses[i], h.Uses[j]
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			if a.TID != b.TID {
				return a.TID < b.TID
			}
			return a.FD < b.FD
		})
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

func holdersText(hs []Holder) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "\n  pid %d (%s): %+v", h.PID, h.Comm, h.Uses)
	}
	return b.String()
}
