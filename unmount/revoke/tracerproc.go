//go:build linux

package revoke

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TracerLog has the tracer process write one JSON line per thing it does
// (a revoke, a process restored after a stuck call, its exit) to f, also
// after mounttop is gone: {"time":..., "tracer": PID, "what": "..."}. f is
// passed to it as an fd (mounttop's journal, opened O_APPEND, fits); it is
// never its stderr, so a closed pipe cannot kill it with SIGPIPE.
func TracerLog(f *os.File) Option { return func(c *config) { c.log = f } }

// tracerExe is the program run as the tracer process: this one, which
// must call TracerMain first thing (mounttop's main and the test binaries'
// TestMain do). /proc/self/exe still runs it if the file was replaced or
// deleted since it started.
const tracerExe = "/proc/self/exe"

// Timeouts of mounttop's side of the connection: the tracer process must
// say it is serving within tracerStartWait of being started, a message
// must be taken within tracerSendWait, and Close waits tracerCloseWait for
// an idle tracer process to exit, tracerCloseStuckWait for one known to
// hold a process inside an injected syscall.
const (
	tracerStartWait      = 10 * time.Second
	tracerSendWait       = 5 * time.Second
	tracerCloseWait      = 2 * time.Second
	tracerCloseStuckWait = 200 * time.Millisecond
)

// Tracer revokes through a tracer process: a child started from this
// program (/proc/self/exe, entering at TracerMain) that runs a Revoker and serves Revoke
// requests over a socketpair. The point is that the tracer outlives
// mounttop when it must: if mounttop dies, however (SIGKILL included),
// while a process is inside an injected syscall, the tracer process waits
// for the call to return, restores the process and releases it, then
// exits. A tracer inside mounttop would die with it, and its tracee with
// SIGTRAP when the call returned (DESIGN.md, "Dead servers").
//
// The tracer process is started by the first Revoke; a Tracer that never
// revokes starts nothing. It is safe for concurrent use.
type Tracer struct {
	cfg config

	mu     sync.Mutex
	proc   *tracerProc
	closed bool
}

// NewTracer returns a Tracer; its options are those of New, and
// TracerLog.
func NewTracer(opts ...Option) *Tracer { return &Tracer{cfg: newConfig(opts)} }

// tracerProc is one tracer process and the connection to it.
type tracerProc struct {
	cfg  *config
	pid  int
	conn *os.File
	wmu  sync.Mutex
	enc  *gob.Encoder

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan answer
	stuck   map[int]*StuckError
	// asked are the requests sent and not answered yet, also those whose
	// caller stopped waiting (the tracer process answers every one, when
	// it has finished the revoke or restored the process): Holding.
	asked map[uint64]Held

	ready  chan struct{} // closed when it said it is serving
	lost   chan struct{} // closed when the connection ended
	exited chan struct{} // closed when it has exited and been waited for
}

// Held is a process the tracer process is working on: a revoke asked for
// and not answered yet (Stuck nil), or one left inside an injected syscall
// that it restores when the call returns.
type Held struct {
	PID   int
	Since time.Time
	Stuck *StuckError
}

