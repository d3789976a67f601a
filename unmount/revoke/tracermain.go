//go:build linux

package revoke

import (
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/termsafe"
)

// tracerEnv marks a process started as a tracer process (startTracer):
// tracerServe, or tracerServeLog when it has a log at tracerLogFD.
const (
	tracerEnv      = "MOUNTTOP_REVOKE_TRACER"
	tracerServe    = "1"
	tracerServeLog = "log"
)

// The tracer process's file descriptors besides 0-2 (/dev/null).
const (
	tracerConnFD = 3 // its end of the socketpair to mounttop
	tracerLogFD  = 4 // where it writes what it did (optional)
)

// TracerMain serves as a tracer process and exits, if this process was
// started as one by a Tracer; otherwise it returns at once. mounttop calls
// it first thing in main, and so does TestMain of every test binary that
// revokes through a Tracer (the test binary is then the tracer process).
func TracerMain() {
	if os.Getenv(tracerEnv) == "" {
		return
	}
	os.Exit(serveTracer())
}

// tracerServer is the tracer process's side of the connection.
type tracerServer struct {
	conn   *os.File
	log    *os.File // nil: no log
	parent int
	r      *Revoker

	wmu sync.Mutex
	enc *gob.Encoder

	mu       sync.Mutex
	inflight map[uint64]context.CancelFunc
	reqs     sync.WaitGroup
}

// serveTracer serves Revoke requests from mounttop until the connection
// ends, then finishes or restores every process it holds and returns.
//
// The connection ends when mounttop closes it (Tracer.Close) or exits,
// however it exits: an error, a signal, a panic or SIGKILL all close its
// end, and the read here sees EOF. Nothing else ends this process early:
// no PR_SET_PDEATHSIG; a session and process group of its own (the
// terminal's ^C and hangup go to mounttop's foreground group, not here);
// SIGINT, SIGTERM and SIGHUP sent to it only make it stop taking requests
// (as EOF does). A process inside an injected syscall is waited for,
// however long: it is stuck in the kernel anyway, and a tracer that exits
// before restoring it has it die of SIGTRAP when the call returns
// (DESIGN.md, "Dead servers").
func serveTracer() int {
	keep := []int{tracerConnFD}
	if os.Getenv(tracerEnv) == tracerServeLog {
		keep = append(keep, tracerLogFD)
	}
	closeInherited(keep...)
	s := &tracerServer{conn: os.NewFile(tracerConnFD, "mounttop"), inflight: map[uint64]context.CancelFunc{}}
	if len(keep) > 1 {
		s.log = os.NewFile(tracerLogFD, "log")
	}
	// No cwd on any mount that may be unmounted (exec.Cmd.Dir is "/"
	// already; this says so where it matters).
	if err := unix.Chdir("/"); err != nil {
		s.logf("chdir /: %v", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	go s.onSignals(sigs)

	dec := gob.NewDecoder(s.conn)
	s.enc = gob.NewEncoder(s.conn)
	var m message
	if err := dec.Decode(&m); err != nil || m.Hello == nil {
		s.logf("no hello from mounttop: %v", err)
		return 2
	}
	s.parent = m.Hello.Parent
	opts := []Option{StopTimeout(m.Hello.StopTimeout), InjectTimeout(m.Hello.InjectTimeout), Restored(s.restored)}
	if m.Hello.Workers > 0 {
		opts = append(opts, Workers(m.Hello.Workers))
	}
	if m.Hello.ProcRoot != "" {
		opts = append(opts, ProcRoot(m.Hello.ProcRoot))
	}
	s.r = New(opts...)
	s.send(message{Ready: true})
	s.logf("serving mounttop (pid %d)", s.parent)

	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				s.logf("mounttop (pid %d) closed the connection", s.parent)
			} else {
				s.logf("the connection to mounttop (pid %d) ended: %v", s.parent, err)
			}
			break
		}
		switch {
		case m.Revoke != nil:
			s.start(*m.Revoke)
		case m.Cancel != 0:
			s.cancel(m.Cancel)
		}
	}

	// Requests not taken up yet are dropped; the one being served runs
	// to its end; Close waits for every process left inside an injected
	// syscall to come out of it and be restored.
	s.mu.Lock()
	for _, cancel := range s.inflight {
		cancel()
	}
	s.mu.Unlock()
	if busy, stuck := s.r.holding(); busy > 0 {
		w := fmt.Sprintf("%d %s under way", busy, plural(busy, "revoke"))
		if len(stuck) > 0 {
			w += ", " + describeStuck(stuck)
		}
		s.logf("waiting for %s to end before exiting", w)
	}
	s.r.Close()
	s.reqs.Wait()
	s.logf("every process released; exiting")
	return 0
}

