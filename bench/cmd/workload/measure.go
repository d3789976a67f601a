package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mounttop/bench/workload"
)

// A tool is one command being timed.
type tool struct {
	Name string
	Argv []string
}

// sample is one timed run of a tool: wall time from start to reaped, CPU
// (user + system, from wait4's rusage) and peak resident set.
//
// The peak comes from GNU time's %M, not from our own wait4: Linux carries
// ru_maxrss across execve (fs/exec.c records the old mm's high-water mark),
// and os/exec's child runs on our memory until it execs, so every tool
// would report at least this process's RSS (with 2,000 holders' exec.Cmds,
// about 20 MiB: fuser "used" 20 MiB). /usr/bin/time forks from a ~1 MiB
// process, so its %M is the tool's own peak with a floor of about 1 MiB
// (measured and printed as the method's floor).
type sample struct {
	Wall   time.Duration `json:"wall_ns"`
	CPU    time.Duration `json:"cpu_ns"`
	MaxRSS int64         `json:"maxrss_kib"`
	Exit   int           `json:"exit"`
	out    []byte
	stderr []byte
}

// summary is one tool's figures over the measured repetitions.
type summary struct {
	Tool      string        `json:"tool"`
	Median    time.Duration `json:"median_wall_ns"`
	Min       time.Duration `json:"min_wall_ns"`
	Max       time.Duration `json:"max_wall_ns"`
	CPU       time.Duration `json:"median_cpu_ns"`
	PeakRSS   int64         `json:"peak_maxrss_kib"`
	MedianRSS int64         `json:"median_maxrss_kib"`
	Samples   []sample      `json:"samples"`
}

const (
	floorT = "floor"
	mtList = "mounttop list --json"
	// mtListProcfs is the same list through procfs, as an ordinary user's
	// or an older kernel's scan runs (MOUNTTOP_OPEN_FILES=procfs): where
	// mtList reads open files through the task_file iterator (root), this
	// row keeps the statx-per-fd scan measured beside it.
	mtListProcfs = "mounttop list --json (procfs)"
	mtHolders    = "mounttop holders --json M"
	fuserM       = "fuser -m M"
	lsofF        = "lsof +f -- M"
)

func runTool(ctx context.Context, timeBin string, t tool, timeout time.Duration) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rss, err := os.CreateTemp("", "mounttop-bench-rss.")
	if err != nil {
		return sample{}, err
	}
	rss.Close()
	defer os.Remove(rss.Name())
	var out, errb bytes.Buffer
	argv := append([]string{timeBin, "-f", "%M", "-o", rss.Name()}, t.Argv...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	s := sample{Wall: time.Since(start), out: out.Bytes(), stderr: errb.Bytes()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return s, fmt.Errorf("%s: %w", t.Name, err)
	}
	if ctx.Err() != nil {
		return s, fmt.Errorf("%s: %w", t.Name, ctx.Err())
	}
	ps := cmd.ProcessState
	s.Exit = ps.ExitCode()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		// time's own CPU (about a millisecond) plus its waited-for
		// child's: wait4(2) folds in reaped descendants.
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// GNU time writes "Command exited with non-zero status N" first
	// when the tool fails (fuser does when it finds nothing).
	b, err := os.ReadFile(rss.Name())
	if err != nil {
		return s, err
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return s, fmt.Errorf("%s: no %%M from %s", t.Name, timeBin)
	}
	if s.MaxRSS, err = strconv.ParseInt(lines[len(lines)-1], 10, 64); err != nil {
		return s, fmt.Errorf("%s: %%M from %s: %w", t.Name, timeBin, err)
	}
	return s, nil
}

