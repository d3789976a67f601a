// Command revokebench times mounttop's staged close against `fuser -km`
// plus umount (issue 12 point 3): a tmpfs held by N processes is taken away
// from them by `mounttop umount --staged --yes --json` (the holders are
// revoked and keep running), and an identical tmpfs held by N identical
// processes by `fuser -k -m` and `umount` (the holders are killed), in one
// run, the two alternating, for each N.
//
//	revokebench -holders 300,1000,2000 -reps 3 -mounttop ./mounttop
//	revokebench -holders 1000 -exec 'perf record -g -- ./mounttop umount --staged --yes --json "$TARGET" >/dev/null'
//
// Every holder holds one fd on the mount: four in five are sleep(1) (one
// thread, blocked in clock_nanosleep), one in four of those with its cwd on
// the mount; one in five is this program re-executed in a holder role (a Go
// process: several threads) that also maps a file of the mount MAP_SHARED.
// Holders are only ever processes started here; before fuser -k runs, a
// plain `fuser -m` checks that it names exactly them.
//
// It must run as root: it mounts tmpfs and a /proc, only ever inside a
// private mount namespace that it makes, as pid 1 of a pid namespace of its
// own (so both tools see only its processes), which die with it (enter,
// workload.CheckPrivate).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/bench/workload"
)

func init() {
	// Holders are started with Pdeathsig, which fires when the thread
	// that forked them exits: keep main on the main thread.
	runtime.LockOSThread()
}

const (
	envBase   = "MOUNTTOP_REVOKEBENCH_BASE"   // set inside the namespace: where the mounts go
	envMapper = "MOUNTTOP_REVOKEBENCH_MAPPER" // set in a mapping holder: the file to map
	readyFD   = 4                             // a mapping holder's end of the readiness pipe
)

type options struct {
	sizes    []int
	reps     int
	mounttop string
	fuser    string
	umount   string
	sleep    string
	time     string
	out      string
	exec     string
	timeout  time.Duration
}

