package workload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Workload is a running workload: its mounts and its holder processes.
type Workload struct {
	Size    Size
	Layout  Layout
	Holders []Holder // by index
	Setup   time.Duration
	mounted []string // mount points, base first
}

// Holder is one holder process the workload started.
type Holder struct {
	Pid int
	// cmd is the exec.Cmd of a holder started by os/exec, nil for one
	// started by a bare fork (forkSleep: no pidfd kept).
	cmd *exec.Cmd
}

// kill sends SIGKILL: through os/exec's pidfd, or by pid for a bare
// fork, which is safe for our own child not yet reaped: its pid cannot
// be reused until we wait for it (wait(2)).
func (h Holder) kill() error {
	if h.cmd != nil {
		return h.cmd.Process.Kill()
	}
	return unix.Kill(h.Pid, unix.SIGKILL)
}

// wait reaps the holder; one killed by us exits with SIGKILL, which is
// not an error here.
func (h Holder) wait() error {
	if h.cmd != nil {
		var ee *exec.ExitError
		if err := h.cmd.Wait(); err != nil && !errors.As(err, &ee) {
			return err
		}
		return nil
	}
	for {
		_, err := unix.Wait4(h.Pid, nil, 0, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

// CheckPrivate returns an error unless mounting here is safe: this process
// must be in a different mount namespace from the one it came from (parent
// names the namespace inode to compare with; 0 means our parent process's)
// and no mount of it may be shared, so nothing can propagate out of it
// (mount_namespaces(7)).
func CheckPrivate(parent uint64) error {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &self); err != nil {
		return fmt.Errorf("reading our mount namespace: %w", err)
	}
	if parent == 0 {
		var st unix.Stat_t
		err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()), &st)
		switch {
		case err == nil:
			parent = st.Ino
		case errors.Is(err, unix.EACCES) && inChildUserNS():
			// A parent outside our user namespace may not be looked at;
			// but then every mount namespace we can mount in is owned by
			// our user namespace, never the machine's own.
		default:
			return fmt.Errorf("reading our parent's mount namespace: %w", err)
		}
	}
	if parent != 0 && self.Ino == parent {
		return errors.New("refusing to mount: not in a private mount namespace (same namespace as the parent)")
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, _, _ := strings.Cut(line, " - ")
		if strings.Contains(pre, " shared:") {
			return fmt.Errorf("refusing to mount: a mount of this namespace is shared and would propagate out: %s", line)
		}
	}
	return nil
}

// Start builds the workload of size s under base (an existing empty
// directory) and returns once every holder holds everything its plan
// says. The caller must be in a private mount namespace (CheckPrivate is
// called again here) and must call Close, also when Start fails after
// mounting: Close undoes whatever was done.
//
// exe is the binary to run as holders; it must call RunHolderIfAsked.
func Start(ctx context.Context, s Size, base, exe string) (*Workload, error) {
	start := time.Now()
	if err := CheckPrivate(0); err != nil {
		if pin := os.Getenv(EnvParentNS); pin != "" {
			// Re-executed by Enter: compare with the namespace we left.
			n, _ := strconv.ParseUint(pin, 10, 64)
			err = CheckPrivate(n)
		}
		if err != nil {
			return nil, err
		}
	}
	w := &Workload{Size: s, Layout: Layout{Base: base}}
	if err := w.mount(exe); err != nil {
		return w, err
	}
	if err := w.startHolders(ctx, exe); err != nil {
		return w, err
	}
	w.Setup = time.Since(start)
	return w, nil
}

func (w *Workload) mountTmpfs(dir, opts string) error {
	if err := unix.Mount("mounttop-bench", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
	}
	w.mounted = append(w.mounted, dir)
	return nil
}