// measure times the four tools on w, alternating: round r runs them
// starting at tool r mod 4, so no tool always runs first after a quiet
// spell or always after the heaviest one. Then it checks the answers.
func measure(ctx context.Context, o *options, w *workload.Workload) error {
	if o.viewOnly {
		view, err := measureView(ctx, o, w)
		if err != nil {
			return fmt.Errorf("measuring the view: %w", err)
		}
		if o.out != "" {
			return writeResults(o.out, w, nil, nil, view, loadavg(), loadavg(), nil)
		}
		return nil
	}
	target := w.Layout.Mount(0)
	tools := []tool{
		{floorT, []string{o.floor}},
		{mtList, []string{o.mounttop, "list", "--json"}},
		{mtListProcfs, []string{"/usr/bin/env", "MOUNTTOP_OPEN_FILES=procfs", o.mounttop, "list", "--json"}},
		{mtHolders, []string{o.mounttop, "holders", "--json", target}},
		{fuserM, []string{o.fuser, "-m", target}},
		{lsofF, []string{o.lsof, "+f", "--", target}},
	}
	floor, err := runTool(ctx, o.time, tool{"true", []string{"/bin/true"}}, o.timeout)
	if err != nil {
		return err
	}
	load0 := loadavg()
	samples := map[string][]sample{}
	for r := -o.warmup; r < o.reps; r++ {
		for j := range tools {
			t := tools[(r+o.warmup+j)%len(tools)]
			s, err := runTool(ctx, o.time, t, o.timeout)
			if err != nil {
				return err
			}
			// Every tool finds holders here, so each exits 0; a time
			// from a failed run is no figure.
			if s.Exit != 0 {
				return fmt.Errorf("%s exited with %d: %s", t.Name, s.Exit, firstLine(s.stderr))
			}
			if r >= 0 {
				samples[t.Name] = append(samples[t.Name], s)
			}
		}
	}
	load1 := loadavg()
	if alive := w.Alive(); alive != len(w.Holders) {
		return fmt.Errorf("only %d of %d holders alive after measuring: figures discarded", alive, len(w.Holders))
	}
	sums := map[string]*summary{}
	for _, t := range tools {
		sums[t.Name] = summarize(t.Name, samples[t.Name])
	}
	fmt.Printf("target %s; %d measured rounds after %d warm-up, tools alternating; load average %s before, %s after\n\n",
		target, o.reps, o.warmup, load0, load1)
	fmt.Printf("peak RSS is GNU time's %%M (floor of the method: /bin/true shows %.1f MiB)\n\n", float64(floor.MaxRSS)/1024)
	fmt.Println("| tool | median wall | min | max | / floor | / fuser | median CPU (user+sys) | peak RSS |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	ratio := func(a, b string) float64 { return float64(sums[a].Median) / float64(sums[b].Median) }
	for _, t := range tools {
		s := sums[t.Name]
		fmt.Printf("| `%s` | %s | %s | %s | %.2f | %.2f | %s | %.1f MiB |\n", display(t.Name), ms(s.Median), ms(s.Min), ms(s.Max),
			ratio(t.Name, floorT), ratio(t.Name, fuserM), ms(s.CPU), float64(s.PeakRSS)/1024)
	}
	ratios := map[string]float64{
		"list/floor":    ratio(mtList, floorT),
		"holders/floor": ratio(mtHolders, floorT),
		"list/fuser":    ratio(mtList, fuserM),
		"holders/fuser": ratio(mtHolders, fuserM),
		"list/lsof":     ratio(mtList, lsofF),
		"holders/lsof":  ratio(mtHolders, lsofF),
	}
	cpu := func(a, b string) float64 { return float64(sums[a].CPU) / float64(sums[b].CPU) }
	ratios["cpu list/floor"] = cpu(mtList, floorT)
	ratios["cpu list/fuser"] = cpu(mtList, fuserM)
	ratios["cpu holders/fuser"] = cpu(mtHolders, fuserM)
	// CPU is what a busy machine cannot take away by making us wait.
	fmt.Printf("\nratios of median CPU: list/floor %.2f, list/fuser %.2f, holders/fuser %.2f\n",
		ratios["cpu list/floor"], ratios["cpu list/fuser"], ratios["cpu holders/fuser"])
	// Issue 12's targets for the scan of all mounts.
	fmt.Printf("issue 12: list <= 1.2 x floor: %s (%.2f); <= 0.67 x fuser -m: %s (%.2f); peak RSS <= 24 MiB: %s (%.1f MiB)\n",
		verdict(ratios["list/floor"] <= 1.2), ratios["list/floor"], verdict(ratios["list/fuser"] <= 0.67), ratios["list/fuser"],
		verdict(sums[mtList].PeakRSS <= 24<<10), float64(sums[mtList].PeakRSS)/1024)
	checkErr := check(w, samples)
	var view *viewResult
	if o.view[w.Size.Name] {
		var err error
		if view, err = measureView(ctx, o, w); err != nil {
			checkErr = errors.Join(checkErr, fmt.Errorf("measuring the view: %w", err))
		}
	}
	if o.out != "" {
		if err := writeResults(o.out, w, sums, ratios, view, load0, load1, checkErr); err != nil {
			return err
		}
	}
	return checkErr
}

// display is a tool's name as the tables show it.
func display(name string) string { return strings.ReplaceAll(name, " M", " MOUNT") }

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

func summarize(name string, ss []sample) *summary {
	s := &summary{Tool: name, Samples: ss}
	walls := make([]time.Duration, len(ss))
	cpus := make([]time.Duration, len(ss))
	rss := make([]int64, len(ss))
	for i, x := range ss {
		walls[i], cpus[i], rss[i] = x.Wall, x.CPU, x.MaxRSS
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	s.Median, s.Min, s.Max = median(walls), walls[0], walls[len(walls)-1]
	s.CPU = median(cpus)
	s.PeakRSS, s.MedianRSS = rss[len(rss)-1], rss[len(rss)/2]
	return s
}

// median of a sorted slice (the mean of the middle two for an even count).
func median(d []time.Duration) time.Duration {
	n := len(d)
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// check compares what each tool said about the target mount (from every
// tool's last run) with the workload's plan: the same holder pids from
// mounttop holders, mounttop list's count, fuser and lsof, and mounttop's
// per-kind use counts.
func check(w *workload.Workload, samples map[string][]sample) error {
	last := func(name string) sample { ss := samples[name]; return ss[len(ss)-1] }
	want := map[int]bool{}
	var wantUses = map[string]int{}
	for _, i := range workload.Expected(w.Size, 0) {
		want[w.Holders[i].Pid] = true
	}
	for i := range w.Holders {
		p := workload.PlanFor(w.Size, i)
		for _, op := range p.Opens {
			if op.Mount == 0 {
				wantUses["fd"]++
			}
		}
		if p.Home == 0 {
			if p.Lock != workload.NoLock {
				wantUses["fd"]++
				wantUses["lock"]++
			}
			if p.Deleted {
				wantUses["fd"]++
			}
			if p.Cwd != "" {
				wantUses["cwd"]++
			}
			if p.Chroot != "" {
				wantUses["root"]++
			}
		}
		if p.Exe {
			wantUses["exe"]++
		}
	}
	var problems []string

	var hj struct {
		Holders []struct {
			PID  int `json:"pid"`
			Uses []struct {
				Kind    string `json:"kind"`
				Deleted bool   `json:"deleted"`
			} `json:"uses"`
		} `json:"holders"`
		Warnings []string `json:"warnings"`
	}
	holders := map[int]bool{}
	gotUses := map[string]int{}
	if err := json.Unmarshal(last(mtHolders).out, &hj); err != nil {
		problems = append(problems, fmt.Sprintf("mounttop holders: bad JSON: %v", err))
	}
	for _, h := range hj.Holders {
		holders[h.PID] = true
		for _, u := range h.Uses {
			gotUses[u.Kind]++
		}
	}
	var lj struct {
		Mounts []struct {
			Mountpoint string `json:"mountpoint"`
			Holders    *int   `json:"holders"`
		} `json:"mounts"`
		Processes int      `json:"processes_scanned"`
		Warnings  []string `json:"warnings"`
	}
	listCount := -1
	if err := json.Unmarshal(last(mtList).out, &lj); err != nil {
		problems = append(problems, fmt.Sprintf("mounttop list: bad JSON: %v", err))
	}
	for _, m := range lj.Mounts {
		if m.Mountpoint == w.Layout.Mount(0) && m.Holders != nil {
			listCount = *m.Holders
		}
	}
	fuser := pidSet(strings.Fields(string(last(fuserM).out)))
	var lsofFields []string
	for i, line := range strings.Split(string(last(lsofF).out), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 1 {
			lsofFields = append(lsofFields, f[1])
		}
	}
	lsof := pidSet(lsofFields)

	fmt.Printf("\ncorrectness on %s: plan %d holders; mounttop holders %d, mounttop list %d, fuser -m %d, lsof %d pids\n",
		w.Layout.Mount(0), len(want), len(holders), listCount, len(fuser), len(lsof))
	fmt.Printf("  uses by kind, mounttop holders (plan): fd %d (%d), cwd %d (%d), root %d (%d), lock %d (%d), exe %d (%d), mmap %d (>= %d: plain maps + the binary's segments)\n",
		gotUses["fd"], wantUses["fd"], gotUses["cwd"], wantUses["cwd"], gotUses["root"], wantUses["root"], gotUses["lock"], wantUses["lock"],
		gotUses["exe"], wantUses["exe"], gotUses["mmap"], plainMaps(w))
	fmt.Printf("  mounttop list: %d processes scanned, %d warnings; holders: %d warnings\n", lj.Processes, len(lj.Warnings), len(hj.Warnings))
	for _, c := range []struct {
		name string
		got  map[int]bool
	}{{"mounttop holders", holders}, {"fuser -m", fuser}, {"lsof +f --", lsof}} {
		if d := diff(want, c.got); d != "" {
			problems = append(problems, fmt.Sprintf("%s differs from the plan: %s", c.name, d))
		}
	}
	if listCount != len(want) {
		problems = append(problems, fmt.Sprintf("mounttop list counts %d holders, the plan %d", listCount, len(want)))
	}
	if p := sameLists(last(mtList).out, last(mtListProcfs).out); p != "" {
		problems = append(problems, p)
	}
	for _, k := range []string{"fd", "cwd", "root", "lock", "exe"} {
		if gotUses[k] != wantUses[k] {
			problems = append(problems, fmt.Sprintf("mounttop holders: %d %s uses, the plan %d", gotUses[k], k, wantUses[k]))
		}
	}
	if gotUses["mmap"] < plainMaps(w) {
		problems = append(problems, fmt.Sprintf("mounttop holders: %d mmap uses, fewer than the plan's %d", gotUses["mmap"], plainMaps(w)))
	}
	if len(problems) == 0 {
		fmt.Println("  all agree: mounttop holders = mounttop list = mounttop list (procfs) = fuser -m = lsof = plan")
		return nil
	}
	for _, p := range problems {
		fmt.Println("  MISMATCH:", p)
	}
	return fmt.Errorf("%d correctness problems", len(problems))
}

// sameLists compares the list read through the task_file iterator with
// the list read through procfs, mount by mount (every field, holders'
// counts included): "" when they agree, else the first difference. The
// workload holds still while it is measured, so the two scans must
// agree exactly.
func sameLists(iter, procfs []byte) string {
	type list struct {
		Mounts      []json.RawMessage `json:"mounts"`
		OpenFilesBy string            `json:"open_files_by"`
	}
	var a, b list
	if err := json.Unmarshal(iter, &a); err != nil {
		return fmt.Sprintf("mounttop list: bad JSON: %v", err)
	}
	if err := json.Unmarshal(procfs, &b); err != nil {
		return fmt.Sprintf("mounttop list (procfs): bad JSON: %v", err)
	}
	if b.OpenFilesBy != "procfs" {
		return fmt.Sprintf("mounttop list (procfs) read open files by %q", b.OpenFilesBy)
	}
	fmt.Printf("  mounttop list read open files by %s\n", a.OpenFilesBy)
	if len(a.Mounts) != len(b.Mounts) {
		return fmt.Sprintf("mounttop list: %d mounts by %s, %d by procfs", len(a.Mounts), a.OpenFilesBy, len(b.Mounts))
	}
	for i := range a.Mounts {
		if !bytes.Equal(a.Mounts[i], b.Mounts[i]) {
			return fmt.Sprintf("mounttop list by %s and by procfs differ:\n    %s\n    %s", a.OpenFilesBy, a.Mounts[i], b.Mounts[i])
		}
	}
	return ""
}

// plainMaps is how many mappings of files of mount 0 the holders make on purpose.
func plainMaps(w *workload.Workload) int {
	n := 0
	for i := range w.Holders {
		p := workload.PlanFor(w.Size, i)
		if p.Home != 0 {
			continue
		}
		if p.Mmap != "" {
			n++
		}
		n += len(p.Maps)
	}
	return n
}

// pidSet parses pids, ignoring fuser's trailing access letters.
func pidSet(fields []string) map[int]bool {
	out := map[int]bool{}
	for _, f := range fields {
		f = strings.TrimRight(f, "cefFrm")
		if n, err := strconv.Atoi(f); err == nil {
			out[n] = true
		}
	}
	return out
}

func diff(want, got map[int]bool) string {
	var missing, extra []int
	for p := range want {
		if !got[p] {
			missing = append(missing, p)
		}
	}
	for p := range got {
		if !want[p] {
			extra = append(extra, p)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	sort.Ints(missing)
	sort.Ints(extra)
	return fmt.Sprintf("missing %v, extra %v", head(missing), head(extra))
}

func head(p []int) []int {
	if len(p) > 10 {
		return p[:10]
	}
	return p
}

// writeResults appends one JSON object per size to path.
func writeResults(path string, w *workload.Workload, sums map[string]*summary, ratios map[string]float64, view *viewResult, load0, load1 string, checkErr error) error {
	var uts syscall.Utsname
	syscall.Uname(&uts)
	rel := make([]byte, 0, 65)
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	res := map[string]any{
		"size": w.Size, "kernel": string(rel), "setup_ns": w.Setup, "holders": len(w.Holders),
		"load_before": load0, "load_after": load1, "tools": sums, "ratios": ratios,
		"correct": checkErr == nil, "taken": time.Now().UTC().Format(time.RFC3339),
	}
	if view != nil {
		res["view"] = view
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	if err := enc.Encode(res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