// Holding lists the processes the tracer process holds or works on now,
// by pid: what mounttop leaves behind if it exits at once (the tracer
// process finishes each revoke, or restores the process, on its own).
func (t *Tracer) Holding() []Held {
	t.mu.Lock()
	p := t.proc
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.exited:
		return nil
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	byPID := map[int]Held{}
	for _, h := range p.asked {
		if old, ok := byPID[h.PID]; !ok || h.Since.Before(old.Since) {
			byPID[h.PID] = h
		}
	}
	for pid, e := range p.stuck {
		h := byPID[pid]
		h.PID, h.Stuck = pid, e
		if h.Since.IsZero() {
			h.Since = time.Now().Add(-e.After)
		}
		byPID[pid] = h
	}
	out := make([]Held, 0, len(byPID))
	for _, h := range byPID {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// Workers is how many processes the tracer process revokes at once
// (Workers): callers gain nothing from asking for more at a time.
func (t *Tracer) Workers() int { return t.cfg.workers }

// PID is the pid of the tracer process, 0 while there is none.
func (t *Tracer) PID() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proc == nil {
		return 0
	}
	return t.proc.pid
}

// Revoke is Revoker.Revoke run in the tracer process, started if need be.
// Waiting for the answer ends with ctx: the caller gets ctx's error at
// once, and the tracer process, told so, drops the request if it has not
// taken it up, or finishes the revoke (or restores the process) on its
// own.
func (t *Tracer) Revoke(ctx context.Context, pid int, tg Targets) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{PID: pid}, err
	}
	if tg.empty() {
		return Report{PID: pid}, nil
	}
	p, err := t.process(ctx)
	if err != nil {
		return Report{PID: pid}, err
	}
	id, ch := p.await()
	p.mu.Lock()
	p.asked[id] = Held{PID: pid, Since: time.Now()}
	p.mu.Unlock()
	if err := p.send(message{Revoke: &revokeRequest{ID: id, PID: pid, Targets: tg}}); err != nil {
		p.forget(id)
		p.mu.Lock()
		delete(p.asked, id)
		p.mu.Unlock()
		return Report{PID: pid}, fmt.Errorf("asking the tracer process (pid %d) to revoke process %d: %w", p.pid, pid, err)
	}
	select {
	case a := <-ch:
		return a.Report, fromWire(a.Err)
	case <-p.lost:
		select {
		case a := <-ch: // answered just before the connection ended
			return a.Report, fromWire(a.Err)
		default:
		}
		return Report{PID: pid}, fmt.Errorf("the tracer process (pid %d) went away before answering about process %d", p.pid, pid)
	case <-ctx.Done():
		p.forget(id)
		_ = p.send(message{Cancel: id})
		return Report{PID: pid}, fmt.Errorf("revoking process %d: %w; the tracer process (pid %d) finishes it or restores the process on its own", pid, ctx.Err(), p.pid)
	}
}

// process returns the running tracer process, starting one if there is
// none or the last one went away; the start is waited for until ctx ends.
func (t *Tracer) process(ctx context.Context) (*tracerProc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if t.proc != nil {
		select {
		case <-t.proc.lost:
		default:
			return t.proc, nil
		}
	}
	p, err := startTracer(ctx, &t.cfg)
	if err != nil {
		return nil, err
	}
	t.proc = p
	return p, nil
}

// startTracer starts a tracer process and waits until it serves, at most
// tracerStartWait and until ctx ends.
func startTracer(ctx context.Context, cfg *config) (*tracerProc, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("starting the tracer process: socketpair: %w", err)
	}
	// Ours non-blocking, so that os.File polls it and sends can have a
	// deadline; theirs blocking, as the tracer process reads it.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("starting the tracer process: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "tracer"), os.NewFile(uintptr(fds[1]), "tracer")
	defer theirs.Close()

	cmd := exec.Command(tracerExe)
	cmd.Args = []string{"mounttop-revoke-tracer"}
	// updatemaxprocs=0: the Go runtime would otherwise keep a cgroup
	// file open for good to follow the CPU limit (Go 1.25), an fd on a
	// mount that the tracer process has no use for.
	cmd.Env = []string{tracerEnv + "=" + tracerServe, "GODEBUG=updatemaxprocs=0"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{theirs}
	if cfg.log != nil {
		cmd.Env[0] = tracerEnv + "=" + tracerServeLog
		cmd.ExtraFiles = append(cmd.ExtraFiles, cfg.log)
	}
	// A session of its own: no controlling terminal, out of mounttop's
	// process group, so the terminal's ^C and hangup do not reach it. No
	// Pdeathsig: it must outlive mounttop when it holds a process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, fmt.Errorf("starting the tracer process %s: %w", tracerExe, err)
	}
	p := &tracerProc{cfg: cfg, pid: cmd.Process.Pid, conn: ours, enc: gob.NewEncoder(ours),
		waiting: map[uint64]chan answer{}, stuck: map[int]*StuckError{}, asked: map[uint64]Held{},
		ready: make(chan struct{}), lost: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	go p.read()
	err = p.send(message{Hello: &hello{Parent: os.Getpid(), StopTimeout: cfg.stopTimeout, InjectTimeout: cfg.injectTimeout,
		Workers: cfg.workers, ProcRoot: cfg.procRoot}})
	if err == nil {
		select {
		case <-p.ready:
			return p, nil
		case <-p.lost:
			err = errors.New("it exited before serving (does the program call revoke.TracerMain?)")
		case <-time.After(tracerStartWait):
			err = fmt.Errorf("it did not answer within %v", tracerStartWait)
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	_ = cmd.Process.Kill() // our child, by its pid; it holds nothing yet
	ours.Close()
	return nil, fmt.Errorf("starting the tracer process %s (pid %d): %w", tracerExe, p.pid, err)
}

// read takes the tracer process's messages until the connection ends.
func (p *tracerProc) read() {
	defer close(p.lost)
	dec := gob.NewDecoder(p.conn)
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			return
		}
		switch {
		case m.Ready:
			close(p.ready)
		case m.Answer != nil:
			p.answered(*m.Answer)
		case m.Restored != nil:
			r := Restore{PID: m.Restored.Stuck.PID, Stuck: &m.Restored.Stuck, Report: m.Restored.Report, Err: fromWire(m.Restored.Err)}
			p.mu.Lock()
			delete(p.stuck, r.PID)
			p.mu.Unlock()
			if p.cfg.restored != nil {
				p.cfg.restored(r)
			}
		}
	}
}