// start serves one request on a goroutine of its own (the Revoker queues
// them), and answers it.
func (s *tracerServer) start(req revokeRequest) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.inflight[req.ID] = cancel
	s.mu.Unlock()
	s.reqs.Add(1)
	go func() {
		defer s.reqs.Done()
		var rep Report
		var err error
		if req.PID == s.parent || req.PID == os.Getpid() {
			rep, err = Report{PID: req.PID}, fmt.Errorf("%w: process %d is mounttop itself", ErrPermission, req.PID)
		} else {
			rep, err = s.r.Revoke(ctx, req.PID, req.Targets)
		}
		s.mu.Lock()
		delete(s.inflight, req.ID)
		s.mu.Unlock()
		cancel()
		switch {
		case err == nil:
			s.logf("process %d: closed fds %v, unmapped %d ranges, chdir in %d threads", req.PID, rep.Closed, len(rep.Unmapped), len(rep.Chdir))
		default:
			s.logf("revoking process %d: %v", req.PID, err)
		}
		s.send(message{Answer: &answer{ID: req.ID, Report: rep, Err: toWire(err)}})
	}()
}

func (s *tracerServer) cancel(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel := s.inflight[id]; cancel != nil {
		cancel()
	}
}

// restored reports the late end of a stuck revoke to mounttop, if it is
// still there, and to the log.
func (s *tracerServer) restored(r Restore) {
	s.logf("%v", r)
	s.send(message{Restored: &restored{Stuck: *r.Stuck, Report: r.Report, Err: toWire(r.Err)}})
}

// send writes one message; with mounttop gone it fails, which changes
// nothing here.
func (s *tracerServer) send(m message) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.enc.Encode(m)
}

// onSignals turns SIGINT, SIGTERM and SIGHUP into the end of the
// connection's read side: no new request is taken, and the process exits
// once every process it holds is released, as after mounttop's exit.
func (s *tracerServer) onSignals(sigs <-chan os.Signal) {
	for sig := range sigs {
		s.logf("got %v: taking no new request; exiting once every process held is released", sig)
		_ = unix.Shutdown(tracerConnFD, unix.SHUT_RD)
	}
}

// logf writes one JSON line to the log, if there is one, in one write(2)
// (the log may be mounttop's journal, opened O_APPEND): "time", "tracer"
// (this process's pid) and "what", terminal-safe (termsafe.Name).
func (s *tracerServer) logf(format string, a ...any) {
	if s.log == nil {
		return
	}
	line, err := json.Marshal(struct {
		Time   time.Time     `json:"time"`
		Tracer int           `json:"tracer"`
		What   termsafe.Name `json:"what"`
	}{time.Now(), os.Getpid(), termsafe.Name(fmt.Sprintf(format, a...))})
	if err == nil {
		_, _ = s.log.Write(append(line, '\n'))
	}
}

// describeStuck lists processes left inside injected syscalls.
func describeStuck(stuck []*StuckError) string {
	var parts []string
	for _, e := range stuck {
		parts = append(parts, fmt.Sprintf("process %d (inside %s(%s))", e.PID, e.Syscall, e.Arg))
	}
	return strings.Join(parts, ", ")
}

// closeInherited closes every fd from 3 up but keep that names a file
// (a path: a regular file, directory, device), so that none holds a mount:
// exec.Cmd passes only what it was given, but mounttop may itself have
// inherited fds without close-on-exec from whoever started it. Anonymous
// inodes (the Go runtime's epoll and eventfd) are left alone.
func closeInherited(keep ...int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 || slices.Contains(keep, fd) {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "/") {
			_ = unix.Close(fd)
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