func main() {
	if path := os.Getenv(envMapper); path != "" {
		os.Exit(mapper(path))
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "revokebench:", err)
		os.Exit(2)
	}
	if base := os.Getenv(envBase); base != "" {
		os.Exit(inside(o, base))
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "revokebench: must run as root (it mounts tmpfs inside a private mount namespace)")
		os.Exit(2)
	}
	base, err := os.MkdirTemp("", "mounttop-revokebench.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "revokebench:", err)
		os.Exit(1)
	}
	code, err := enter(os.Args[1:], []string{envBase + "=" + base})
	os.Remove(base)
	if err != nil {
		fmt.Fprintln(os.Stderr, "revokebench:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("revokebench", flag.ContinueOnError)
	var o options
	sizes := fs.String("holders", "300,1000,2000", "holder counts to run, comma-separated")
	fs.IntVar(&o.reps, "reps", 3, "measured rounds per holder count (the two tools alternate)")
	fs.StringVar(&o.mounttop, "mounttop", "mounttop", "the mounttop binary to time")
	fs.StringVar(&o.fuser, "fuser", "fuser", "fuser (psmisc)")
	fs.StringVar(&o.umount, "umount", "umount", "umount (util-linux)")
	fs.StringVar(&o.sleep, "sleep", "sleep", "sleep (coreutils): the single-threaded holders")
	fs.StringVar(&o.time, "time", "/usr/bin/time", "GNU time, for each tool's own peak RSS (%M)")
	fs.StringVar(&o.out, "out", "", "append every sample and the summary as JSON to this file")
	fs.StringVar(&o.exec, "exec", "", "instead of measuring, run this sh command with the holders up ($TARGET: the held mount), once per holder count")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one tool run after this long")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad holder count %q", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.reps < 1 {
		return nil, errors.New("-reps must be at least 1")
	}
	for _, p := range []*string{&o.mounttop, &o.fuser, &o.umount, &o.sleep, &o.time} {
		found, err := exec.LookPath(*p)
		if err != nil {
			return nil, err
		}
		if *p, err = filepath.Abs(found); err != nil {
			return nil, err
		}
	}
	return &o, nil
}

// enter is workload.Enter with a pid namespace too: this program runs
// again as pid 1 of a new pid namespace (clone(2) CLONE_NEWPID) in a new
// mount namespace made private (unshare(2) CLONE_NEWNS; Go remounts /
// MS_REC|MS_PRIVATE first), where inside mounts a /proc of its own. So
// mounttop and fuser both see the holders and nothing else that runs on
// the machine: the figures do not depend on other processes' fds. The
// child dies with us (Pdeathsig), and every process in its namespace
// with it; SIGINT and SIGTERM are passed on so it can tear down in order.
func enter(args, env []string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 1, err
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &st); err != nil {
		return 1, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(append(os.Environ(), env...), workload.EnvParentNS+"="+strconv.FormatUint(st.Ino, 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Unshareflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("entering a private mount and pid namespace: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// sample is one timed run: wall time from the first command's start to the
// mount being gone, and the largest peak RSS (GNU time's %M) of its
// commands.
type sample struct {
	Wall    time.Duration `json:"wall_ns"`
	MaxRSS  int64         `json:"maxrss_kib"`
	Out     int64         `json:"stdout_bytes,omitempty"`
	Journal int64         `json:"journal_bytes,omitempty"`
	Tries   int           `json:"umount_tries,omitempty"`
}

const (
	toolMounttop = "mounttop umount --staged"
	toolFuser    = "fuser -km + umount"
)

// inside runs in the private namespace: a tmpfs at base holds the held
// mounts and the journal; per holder count, rounds alternate the tools.
func inside(o *options, base string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pin, _ := strconv.ParseUint(os.Getenv(workload.EnvParentNS), 10, 64)
	if err := workload.CheckPrivate(pin); err != nil {
		fmt.Fprintln(os.Stderr, "revokebench:", err)
		return 1
	}
	if os.Getpid() != 1 {
		fmt.Fprintf(os.Stderr, "revokebench: not pid 1 of a new pid namespace (pid %d)\n", os.Getpid())
		return 1
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		fmt.Fprintln(os.Stderr, "revokebench: mounting /proc for the pid namespace:", err)
		return 1
	}
	if err := workload.PrivateRun(); err != nil {
		fmt.Fprintln(os.Stderr, "revokebench:", err)
		return 1
	}
	if err := unix.Mount("mounttop-revokebench", base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64m,mode=0755"); err != nil {
		fmt.Fprintln(os.Stderr, "revokebench: mounting the base tmpfs:", err)
		return 1
	}
	defer unix.Unmount(base, unix.UMOUNT_NOFOLLOW)
	code := 0
	results := map[int]map[string][]sample{}
	for _, n := range o.sizes {
		if ctx.Err() != nil {
			return 1
		}
		if o.exec != "" {
			if err := runExec(ctx, o, base, n); err != nil {
				fmt.Fprintln(os.Stderr, "revokebench:", err)
				code = 1
			}
			continue
		}
		results[n] = map[string][]sample{}
	reps:
		for r := 0; r < o.reps; r++ {
			tools := []string{toolMounttop, toolFuser}
			if r%2 == 1 {
				tools[0], tools[1] = tools[1], tools[0]
			}
			for _, t := range tools {
				s, err := round(ctx, o, base, n, t, r)
				if err != nil {
					// The size's other rounds are dropped, the other
					// sizes still run: what was measured is reported.
					fmt.Fprintf(os.Stderr, "revokebench: %d holders, %s: %v\n", n, t, err)
					code = 1
					break reps
				}
				results[n][t] = append(results[n][t], s)
			}
		}
	}
	if o.exec == "" {
		report(o, results)
	}
	return code
}

// round builds a mount held by n holders, takes it away with tool t, and
// tears down whatever is left (holders killed by pid and reaped).
func round(ctx context.Context, o *options, base string, n int, t string, r int) (sample, error) {
	dir := filepath.Join(base, fmt.Sprintf("m%d-%d-%s", n, r, t[:1]))
	h, err := hold(ctx, o, dir, n)
	defer h.close()
	if err != nil {
		return sample{}, err
	}
	var s sample
	switch t {
	case toolMounttop:
		s, err = stagedClose(ctx, o, base, dir, h)
	default:
		s, err = fuserKill(ctx, o, dir, h)
	}
	if err != nil {
		return s, err
	}
	if mounted(dir) {
		return s, fmt.Errorf("%s: still mounted afterwards", dir)
	}
	return s, os.Remove(dir)
}

// stagedClose times `mounttop umount --staged --yes --json DIR`; every
// holder must be alive afterwards (revoked, not killed).
func stagedClose(ctx context.Context, o *options, base, dir string, h *holders) (sample, error) {
	journal := filepath.Join(base, "journal.jsonl")
	defer os.Remove(journal)
	var out counter
	start := time.Now()
	// --timeout as long as the benchmark's own limit: on a loaded machine
	// the default 30 s can end a run of 2,000 holders that was going well.
	rss, code, stderr, err := timed(ctx, o, &out, o.mounttop, "umount", "--staged", "--yes", "--json", "--timeout", o.timeout.String(), "--journal", journal, dir)
	s := sample{Wall: time.Since(start), MaxRSS: rss, Out: out.n}
	if err != nil {
		return s, err
	}
	if code != 0 {
		return s, fmt.Errorf("mounttop exited %d: %s", code, firstLine(stderr))
	}
	if st, err := os.Stat(journal); err == nil {
		s.Journal = st.Size()
	}
	if alive := h.alive(); alive != len(h.cmds) {
		return s, fmt.Errorf("only %d of %d holders alive after the staged close: a revoke must not kill", alive, len(h.cmds))
	}
	return s, nil
}

// fuserKill checks that `fuser -m DIR` names exactly our holders, then
// times `fuser -k -m DIR` and `umount DIR`, the umount retried (EBUSY while
// the killed holders are still exiting) until it succeeds.
func fuserKill(ctx context.Context, o *options, dir string, h *holders) (sample, error) {
	var out bytes.Buffer
	if _, code, stderr, err := timed(ctx, o, &out, o.fuser, "-m", dir); err != nil || code != 0 {
		return sample{}, fmt.Errorf("fuser -m: exit %d, %v: %s", code, err, firstLine(stderr))
	}
	var pids []int
	for _, f := range strings.Fields(out.String()) {
		if p, err := strconv.Atoi(strings.TrimRight(f, "cemfrs")); err == nil {
			pids = append(pids, p)
		}
	}
	sort.Ints(pids)
	if want := h.pids(); !slices.Equal(pids, want) {
		return sample{}, fmt.Errorf("fuser -m names %d pids, we started %d holders: not killing anything", len(pids), len(want))
	}
	start := time.Now()
	rss, code, stderr, err := timed(ctx, o, io.Discard, o.fuser, "-k", "-m", "-s", dir)
	if err != nil || code != 0 {
		return sample{}, fmt.Errorf("fuser -km: exit %d, %v: %s", code, err, firstLine(stderr))
	}
	s := sample{MaxRSS: rss}
	for {
		s.Tries++
		rss, code, stderr, err := timed(ctx, o, io.Discard, o.umount, dir)
		s.MaxRSS = max(s.MaxRSS, rss)
		if err != nil {
			return s, err
		}
		if code == 0 {
			break
		}
		if time.Since(start) > o.timeout || !bytes.Contains(stderr, []byte("busy")) {
			return s, fmt.Errorf("umount: exit %d: %s", code, firstLine(stderr))
		}
	}
	s.Wall = time.Since(start)
	return s, nil
}

// timed runs argv under GNU time with stdout to out and returns its peak
// RSS in KiB and exit code.
func timed(ctx context.Context, o *options, out io.Writer, argv ...string) (rss int64, code int, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	f, err := os.CreateTemp("", "mounttop-revokebench-rss.")
	if err != nil {
		return 0, 0, nil, err
	}
	f.Close()
	defer os.Remove(f.Name())
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, o.time, append([]string{"-f", "%M", "-o", f.Name()}, argv...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = "/", out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, 0, errb.Bytes(), err
	}
	if ctx.Err() != nil {
		return 0, 0, errb.Bytes(), ctx.Err()
	}
	b, _ := os.ReadFile(f.Name())
	if w := strings.Fields(string(b)); len(w) > 0 {
		rss, _ = strconv.ParseInt(w[len(w)-1], 10, 64)
	}
	return rss, cmd.ProcessState.ExitCode(), errb.Bytes(), nil
}

// holders are the processes holding one mount.
type holders struct {
	dir  string
	cmds []*exec.Cmd
}

// hold mounts a tmpfs on dir and starts n holders on it, returning once
// each holds everything it should.
func hold(ctx context.Context, o *options, dir string, n int) (*holders, error) {
	h := &holders{dir: dir}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return h, err
	}
	if err := unix.Mount("mounttop-revokebench", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m,mode=0755"); err != nil {
		return h, fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
	}
	page := bytes.Repeat([]byte{'x'}, os.Getpagesize())
	if err := os.WriteFile(filepath.Join(dir, "map"), page, 0o644); err != nil {
		return h, err
	}
	if err := os.Mkdir(filepath.Join(dir, "cwd"), 0o755); err != nil {
		return h, err
	}
	self, err := os.Executable()
	if err != nil {
		return h, err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return h, err
	}
	defer rd.Close()
	mappers := 0
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("h%05d", i)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			wr.Close()
			return h, err
		}
		var cmd *exec.Cmd
		if i%5 == 4 {
			cmd = &exec.Cmd{Path: self, Args: []string{"mounttop-revokebench-holder"},
				Env:        []string{"GOMAXPROCS=1", "GOGC=off", envMapper + "=" + filepath.Join(dir, "map")},
				ExtraFiles: []*os.File{f, wr}}
			mappers++
		} else {
			cmd = &exec.Cmd{Path: o.sleep, Args: []string{"sleep", "100000"}, ExtraFiles: []*os.File{f}}
			if i%4 == 1 {
				cmd.Dir = filepath.Join(dir, "cwd")
			}
		}
		if cmd.Dir == "" {
			cmd.Dir = "/"
		}
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		f.Close()
		if err != nil {
			wr.Close()
			return h, fmt.Errorf("starting holder %d: %w", i, err)
		}
		h.cmds = append(h.cmds, cmd)
	}
	wr.Close()
	deadline := time.Now().Add(2 * time.Minute)
	rd.SetReadDeadline(deadline)
	br := bufio.NewReader(rd)
	for i := 0; i < mappers; i++ {
		if c, err := br.ReadByte(); err != nil || c != 'R' {
			return h, fmt.Errorf("%d of %d mapping holders ready: %v", i, mappers, err)
		}
	}
	// The sleep holders: ready once in clock_nanosleep (/proc/PID/syscall).
	prefix := fmt.Sprintf("%d ", unix.SYS_CLOCK_NANOSLEEP)
	for i, cmd := range h.cmds {
		if i%5 == 4 {
			continue
		}
		for {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", cmd.Process.Pid))
			if strings.HasPrefix(string(b), prefix) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return h, fmt.Errorf("holder %d (pid %d) never reached clock_nanosleep", i, cmd.Process.Pid)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return h, nil
}

func (h *holders) pids() []int {
	out := make([]int, 0, len(h.cmds))
	for _, c := range h.cmds {
		out = append(out, c.Process.Pid)
	}
	sort.Ints(out)
	return out
}

// alive counts holders not exited (neither zombie nor gone).
func (h *holders) alive() int {
	n := 0
	for _, c := range h.cmds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X' {
			n++
		}
	}
	return n
}

// close kills every holder by pid (os.Process.Kill uses its pidfd, so a
// reused pid is never hit), reaps each, and unmounts dir if still mounted.
func (h *holders) close() {
	for _, c := range h.cmds {
		_ = c.Process.Kill()
	}
	for _, c := range h.cmds {
		_ = c.Wait()
	}
	h.cmds = nil
	if mounted(h.dir) {
		_ = unix.Unmount(h.dir, unix.UMOUNT_NOFOLLOW)
	}
	_ = os.Remove(h.dir)
}

// mounted reports whether dir is a mount point in our mountinfo.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// mapper is a mapping holder: it keeps fd 3 (a file of the mount), maps
// path MAP_SHARED and closes that fd, reports ready, and pauses.
func mapper(path string) int {
	debug.SetGCPercent(-1)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		var m []byte
		m, err = unix.Mmap(fd, 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
		unix.Close(fd)
		if err == nil {
			_ = m[0] // fault the page in; m stays mapped until the holder is killed
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "revokebench holder:", err)
		unix.Write(readyFD, []byte{'E'})
		return 1
	}
	unix.Write(readyFD, []byte{'R'})
	unix.Close(readyFD)
	for {
		unix.Pause()
	}
}

func runExec(ctx context.Context, o *options, base string, n int) error {
	dir := filepath.Join(base, fmt.Sprintf("exec%d", n))
	h, err := hold(ctx, o, dir, n)
	defer h.close()
	if err != nil {
		return err
	}
	fmt.Printf("%d holders up on %s\n", n, dir)
	cmd := exec.CommandContext(ctx, "sh", "-c", o.exec)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "TARGET="+dir)
	return cmd.Run()
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func median(ss []sample, f func(sample) int64) int64 {
	v := make([]int64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// report prints one table (command, median, ratio, peak memory), the
// growth from one holder count to the next, and the goals' verdicts.
func report(o *options, results map[int]map[string][]sample) {
	wall := func(s sample) int64 { return int64(s.Wall) }
	fmt.Printf("\n## revoke: staged close vs fuser -km + umount (%d rounds, alternating)\n\n", o.reps)
	fmt.Println("| command | median | ratio | peak memory |")
	fmt.Println("|---|---:|---:|---:|")
	med := map[int]time.Duration{}
	ratio := map[int]float64{}
	for _, n := range o.sizes {
		mt, fu := results[n][toolMounttop], results[n][toolFuser]
		if len(mt) == 0 || len(fu) == 0 {
			fmt.Printf("| %d holders | not measured: a round failed (above) | | |\n", n)
			continue
		}
		m, f := time.Duration(median(mt, wall)), time.Duration(median(fu, wall))
		med[n], ratio[n] = m, float64(m)/float64(f)
		peak := func(ss []sample) float64 {
			var p int64
			for _, s := range ss {
				p = max(p, s.MaxRSS)
			}
			return float64(p) / 1024
		}
		fmt.Printf("| `%s` (%d holders) | %.2f s | %.2f | %.1f MiB |\n", toolMounttop, n, m.Seconds(), ratio[n], peak(mt))
		fmt.Printf("| `%s` (%d holders) | %.2f s | 1 | %.1f MiB |\n", toolFuser, n, f.Seconds(), peak(fu))
	}
	fmt.Println()
	for _, n := range o.sizes {
		mt := results[n][toolMounttop]
		if _, ok := med[n]; !ok {
			continue
		}
		fmt.Printf("%d holders: --json output %d bytes, journal %d bytes (medians)\n", n,
			median(mt, func(s sample) int64 { return s.Out }), median(mt, func(s sample) int64 { return s.Journal }))
	}
	for i := 1; i < len(o.sizes); i++ {
		a, b := o.sizes[i-1], o.sizes[i]
		if med[a] == 0 || med[b] == 0 {
			continue
		}
		fmt.Printf("growth %d -> %d holders (x%.2f): staged close x%.2f\n", a, b, float64(b)/float64(a), float64(med[b])/float64(med[a]))
	}
	if r, ok := ratio[1000]; ok {
		fmt.Printf("goal: 1000 holders <= 4 x fuser -km + umount: %.2f, %s\n", r, verdict(r <= 4))
	}
	if a, ok := med[1000]; ok {
		if b, ok := med[2000]; ok {
			g := float64(b) / float64(a)
			fmt.Printf("goal: 2000 holders <= 2.2 x 1000 holders: %.2f, %s\n", g, verdict(g <= 2.2))
		}
	}
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			_ = json.NewEncoder(f).Encode(map[string]any{"revoke": results, "median_ns": med, "ratio": ratio})
			f.Close()
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}
