//go:build linux && amd64

package revoke

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// testProc is the machine's /proc, for the tests that look at real
// victims.
var testProc = procFS(defaultProcRoot)

// writeTree writes files (path relative to root -> text) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProcRootFixture: the tracer reads a process in the proc root it is
// given (ProcRoot), not in /proc: a fixture tree answers for pid 42, whose
// leader 42 and thread 43 are listed, a mapped file's name keeps its two
// spaces and its tab, and an fd's flags and mount come from its fdinfo.
func TestProcRootFixture(t *testing.T) {
	root := t.TempDir()
	spaced := "/mnt/data/a  b\tc"
	writeTree(t, root, map[string]string{
		"42/status":         statusText("victim", 'S', 42, 0, 0),
		"42/stat":           "42 (vic tim) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 2 0 12345 1000 200 18446744073709551615\n",
		"42/task/42/status": statusText("victim", 'S', 42, 0, 0),
		"42/task/43/status": statusText("victim", 'D', 42, 7, 2),
		"42/task/43/maps": mapsText([]mapping{
			{start: 0x7f0000000000, end: 0x7f0000001000, perms: "r--s", inode: 12, path: spaced},
			{start: 0x7f0000001000, end: 0x7f0000002000, perms: "rw-p", inode: 0},
			{start: 0x7ffd00000000, end: 0x7ffd00002000, perms: "r-xp", inode: 0, path: "[vdso]"},
		}),
		"42/task/43/fdinfo/5": "pos:\t0\nflags:\t02100002\nmnt_id:\t77\nino:\t12\n",
		"42/task/43/wchan":    "request_wait_answer",
	})
	p := procFS(root)
	maps, err := p.taskMaps(42, 43)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 3 || maps[0].path != spaced || maps[0].inode != 12 || maps[0].perms != "r--s" || maps[2].path != "[vdso]" {
		t.Fatalf("maps read back as %+v", maps)
	}
	if ok, vmas := coverage(maps, Range{0x7f0000000000, 0x7f0000001000}); !ok || len(vmas) != 1 {
		t.Errorf("the spaced file's mapping is not covered: %v %+v", ok, vmas)
	}
	fi, err := p.fdInfo(42, 43, 5)
	if err != nil || fi.Flags != 0o2100002 || fi.Flags&unix.O_CLOEXEC == 0 || fi.MntID != 77 {
		t.Errorf("fdinfo read back as %+v (%v)", fi, err)
	}
	if _, err := p.fdInfo(42, 43, 6); err == nil {
		t.Error("fd 6 is not in the tree, yet reads as open")
	}
	if start, err := p.startTime(42); err != nil || start != 12345 {
		t.Errorf("start time %d (%v), want 12345", start, err)
	}
	if st, err := p.threadStatus(42, 43); err != nil || st.state != 'D' || st.tracerPid != 7 || st.seccomp != 2 || st.tgid != 42 {
		t.Errorf("thread status %+v (%v)", st, err)
	}
	if tids, err := p.threads(42); err != nil || !slices.Equal(tids, []int{42, 43}) {
		t.Errorf("threads %v (%v), want [42 43]", tids, err)
	}
	if w := p.wchan(42, 43); w != "request_wait_answer" {
		t.Errorf("wchan %q", w)
	}
	if _, err := p.processStatus(4242); err == nil {
		t.Error("pid 4242 is not in the tree, yet has a status")
	}
}

// TestRevokeMmapSpacedName: a mapping of a file whose name holds two
// spaces and a tab is found under its exact name in /proc/PID/maps (the
// kernel writes it as it is) and is revoked, checked against the mount.
func TestRevokeMmapSpacedName(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	file := filepath.Join(dir, "a  b\tc")
	if err := os.WriteFile(file, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHolder(t, testns.RoleRevokeMmapTouch, file)
	maps, err := testProc.taskMaps(h.pid, h.pid)
	if err != nil {
		t.Fatal(err)
	}
	var ranges []Range
	for _, m := range maps {
		if m.path == file {
			ranges = append(ranges, Range{m.start, m.end})
		}
	}
	if len(ranges) == 0 {
		t.Fatalf("no mapping named %q in %+v", file, maps)
	}
	id, _, err := mountOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep := revoke(t, newRevoker(t), h.pid, Targets{Maps: ranges, Mounts: []uint64{id}})
	if !slices.Equal(rep.Unmapped, ranges) {
		t.Errorf("unmapped %v, want %v", rep.Unmapped, ranges)
	}
	h.v.WaitLine(t, "fault", 5*time.Second)
	h.requireAlive(t)
	if left := mapsOn(t, h.pid, dir); len(left) > 0 {
		t.Errorf("still mapped: %v", left)
	}
}
