// Package demo is the sandbox behind `mounttop demo`: a private mount
// namespace (inside a user namespace when not root, so no sudo is needed)
// with a few busy tmpfs mounts and demo holders of every kind, which the
// interactive view then runs inside.
//
// Nothing escapes it: the mounts live in a namespace that dies with the
// demo (mount_namespaces(7): a private namespace propagates nothing back),
// and every holder is a child of the demo process, with PR_SET_PDEATHSIG
// SIGKILL and an explicit kill by pid when the demo ends.
package demo

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment markers of the demo's re-executions of mounttop.
const (
	// EnvInside marks the mounttop process running inside the demo's
	// namespace ("root" or "userns").
	EnvInside = "MOUNTTOP_DEMO_NS"
	// EnvHolder makes a mounttop process a demo holder in the named role.
	EnvHolder = "MOUNTTOP_DEMO_HOLDER"
)

// Inside reports whether this process is the demo inside its namespace.
func Inside() bool { return os.Getenv(EnvInside) != "" }

// Enter re-executes mounttop (args are its arguments, such as "demo ...")
// in a new private mount namespace, in a new user namespace mapping the
// caller to root when not root, with the terminal passed through. SIGTERM,
// SIGHUP and SIGINT are forwarded, so the view inside restores the terminal
// and the holders are cleaned up. It returns the inner exit code.
func Enter(args []string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	attr := &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	mode := "root"
	if os.Geteuid() == 0 {
		attr.Unshareflags = unix.CLONE_NEWNS
	} else {
		mode = "userns"
		attr.Cloneflags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), EnvInside+"="+mode)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGHUP, unix.SIGINT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		if mode == "userns" {
			return 0, fmt.Errorf("cannot make a private user and mount namespace (%w); are unprivileged user namespaces disabled? sudo mounttop demo works without them", err)
		}
		return 0, fmt.Errorf("cannot make a private mount namespace: %w", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() < 0 {
			return 1, fmt.Errorf("the demo was killed: %v", ee)
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// Sandbox is the demo's mounts and holder processes.
type Sandbox struct {
	Root    string   // the demo's tmpfs, where everything else is mounted
	Start   string   // the mount the view opens on
	Mounts  []string // every demo mount point, parents first
	Holders []*Holder
}

// Holder is one demo holder process.
type Holder struct {
	Role string
	PID  int
	cmd  *exec.Cmd
	done chan struct{}
}

// Build mounts the sandbox and starts its holders. Call it only inside the
// demo's namespace (Inside): it makes every mount private first and then
// mounts over root (normally /mnt), which only this namespace sees.
func Build(root string) (s *Sandbox, err error) {
	if !Inside() {
		return nil, errors.New("demo: Build outside the demo's private namespace")
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("making every mount private: %w", err)
	}
	s = &Sandbox{Root: root}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.mount("mounttop-demo", root, "mode=755,size=16m"); err != nil {
		return nil, err
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, m := range []struct{ src, dir string }{
		{"demo-projects", "projects"},
		{"demo-cache", "projects/cache"},
		{"demo-media", "media"},
		{"demo-db", "db"},
		{"demo-scratch", "scratch"},
	} {
		if err := s.mount(m.src, p(m.dir), "mode=755,size=8m"); err != nil {
			return nil, err
		}
	}
	// A second view of the projects filesystem: its holders are shown as
	// "same filesystem elsewhere", and they keep the filesystem alive
	// after /mnt/projects itself is gone.
	if err := os.MkdirAll(p("backup"), 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mount(p("projects"), p("backup"), "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind %s on %s: %w", p("projects"), p("backup"), err)
	}
	s.Mounts = append(s.Mounts, p("backup"))
	files := map[string]string{
		"projects/src/main.go":    "package main\n\nfunc main() {}\n",
		"projects/build.log":      "",
		"projects/cache/index":    "demo index\n",
		"projects/notes.txt":      "read through the bind mount at /mnt/backup\n",
		"media/video.bin":         strings.Repeat("\x00", 1<<16),
		"db/data.db":              "demo data\n",
		"db/db.lock":              "",
		"scratch/nobody-here.txt": "this mount is idle: try e (expire)\n",
	}
	for rel, content := range files {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p(rel), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if err := unix.Mkfifo(p("projects/queue"), 0o644); err != nil {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for _, h := range []struct{ role, arg, arg2 string }{
		{RoleReader, p("projects/queue"), ""},
		{RoleShell, p("projects/src"), p("projects/build.log")},
		{RoleReopener, p("projects/cache/index"), ""},
		{RoleMapper, p("media/video.bin"), ""},
		{RoleLocker, p("db/db.lock"), p("db/data.db")},
		{RoleReopener, p("backup/notes.txt"), ""},
	} {
		args := []string{h.arg}
		if h.arg2 != "" {
			args = append(args, h.arg2)
		}
		hd, err := startHolder(exe, h.role, args)
		if err != nil {
			return nil, err
		}
		s.Holders = append(s.Holders, hd)
	}
	s.Start = p("projects")
	return s, nil
}

func (s *Sandbox) mount(src, dir, opts string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	s.Mounts = append(s.Mounts, dir)
	return nil
}

// startHolder starts mounttop itself as a demo holder and waits until it
// holds what its role says ("ready" on its stdout).
func startHolder(exe, role string, args []string) (*Holder, error) {
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = "demo-" + role
	cmd.Env = append(os.Environ(), EnvHolder+"="+role)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the demo %s: %w", role, err)
	}
	h := &Holder{Role: role, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		for sc.Scan() {
		}
	}()
	// Nothing waits for a holder while the demo runs: the view traces
	// holders to revoke them (ptrace), and a wait4 by their parent in this
	// same process would take their ptrace stops from the tracer. They
	// are reaped when the demo kills them (kill).
	select {
	case ok := <-ready:
		if ok {
			return h, nil
		}
	case <-time.After(10 * time.Second):
	}
	h.kill()
	return nil, fmt.Errorf("the demo %s did not start: %s", role, strings.TrimSpace(stderr.String()))
}

// kill ends the holder by its pid and reaps it.
func (h *Holder) kill() {
	_ = h.cmd.Process.Signal(unix.SIGCONT)
	_ = h.cmd.Process.Kill()
	go func() {
		_ = h.cmd.Wait()
		close(h.done)
	}()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
	}
}

// Close kills every holder (by pid) and detaches the demo's mounts. The
// namespace goes away with the demo in any case; this leaves nothing
// behind even while the demo process itself lives on.
func (s *Sandbox) Close() {
	for _, h := range s.Holders {
		h.kill()
	}
	s.Holders = nil
	for i := len(s.Mounts) - 1; i >= 0; i-- {
		_ = unix.Unmount(s.Mounts[i], unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	}
	s.Mounts = nil
}