// mount makes the base tmpfs, the M mounts in it and their files: regular
// files, a directory for cwds and directory fds, one-page files to map,
// and directories for lock files and deleted files.
func (w *Workload) mount(exe string) error {
	l := w.Layout
	if err := w.mountTmpfs(l.Base, "size=1m,mode=0755"); err != nil {
		return err
	}
	page := bytes.Repeat([]byte{'x'}, os.Getpagesize())
	for m := 0; m < w.Size.Mounts; m++ {
		dir := l.Mount(m)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := w.mountTmpfs(dir, "size=64m,mode=0755"); err != nil {
			return err
		}
		for _, d := range []string{"dir/sub", "map", "lock", "del"} {
			if err := os.MkdirAll(l.Path(m, d), 0o755); err != nil {
				return err
			}
		}
		for f := 0; f < filesPerMount; f++ {
			if err := os.WriteFile(l.Path(m, fmt.Sprintf("f%03d", f)), nil, 0o644); err != nil {
				return err
			}
		}
		for f := 0; f < mapFiles; f++ {
			if err := os.WriteFile(l.Path(m, fmt.Sprintf("map/%02d", f)), page, 0o644); err != nil {
				return err
			}
		}
	}
	return copyFile(exe, l.Exe())
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// startHolders starts every holder and waits for each to report ready
// (one 'R' byte on a shared pipe) or any to fail ('E'). No goroutine waits
// on a holder: 2,000 blocked wait calls would be 2,000 threads in the
// process being measured alongside.
func (w *Workload) startHolders(ctx context.Context, exe string) error {
	r, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	if w.Size.Shape == Thin {
		wr.Close()
		return w.startThin(ctx)
	}
	env := []string{"GOMAXPROCS=1", "GOGC=off", envSpec + "=" + w.Size.spec(w.Layout), EnvPython + "=" + Python()}
	for i := 0; i < w.Size.Procs; i++ {
		p := PlanFor(w.Size, i)
		path := exe
		if p.Exe {
			path = w.Layout.Exe()
		}
		cmd := &exec.Cmd{
			Path:       path,
			Args:       []string{"mounttop-bench-holder", strconv.Itoa(i)},
			Env:        append(env[:len(env):len(env)], envHolder+"="+strconv.Itoa(i)),
			Dir:        "/",
			Stderr:     os.Stderr,
			ExtraFiles: []*os.File{wr},
			// Killed with us, whatever happens to us.
			SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		}
		if err := cmd.Start(); err != nil {
			wr.Close()
			return fmt.Errorf("starting holder %d: %w", i, err)
		}
		w.Holders = append(w.Holders, Holder{Pid: cmd.Process.Pid, cmd: cmd})
	}
	wr.Close() // EOF once every holder has reported and closed its end
	deadline := time.Now().Add(5 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r.SetReadDeadline(deadline)
	ready := 0
	br := bufio.NewReader(r)
	for ready < w.Size.Procs {
		c, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("%d of %d holders ready: %w", ready, w.Size.Procs, err)
		}
		if c != 'R' {
			return fmt.Errorf("a holder failed (see its message above); %d of %d were ready", ready, w.Size.Procs)
		}
		ready++
	}
	return w.waitExecs(deadline)
}

// waitExecs waits until every holder that execs sleep or bash after
// reporting ready shows that command's name (/proc/PID/comm): only then
// is the machine what the plan says.
func (w *Workload) waitExecs(deadline time.Time) error {
	for i, c := range w.Holders {
		want := PlanFor(w.Size, i).Role.Comm()
		if want == "" {
			continue
		}
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Pid))
			if err != nil {
				return fmt.Errorf("holder %d: %w", i, err)
			}
			if strings.TrimSpace(string(b)) == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("holder %d is still %q, not %s", i, strings.TrimSpace(string(b)), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// startThin starts the Thin shape's holders: /bin/sleep, each started
// with its plan's fds opened here and handed over (ExtraFiles, closed
// here once it runs) and its cwd; exec.Cmd.Start returns once the exec
// succeeded, so each holds everything when it returns. Eight goroutines
// start them (20,000 one after the other took minutes on a busy machine);
// stdin and stdout are one /dev/null shared by all.
func (w *Workload) startThin(ctx context.Context) error {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	w.Holders = make([]Holder, w.Size.Procs)
	var next atomic.Int64
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= w.Size.Procs {
					return
				}
				if err := ctx.Err(); err != nil { // SIGINT/SIGTERM: stop starting
					errs[g] = err
					next.Store(int64(w.Size.Procs))
					return
				}
				pid, err := w.startSleep(i, null)
				if err != nil {
					errs[g] = err
					next.Store(int64(w.Size.Procs)) // the others stop too
					return
				}
				w.Holders[i] = Holder{Pid: pid}
			}
		}()
	}
	wg.Wait()
	// Close and the checks expect every holder: keep the started ones
	// only (in index order) when some failed.
	started := w.Holders[:0]
	for _, c := range w.Holders {
		if c.Pid != 0 {
			started = append(started, c)
		}
	}
	w.Holders = started
	return errors.Join(errs...)
}

// startSleep starts Thin holder i: /bin/sleep with its plan's fds opened
// here and handed over as fds 3 and up, and its cwd. It is a bare
// fork+exec (syscall.ForkExec), returning once the exec succeeded: os/exec
// keeps a pidfd for every child, and 20,000 of them do not fit under the
// machine's hard RLIMIT_NOFILE of 20,000, which these machines' root may
// not raise (no CAP_SYS_RESOURCE). Holder.kill and Holder.wait then act
// by pid, safe for a child of ours not yet reaped.
func (w *Workload) startSleep(i int, null *os.File) (int, error) {
	p := PlanFor(w.Size, i)
	files := make([]*os.File, 0, len(p.Opens))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, o := range p.Opens {
		f, err := os.OpenFile(w.Layout.Path(o.Mount, o.Name), o.Flags, 0)
		if err != nil {
			return 0, err
		}
		files = append(files, f)
	}
	dir := "/"
	if p.Cwd != "" {
		dir = w.Layout.Path(p.Home, p.Cwd)
	}
	fds := []uintptr{null.Fd(), null.Fd(), os.Stderr.Fd()}
	for _, f := range files {
		fds = append(fds, f.Fd())
	}
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "infinity"}, &syscall.ProcAttr{
		Dir: dir, Env: os.Environ(), Files: fds,
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return 0, fmt.Errorf("starting holder %d: %w", i, err)
	}
	return pid, nil
}

