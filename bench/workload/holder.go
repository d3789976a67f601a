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
	envSpec   = "MOUNTTOP_BENCH_SPEC"   // "procs,fds,mounts,base"
)

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
	// Raw fds, never *os.File: nothing may close them behind our back.
	for _, o := range p.Opens {
		path := l.Path(o.Mount, o.Name)
		if _, err := unix.Open(path, o.Flags|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
	}
	if p.Deleted {
		path := l.Path(p.Home, "del/h"+index)
		if _, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		if err := unix.Unlink(path); err != nil {
			return fmt.Errorf("unlink %s: %w", path, err)
		}
	}
	if p.Lock != NoLock {
		if err := takeLock(l.Path(p.Home, "lock/h"+index), p.Lock); err != nil {
			return err
		}
	}
	if p.Mmap != "" {
		path := l.Path(p.Home, p.Mmap)
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
	if _, err := unix.Write(readyFD, []byte{'R'}); err != nil {
		return fmt.Errorf("reporting ready: %w", err)
	}
	unix.Close(readyFD)
	return nil
}

// takeLock opens path and holds an exclusive lock of the given kind on it
// (flock(2); fcntl(2) F_SETLK and F_OFD_SETLK). Each holder has its own
// lock file, so no holder ever waits.
func takeLock(path string, kind LockKind) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
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
	return fmt.Sprintf("%d,%d,%d,%s", s.Procs, s.FDs, s.Mounts, l.Base)
}

func parseSpec(spec string) (Size, Layout, error) {
	f := strings.SplitN(spec, ",", 4)
	if len(f) != 4 {
		return Size{}, Layout{}, fmt.Errorf("bad spec %q", spec)
	}
	var n [3]int
	for k := range n {
		v, err := strconv.Atoi(f[k])
		if err != nil || v <= 0 {
			return Size{}, Layout{}, fmt.Errorf("bad spec %q", spec)
		}
		n[k] = v
	}
	return Size{Procs: n[0], FDs: n[1], Mounts: n[2]}, Layout{Base: f[3]}, nil
}
