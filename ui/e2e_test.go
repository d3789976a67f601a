package ui

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// The end-to-end tests run the real mounttop binary in a real terminal:
// a tmux server of their own (private socket) inside the test's private
// mount namespace, with real mounts and real victim processes. Keys go in
// with send-keys; the screen comes back with capture-pane.

// buildMounttop builds cmd/mounttop into a temporary directory.
func buildMounttop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mounttop")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "mounttop/cmd/mounttop")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// terminal is one tmux session on a private server.
type terminal struct {
	t    *testing.T
	tmux string
	sock string
}

// newTerminal starts a private tmux server with one w×h session running
// command (through sh), which stays on screen after it exits. CI is unset
// for the program: termenv turns colour off under CI, and this is a real
// terminal.
func newTerminal(t *testing.T, w, h int, command string) *terminal {
	t.Helper()
	tmux := testns.RequireTool(t, "tmux")
	term := &terminal{t: t, tmux: tmux, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", term.sock, "kill-server").Run() })
	term.run("-f", "/dev/null", "new-session", "-d", "-s", "e2e", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h),
		"env -u CI TERM=xterm-256color "+command+"; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '; echo; sleep 600")
	term.run("set-option", "-g", "remain-on-exit", "on")
	return term
}

func (term *terminal) run(args ...string) string {
	term.t.Helper()
	out, err := exec.Command(term.tmux, append([]string{"-S", term.sock}, args...)...).CombinedOutput()
	if err != nil {
		term.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// keys sends tmux key names ("l", "Enter", "Escape").
func (term *terminal) keys(keys ...string) {
	term.run(append([]string{"send-keys", "-t", "e2e"}, keys...)...)
}

// typeText sends literal text.
func (term *terminal) typeText(s string) { term.run("send-keys", "-t", "e2e", "-l", s) }

func (term *terminal) screen() string { return term.run("capture-pane", "-p", "-t", "e2e") }

// waitFor polls the screen until every part shows, and returns it.
func (term *terminal) waitFor(timeout time.Duration, parts ...string) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := term.screen()
		missing := ""
		for _, p := range parts {
			if !strings.Contains(scr, p) {
				missing = p
				break
			}
		}
		if missing == "" {
			return scr
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("screen lacks %q after %v:\n%s", missing, timeout, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// altScreen reports whether the program's alternate screen is on.
func (term *terminal) altScreen() bool {
	return strings.TrimSpace(term.run("display-message", "-p", "-t", "e2e", "#{alternate_on}")) == "1"
}

// programPID is the pid of the program sh runs in the pane (sh's child).
func (term *terminal) programPID() int {
	term.t.Helper()
	shell, err := strconv.Atoi(strings.TrimSpace(term.run("display-message", "-p", "-t", "e2e", "#{pane_pid}")))
	if err != nil {
		term.t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", shell, shell))
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	term.t.Fatal("no program under the pane's shell")
	return 0
}

// mountTmpfs mounts a tmpfs on a new directory named name, under a short
// directory of its own (so paths fit on the screen uncut), in the test's
// private mount namespace.
func mountTmpfs(t *testing.T, name string) string {
	t.Helper()
	testns.Require(t, testns.Namespace)
	base, err := os.MkdirTemp("", "mte2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) }) // runs after the unmount below
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("e2e-"+name, dir, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	testns.CleanupMount(t, dir)
	return dir
}

// The operator's path: open on a busy mount, lazily unmount it, then find
// a second one with the filter and unmount it with the staged unmount,
// reading each result from the screen; then quit, leaving a sane terminal.
func TestEndToEndLazyAndStagedInTmux(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)

	lazy := mountTmpfs(t, "lazytarget")
	staged := mountTmpfs(t, "stagedtarget")
	for _, f := range []string{lazy + "/data", staged + "/data", staged + "/map"} {
		if err := os.WriteFile(f, []byte("e2e\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(staged+"/queue", 0o644); err != nil {
		t.Fatal(err)
	}
	lazyHolder := testns.StartVictim(t, testns.RoleFD, lazy+"/data", "r")
	reader := testns.StartVictim(t, testns.RoleFifoRead, staged+"/queue")
	shell := testns.StartVictim(t, testns.RoleCwd, staged)
	mapper := testns.StartVictim(t, testns.RoleMmapTouch, staged+"/map")

	term := newTerminal(t, 100, 30, bin+" --interval 500ms --journal - "+lazy)
	scr := term.waitFor(30*time.Second, "Holders of "+lazy+" (1 process)", strconv.Itoa(lazyHolder.PID))
	if !term.altScreen() {
		t.Fatalf("the view is not on the alternate screen:\n%s", scr)
	}

	// Lazy: the dialog says the holder is not touched; y detaches.
	term.keys("l")
	term.waitFor(30*time.Second, "Lazy unmount of "+lazy+"?", "NOT touched", fmt.Sprintf("pid %d", lazyHolder.PID), "[ No ]")
	term.keys("y")
	term.waitFor(30*time.Second, "Result: ✓", "lazy unmount of "+lazy+": gone")
	if testns.IsMountPoint(lazy) {
		t.Fatal("the lazy unmount left the mount in the table")
	}
	if !lazyHolder.Alive() {
		t.Fatal("the lazy unmount killed its holder")
	}
	term.keys("Escape")                // close the finished run's pane
	time.Sleep(100 * time.Millisecond) // Escape and "/" in one read would be alt+/

	// Staged: find the mount with the filter, then F, y.
	term.keys("/")
	term.typeText("stagedtarget")
	term.keys("Enter")
	term.waitFor(30*time.Second, "Holders of "+staged+" (3 processes)")
	term.keys("F")
	term.waitFor(30*time.Second, "Staged unmount (close) of "+staged+"?", "1. Fence", fmt.Sprintf("pid %d", reader.PID))
	term.keys("y")
	scr = term.waitFor(60*time.Second, "Result: ✓")
	for _, want := range []string{"revoked", "staged unmount (close) of " + staged + ": gone"} {
		if !strings.Contains(scr, want) {
			t.Errorf("the staged result lacks %q:\n%s", want, scr)
		}
	}
	if testns.IsMountPoint(staged) {
		t.Fatal("the staged unmount left the mount in the table")
	}
	for _, v := range []*testns.Victim{reader, shell, mapper} {
		if !v.Alive() {
			t.Errorf("the close policy killed pid %d", v.PID)
		}
	}
	reader.WaitLine(t, "read:", 10*time.Second)

	// Quit: the terminal is back to normal (main screen, canonical, echo).
	term.keys("q")
	scr = term.waitFor(30*time.Second, "EXIT=0", "icanon echo")
	if term.altScreen() {
		t.Fatalf("still on the alternate screen after quitting:\n%s", scr)
	}
}

// SIGTERM and SIGHUP quit cleanly and restore the terminal; so does a
// panic.
func TestEndToEndTerminalRestoredOnSignalsAndPanic(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "signals")
	cases := []struct {
		name, env, exit string
		sig             unix.Signal
	}{
		{"SIGTERM", "", "EXIT=0", unix.SIGTERM},
		{"SIGHUP", "", "EXIT=0", unix.SIGHUP},
		{"panic", "MOUNTTOP_TEST_PANIC=1 ", "EXIT=1", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			term := newTerminal(t, 80, 24, c.env+bin+" --interval 300ms --journal - "+dir)
			if c.sig != 0 {
				term.waitFor(30*time.Second, "Holders of "+dir)
				pid := term.programPID()
				if err := unix.Kill(pid, c.sig); err != nil {
					t.Fatal(err)
				}
			}
			// The panic comes with the second scan, which a slow first
			// scan (a loaded machine) puts up to maxRefresh later.
			scr := term.waitFor(30*time.Second+maxRefresh, c.exit, "icanon echo")
			if c.sig == 0 && !strings.Contains(scr, "panic") {
				t.Fatalf("no word of the panic:\n%s", scr)
			}
			if strings.Contains(scr, "-icanon") || strings.Contains(scr, "-echo") {
				t.Fatalf("terminal left raw:\n%s", scr)
			}
			if term.altScreen() {
				t.Fatalf("still on the alternate screen:\n%s", scr)
			}
		})
	}
}

// descendants lists the processes below pid (children, their children...).
func descendants(pid int) []int {
	kids := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command (which may hold spaces) start after
		// the last ')'; the second of them is the ppid.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			kids[pp] = append(kids[pp], p)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, k := range kids[p] {
			out = append(out, k)
			walk(k)
		}
	}
	walk(pid)
	return out
}

// startTime is field 22 of /proc/PID/stat: with the pid, it names one
// process for good.
func startTime(stat string) string {
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) > 19 {
		return f[19]
	}
	return ""
}

// mounttop demo: busy demo mounts with holders of every kind, a real
// expire two-step on the idle mount, a staged unmount of a busy one, and
// nothing left when it quits.
func TestEndToEndDemo(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	term := newTerminal(t, 100, 30, bin+" demo --interval 500ms")
	start := time.Now()
	// A first scan cut short on a loaded machine is followed by the next
	// up to maxRefresh later (the refresh adapts to the scan's cost).
	term.waitFor(30*time.Second+maxRefresh, "Holders of /mnt/projects", "demo-reader", "demo-shell")
	t.Logf("first screen with holders after %v", time.Since(start).Round(time.Millisecond))
	procs := descendants(term.programPID())
	if len(procs) < 7 { // the demo inside its namespace and its six holders
		t.Fatalf("the demo runs %d processes, want the demo and 6 holders: %v", len(procs), procs)
	}
	started := map[int]string{}
	for _, p := range procs {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		started[p] = startTime(string(b))
	}
	// The sandbox has a mount namespace of its own.
	sandboxNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", procs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if own, _ := os.Readlink("/proc/self/ns/mnt"); own == sandboxNS {
		t.Fatalf("the demo runs in the test's own mount namespace %s", own)
	}
	show := func(filter string, want ...string) {
		t.Helper()
		// Escape and the next key in one write would read as alt+key.
		term.keys("Escape")
		time.Sleep(100 * time.Millisecond)
		term.keys("/")
		term.typeText("/mnt/" + filter)
		term.keys("Enter")
		term.waitFor(30*time.Second, append([]string{"Holders of /mnt/" + filter}, want...)...)
	}
	show("media", "demo-player", "mmap")
	show("db", "demo-dbserver", "lock FLOCK WRITE")
	// The idle mount, expired in two steps: marked, then unmounted.
	show("scratch", "Nobody holds /mnt/scratch")
	term.keys("e")
	term.waitFor(30*time.Second, "Expire /mnt/scratch?", "(w) When idle")
	term.keys("y")
	term.waitFor(30*time.Second, "Result: • /mnt/scratch is marked for expiry", "armed ")
	term.keys("Escape")
	time.Sleep(100 * time.Millisecond)
	term.keys("e")
	term.waitFor(30*time.Second, "Expire /mnt/scratch?")
	term.keys("y")
	term.waitFor(30*time.Second, "Result: ✓ /mnt/scratch expired and is unmounted")
	// The staged unmount of the demo's busy mount: its holders are the
	// demo's own children, revoked by ptrace from the same process.
	show("projects", "demo-reader")
	term.keys("F")
	term.waitFor(30*time.Second, "Staged unmount (close) of /mnt/projects?")
	term.keys("y")
	term.waitFor(60*time.Second, "Result: ✓ /mnt/projects is unmounted")
	term.keys("q")
	term.waitFor(30*time.Second, "EXIT=0", "icanon echo")
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range procs {
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil || strings.Contains(string(b), ") Z ") || startTime(string(b)) != started[p] {
				break // gone, a zombie about to be reaped, or the pid reused
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo process %d outlived the demo: %s", p, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// With its last process gone the sandbox's namespace is freed, and its
	// mounts with it (mount_namespaces(7)): the demo holds no fd to it and
	// binds it nowhere. (Its inode number may be reused at once by another
	// namespace on the machine, so it is not looked up again here.)
}

// NO_COLOR: no colour or other styling reaches the terminal; without it,
// there is colour, and the view follows a resize of the terminal.
func TestEndToEndNoColor(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "nocolor")
	for _, noColor := range []bool{true, false} {
		env := "COLORTERM=truecolor "
		if noColor {
			env += "NO_COLOR=1 "
		}
		term := newTerminal(t, 80, 24, env+bin+" --journal - "+dir)
		term.waitFor(30*time.Second, "Holders of "+dir)
		styled := term.run("capture-pane", "-p", "-e", "-t", "e2e")
		colour := strings.Contains(styled, "\x1b[3") || strings.Contains(styled, "\x1b[9") || strings.Contains(styled, "38;")
		if noColor && strings.Contains(styled, "\x1b[") {
			t.Fatalf("NO_COLOR: styling reached the terminal: %q", styled)
		}
		if !noColor && !colour {
			t.Fatalf("without NO_COLOR there is no colour at all: %q", styled)
		}
		if !noColor {
			// The view follows a resize: at 80 columns the mount
			// point is cut in the tree, at 130 it shows whole.
			if strings.Contains(term.screen(), "─"+dir+" ") {
				t.Fatalf("the mount point is not cut at 80 columns:\n%s", term.screen())
			}
			term.run("resize-window", "-t", "e2e", "-x", "130", "-y", "40")
			scr := term.waitFor(30*time.Second, "─"+dir+" ")
			if n := len(strings.Split(strings.TrimRight(scr, "\n"), "\n")); n < 30 {
				t.Fatalf("after resizing to 40 rows the view has %d lines:\n%s", n, scr)
			}
		}
		term.keys("q")
		term.waitFor(30*time.Second, "EXIT=0")
	}
}

// A loop device backed by a file on a mount is a holder no process shows:
// R in the holders pane asks (starting on No, naming the device and its
// backing file), and y detaches it for real.
func TestEndToEndReleaseLoopDevice(t *testing.T) {
	testns.Require(t, testns.RealRoot)
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "looptarget")
	img := filepath.Join(dir, "disk.img")
	// If the release did not happen, LoopFile detaches it when the test
	// ends (by the device it made), before the tmpfs unmount.
	dev := testns.LoopFile(t, img, 1)
	if !testns.LoopAttachedTo(dev, img) {
		t.Fatalf("%s is not attached to %s", dev, img)
	}

	term := newTerminal(t, 100, 30, bin+" --interval 500ms --journal - "+dir)
	term.waitFor(30*time.Second, "Holders of "+dir, "loop "+dev+": "+img)
	term.keys("R") // from the tree: to the loop device's row
	term.waitFor(30*time.Second, "pick a loop device, swap file or copy, then R releases it")
	term.keys("R")
	term.waitFor(30*time.Second, "Detach "+dev+"?", "Detach "+dev+" (backed by "+img+").", "[ No ]")
	term.keys("n")
	term.waitFor(30*time.Second, "cancelled: nothing was changed")
	if !testns.LoopAttachedTo(dev, img) {
		t.Fatalf("No detached %s from %s", dev, img)
	}
	term.keys("R")
	term.waitFor(30*time.Second, "Detach "+dev+"?")
	term.keys("y")
	scr := term.waitFor(30*time.Second, "released: detach "+dev)
	if strings.Contains(scr, "Error:") {
		t.Fatalf("the release failed:\n%s", scr)
	}
	// Once free, the number may back another test's image at once: what
	// must go is our file.
	deadline := time.Now().Add(10 * time.Second)
	for testns.LoopAttachedTo(dev, img) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is still attached to %s after the release", dev, img)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The next scan no longer shows it.
	term.waitFor(30*time.Second, "Nobody holds "+dir)
	term.keys("q")
	term.waitFor(30*time.Second, "EXIT=0")
}

// A copy of a mount in another mount namespace, held there, keeps the
// filesystem alive: R unmounts the copy inside that namespace (lazily,
// as it is held), and the process there is not touched.
func TestEndToEndReleaseCopyInAnotherNamespace(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "copytarget")
	if err := os.WriteFile(dir+"/data", []byte("e2e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	holder := testns.StartVictimInNewNS(t, testns.RoleFD, dir+"/data", "r")
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.PID))
	if err != nil {
		t.Fatal(err)
	}
	inCopy := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.PID))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
				return true
			}
		}
		return false
	}
	if !inCopy() {
		t.Fatalf("the victim's namespace %s has no copy of %s", ns, dir)
	}

	term := newTerminal(t, 120, 30, bin+" --interval 500ms --journal - "+dir)
	// ns reads "mnt:[N]", as the holders pane writes it.
	term.waitFor(30*time.Second, "Holders of "+dir, ns+" "+dir, "1 holder")
	term.keys("R")
	term.waitFor(30*time.Second, "pick a loop device, swap file or copy, then R releases it")
	term.keys("R")
	term.waitFor(30*time.Second, "Unmount the copy at "+dir+" in "+ns+"?", fmt.Sprintf("(pid %d)", holder.PID), "lazily.", "[ No ]")
	term.keys("y")
	scr := term.waitFor(30*time.Second, "released: unmount the copy at "+dir)
	if strings.Contains(scr, "Error:") {
		t.Fatalf("the release failed:\n%s", scr)
	}
	if inCopy() {
		t.Fatalf("the copy is still in %s after the release", ns)
	}
	if !holder.Alive() {
		t.Fatal("the release killed the process in the other namespace")
	}
	if !testns.IsMountPoint(dir) {
		t.Fatal("the release unmounted our own mount too")
	}
	term.waitFor(30*time.Second, "Nobody holds "+dir)
	term.keys("q")
	term.waitFor(30*time.Second, "EXIT=0")
}

