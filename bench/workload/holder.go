package workload

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment of a holder process: its index and the workload it belongs
// to. Set by Start, read by RunHolderIfAsked.
const (
	envHolder = "MOUNTTOP_BENCH_HOLDER" // holder index
	envSpec   = "MOUNTTOP_BENCH_SPEC"   // "procs,fds,mounts,shape,base"
	// EnvPython names the python3 binary RolePython holders exec ("" or
	// unset: none; the Go holder maps the files itself).
	EnvPython = "MOUNTTOP_BENCH_PYTHON"
)

// pythonHolder is what a RolePython holder runs: it imports modules with
// shared libraries (their mappings are on /, like any interpreter's), maps
// the files named in argv (closing each fd), reports ready on fd 3 and
// sleeps until killed. The fds, cwd and lock it inherits stay open.
const pythonHolder = `
import sys, os, mmap, signal
try:
    import json, decimal, hashlib, ssl, sqlite3, ctypes, socket, select, zlib, bz2, lzma, csv, datetime
except ImportError:
    pass
maps = []
try:
    for p in sys.argv[1:]:
        with open(p, "rb") as f:
            maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
except Exception as e:
    sys.stderr.write("workload python holder: %s\n" % e)
    os.write(3, b"E")
    sys.exit(1)
os.write(3, b"R")
os.close(3)
while True:
    signal.pause()
`

// readyFD is the holder's end of the readiness pipe (ExtraFiles[0]).
const readyFD = 3

// RunHolderIfAsked turns this process into holder i when Start started it
// as one, and never returns then; otherwise it returns at once. Call it
// first in main (or TestMain) of any binary that calls Start.
func RunHolderIfAsked() {
	v := os.Getenv(envHolder)
	if v == "" {
		return
	}
	if err := hold(v, os.Getenv(envSpec)); err != nil {
		// One line on the shared stderr, then 'E' so the generator stops
		// waiting at once instead of at its timeout.
		fmt.Fprintf(os.Stderr, "workload holder %s: %v\n", v, err)
		unix.Write(readyFD, []byte{'E'})
		os.Exit(1)
	}
	for {
		unix.Pause() // until SIGKILL; no Go runtime work while idle
	}
}

// held keeps the mappings reachable for the life of the process.
var held [][]byte

func hold(index, spec string) error {
	// A holder is an idle process: one P, no garbage collector, so the
	// runtime starts no threads it does not need (three in all).
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	i, err := strconv.Atoi(index)
	if err != nil {
		return fmt.Errorf("bad index %q", index)
	}
	s, l, err := parseSpec(spec)
	if err != nil {
		return err
	}
	// The soft fd limit to the hard one (Go's os package does this too
	// since 1.19; say it here rather than rely on it).
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	p := PlanFor(s, i)
	python := os.Getenv(EnvPython)
	execs := p.Role == RoleSleep || p.Role == RoleBash || p.Role == RolePython && python != ""
	// What an exec'd role must keep is opened without O_CLOEXEC.
	cloexec := unix.O_CLOEXEC
	if execs {
		cloexec = 0
	}
	// Raw fds, never *os.File: nothing may close them behind our back.
	for _, o := range p.Opens {
		path := l.Path(o.Mount, o.Name)
		if _, err := unix.Open(path, o.Flags|cloexec, 0); err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
	}
	if p.Deleted {
		path := l.Path(p.Home, "del/h"+index)
		if _, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|cloexec, 0o644); err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		if err := unix.Unlink(path); err != nil {
			return fmt.Errorf("unlink %s: %w", path, err)
		}
	}
	if p.Lock != NoLock {
		if err := takeLock(l.Path(p.Home, "lock/h"+index), p.Lock, cloexec); err != nil {
			return err
		}
	}
	maps := p.Maps
	if p.Mmap != "" {
		maps = append(maps, p.Mmap)
	}
	if p.Role == RolePython && python != "" {
		maps = nil // python maps them
	}
	for _, name := range maps {
		path := l.Path(p.Home, name)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		m, err := unix.Mmap(fd, 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("mmap %s: %w", path, err)
		}
		held = append(held, m)
		unix.Close(fd)
	}
	if p.Cwd != "" {
		if err := unix.Chdir(l.Path(p.Home, p.Cwd)); err != nil {
			return fmt.Errorf("chdir: %w", err)
		}
	}
	if p.Chroot != "" {
		if err := unix.Chroot(l.Path(p.Home, p.Chroot)); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
	}
	switch {
	case p.Role == RolePython && python != "":
		// python reports ready itself, once it has mapped the files.
		argv := []string{"python3", "-c", pythonHolder}
		for _, name := range p.Maps {
			argv = append(argv, l.Path(p.Home, name))
		}
		return unix.Exec(python, argv, os.Environ())
	case p.Role == RoleSleep || p.Role == RoleBash:
		// Ready now: everything is held, and stays held across the exec
		// (the generator then waits for the new command name).
		if _, err := unix.Write(readyFD, []byte{'R'}); err != nil {
			return fmt.Errorf("reporting ready: %w", err)
		}
		unix.Close(readyFD)
		if p.Role == RoleSleep {
			return unix.Exec("/bin/sleep", []string{"sleep", "infinity"}, os.Environ())
		}
		// bash blocks reading a pipe whose write end it holds itself.
		var fds [2]int
		if err := unix.Pipe(fds[:]); err != nil {
			return err
		}
		return unix.Exec("/bin/bash", []string{"bash", "-c", `read -r _ <&"$1"`, "bash", strconv.Itoa(fds[0])}, os.Environ())
	}
	if _, err := unix.Write(readyFD, []byte{'R'}); err != nil {
		return fmt.Errorf("reporting ready: %w", err)
	}
	unix.Close(readyFD)
	return nil
}

// takeLock opens path and holds an exclusive lock of the given kind on it
// (flock(2); fcntl(2) F_SETLK and F_OFD_SETLK). Each holder has its own
// lock file, so no holder ever waits.
func takeLock(path string, kind LockKind, cloexec int) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|cloexec, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	switch kind {
	case Flock:
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	case POSIX:
		err = unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Whence: 0})
	case OFD:
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Whence: 0})
	}
	if err != nil {
		return fmt.Errorf("%v lock on %s: %w", kind, path, err)
	}
	return nil
}

func (s Size) spec(l Layout) string {
	return fmt.Sprintf("%d,%d,%d,%d,%s", s.Procs, s.FDs, s.Mounts, s.Shape, l.Base)
}

func parseSpec(spec string) (Size, Layout, error) {
	f := strings.SplitN(spec, ",", 5)
	if len(f) != 5 {
		return Size{}, Layout{}, fmt.Errorf("bad spec %q", spec)
	}
	var n [4]int
	for k := range n {
		v, err := strconv.Atoi(f[k])
		if err != nil || v < 0 || v == 0 && k < 3 {
			return Size{}, Layout{}, fmt.Errorf("bad spec %q", spec)
		}
		n[k] = v
	}
	return Size{Procs: n[0], FDs: n[1], Mounts: n[2], Shape: Shape(n[3])}, Layout{Base: f[4]}, nil
}