// answered hands an answer to its caller, if it still waits, and keeps
// a stuck process in mind either way.
func (p *tracerProc) answered(a answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.asked, a.ID)
	if a.Err != nil && a.Err.Stuck != nil {
		p.stuck[a.Err.Stuck.PID] = a.Err.Stuck
	}
	if ch := p.waiting[a.ID]; ch != nil {
		ch <- a
		delete(p.waiting, a.ID)
	}
}

// await registers a request ID and where its answer will arrive.
func (p *tracerProc) await() (uint64, chan answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	ch := make(chan answer, 1)
	p.waiting[p.next] = ch
	return p.next, ch
}

func (p *tracerProc) forget(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.waiting, id)
}

// send writes one message, waiting at most tracerSendWait for the tracer
// process to take it.
func (p *tracerProc) send(m message) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(tracerSendWait))
	return p.enc.Encode(m)
}

// Close ends the connection to the tracer process, which then exits once
// every process it holds is released. Close waits a short while for that
// (tracerCloseWait; tracerCloseStuckWait when a process is known to be
// stuck); if the tracer process still holds a process
// inside an injected syscall then, Close returns an error naming it and
// leaves the tracer process to finish on its own: the process is restored
// and released when its call returns, whether mounttop is still running
// or not.
func (t *Tracer) Close() error {
	t.mu.Lock()
	t.closed = true
	p := t.proc
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	if rc, err := p.conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_WR) })
	}
	p.mu.Lock()
	wait := tracerCloseWait
	if len(p.stuck) > 0 || len(p.asked) > 0 {
		wait = tracerCloseStuckWait
	}
	p.mu.Unlock()
	select {
	case <-p.exited:
		p.conn.Close()
		return nil
	case <-time.After(wait):
	}
	var held []string
	for _, h := range t.Holding() {
		if h.Stuck != nil {
			held = append(held, fmt.Sprintf("pid %d (inside %s(%s)): it restores and releases it when the call returns", h.PID, h.Stuck.Syscall, h.Stuck.Arg))
		} else {
			held = append(held, fmt.Sprintf("pid %d (a revoke under way): it finishes the revoke (once an injected call returns: on a dead server, when it answers or the connection is aborted) or, if the process does not stop, gives it up untouched; then it releases it", h.PID))
		}
	}
	if len(held) == 0 {
		held = []string{"a process it is releasing"}
	}
	return fmt.Errorf("the tracer process (pid %d) still holds %s; then it exits on its own", p.pid, strings.Join(held, "; "))
}