// A mount lazily unmounted while a process holds it lives on, detached:
// the tree lists it by unique ID; l says there is nothing to unmount, and
// F revokes its holder until nothing holds it.
func TestEndToEndStagedOnADetachedMount(t *testing.T) {
	testns.Require(t, testns.Namespace)
	testns.RequireTool(t, "tmux")
	bin := buildMounttop(t)
	dir := mountTmpfs(t, "detachtarget")
	if err := os.WriteFile(dir+"/data", []byte("e2e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		t.Fatal(err)
	}
	if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		t.Skip("no unique mount IDs (kernel < 6.8)")
	}
	name := fmt.Sprintf("the detached mount (unique ID %d)", stx.Mnt_id)
	holder := testns.StartVictim(t, testns.RoleFD, dir+"/data", "r")
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}

	term := newTerminal(t, 120, 30, bin+" --interval 500ms --journal - /")
	term.waitFor(30*time.Second, "Holders of /")
	// Other detached mounts may exist on this machine: walk the filtered
	// tree until the holders pane names ours.
	term.keys("/")
	term.typeText("(detached)")
	term.keys("Enter")
	found := false
	for i := 0; i < 20 && !found; i++ {
		time.Sleep(200 * time.Millisecond)
		if found = strings.Contains(term.screen(), "Holders of "+name); !found {
			term.keys("j")
		}
	}
	if !found {
		t.Fatalf("the tree has no row for %s:\n%s", name, term.screen())
	}
	term.waitFor(30*time.Second, "Holders of "+name+" (1 process)", strconv.Itoa(holder.PID))
	term.keys("l")
	term.waitFor(30*time.Second, "no lazy unmount: "+name+" is in no mount table")
	term.keys("F")
	scr := term.waitFor(30*time.Second, "Staged unmount (close) of "+name+"?", "Revoke every holder of "+name, "[ No ]")
	if !strings.Contains(scr, fmt.Sprintf("pid %d", holder.PID)) || strings.Contains(scr, "Fence") {
		t.Fatalf("the dialog does not name exactly the holder, without a fence:\n%s", scr)
	}
	term.keys("y")
	scr = term.waitFor(60*time.Second, "Result: ✓")
	if !strings.Contains(scr, "staged unmount (close) of "+name+": gone") {
		t.Fatalf("the staged run did not report the detached mount gone:\n%s", scr)
	}
	if !holder.Alive() {
		t.Fatal("the close policy killed the holder")
	}
	term.keys("q")
	term.waitFor(30*time.Second, "EXIT=0")
}