// Python returns the python3 binary RolePython holders exec: the
// system's (/usr/bin/python3, which starts without a shim), else the
// first on $PATH, else "" (the Go holder maps the files itself).
func Python() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	return ""
}

// Alive returns how many holders are still running (not exited, not a
// zombie): a benchmark checks it after measuring, so a figure never comes
// from a workload that fell apart under it.
func (w *Workload) Alive() int {
	n := 0
	for _, c := range w.Holders {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Pid))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X' {
			n++
		}
	}
	return n
}

// Teardown is what Close did.
type Teardown struct {
	Killed, Reaped     int
	Unmounted, Mounted int
	Left               []string // mount points still in the table afterwards
}

func (t Teardown) String() string {
	s := fmt.Sprintf("teardown: %d holders killed, %d reaped; %d of %d mounts unmounted", t.Killed, t.Reaped, t.Unmounted, t.Mounted)
	if len(t.Left) > 0 {
		s += fmt.Sprintf("; LEFT: %s", strings.Join(t.Left, " "))
	} else {
		s += "; none left"
	}
	return s
}

// Close kills every holder by pid (SIGKILL through its pidfd, so a reused
// pid is never hit), reaps each, unmounts every mount, innermost first,
// and checks the mount table: nothing under the base may be left. The
// namespace itself dies with its last process.
func (w *Workload) Close() (Teardown, error) {
	var t Teardown
	var errs []error
	for _, c := range w.Holders {
		if err := c.kill(); err == nil {
			t.Killed++
		}
	}
	for _, c := range w.Holders {
		if err := c.wait(); err == nil {
			t.Reaped++
		} else {
			errs = append(errs, fmt.Errorf("reaping holder %d: %w", c.Pid, err))
		}
	}
	t.Mounted = len(w.mounted)
	for i := len(w.mounted) - 1; i >= 0; i-- {
		if err := unix.Unmount(w.mounted[i], unix.UMOUNT_NOFOLLOW); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", w.mounted[i], err))
			continue
		}
		t.Unmounted++
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && len(w.mounted) > 0 {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (f[4] == w.Layout.Base || strings.HasPrefix(f[4], w.Layout.Base+"/")) {
				t.Left = append(t.Left, f[4])
			}
		}
	}
	if len(t.Left) > 0 {
		errs = append(errs, fmt.Errorf("mounts left: %v", t.Left))
	}
	return t, errors.Join(errs...)
}

// EnvParentNS carries the mount namespace inode Enter left, so the
// re-executed process can prove it is elsewhere (CheckPrivate).
const EnvParentNS = "MOUNTTOP_BENCH_PARENT_NS"

// Enter re-executes this binary with args, as pid 1 of a new pid namespace
// (the caller then mounts its /proc: MountProc), in a new mount namespace with
// private propagation (Go's Unshareflags CLONE_NEWNS remounts / with
// MS_REC|MS_PRIVATE before exec) and waits for it; the child dies with us
// (Pdeathsig). SIGINT and SIGTERM sent to us are passed on to it, so it can
// tear down in order. It returns the child's exit code. Needs root.
func Enter(args []string, env []string) (int, error) {
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
	cmd.Env = append(append(os.Environ(), env...), EnvParentNS+"="+strconv.FormatUint(st.Ino, 10))
	// A pid namespace of its own too: the tools measured see the
	// workload's processes only, and a Thin workload's 20,000 pids are
	// counted against its own pid_max (pid_namespaces(7)).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Unshareflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("entering a private mount namespace: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// MountProc mounts a proc filesystem of our pid namespace on /proc, once
// CheckPrivate has said this mount namespace is ours alone, so that
// every tool run here sees the workload's processes only. Raising the
// namespace's pid_max to the top (kernel.pid_max is per pid namespace
// since Linux 6.14, never above the parent's) is tried; it fails
// harmlessly on older kernels.
func MountProc() error {
	if err := CheckPrivate(parentNS()); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc for our pid namespace: %w", err)
	}
	os.WriteFile("/proc/sys/kernel/pid_max", []byte("4194304"), 0)
	return PrivateRun()
}

// PrivateRun mounts a tmpfs of this namespace's own on /run: a staged
// unmount keeps its fence's stash and its fallback journal under /run,
// which is one tmpfs shared by every mount namespace, so a benchmark's
// runs left their directories in the machine's /run. Called once
// CheckPrivate has said this mount namespace is ours alone.
func PrivateRun() error {
	if err := unix.Mount("mounttop-bench-run", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a private /run: %w", err)
	}
	return nil
}

func parentNS() uint64 {
	n, _ := strconv.ParseUint(os.Getenv(EnvParentNS), 10, 64)
	return n
}

// inChildUserNS reports whether we run in a user namespace other than the
// initial one, whose uid_map is the identity over the whole range
// (user_namespaces(7)).
func inChildUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}
