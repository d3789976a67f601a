//go:build linux && amd64

package revoke

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// serve is a tracer goroutine: it locks itself to an OS thread, which then
// makes every ptrace call, and serves requests until the Revoker closes or
// it retires.
//
// The thread is never unlocked. When the goroutine returns, Go terminates
// the thread, and the kernel detaches every tracee the thread still has
// (exit_ptrace, kernel/ptrace.c), also threads that never reached a stop
// and so cannot be PTRACE_DETACHed (that needs a stopped tracee). That is
// how a tracer releases a process it could not finish with; it then hands
// over to a fresh tracer thread.
func (r *Revoker) serve() {
	runtime.LockOSThread()
	if unix.Gettid() == os.Getpid() {
		// Go parks the main thread rather than terminating it, so a
		// tracer there could not release tracees by exiting. Hold the
		// main thread until a replacement has locked another one (it
		// cannot be this one while we hold it), then give it back.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			r.serveLocked()
		}()
		<-locked
		runtime.UnlockOSThread()
		return
	}
	r.serveLocked()
}

func (r *Revoker) serveLocked() {
	for {
		select {
		case <-r.done:
			r.active.Done()
			return
		case req := <-r.reqs:
			if r.handle(req) {
				return
			}
		}
	}
}

// handle revokes one process and replies. It reports whether this tracer
// thread retires (its goroutine must return so the thread exits); in that
// case it has already started a replacement and left r.active.
func (r *Revoker) handle(req *request) (retire bool) {
	s := newSession(r, req.pid, req.targets)
	s.stuck = func(err error) {
		// Called once, mid-injection, from this goroutine: tell the caller
		// now and let a new tracer serve the others; this one stays with
		// the stuck process until it can restore and release it.
		rep := s.report()
		req.reply <- result{rep, err}
		r.startTracer()
		r.active.Done()
	}
	if err := req.ctx.Err(); err != nil {
		req.reply <- result{Report{PID: req.pid}, err}
		return false
	}
	err := s.run()
	if s.replied {
		return true
	}
	rep := s.report()
	if !s.retire {
		req.reply <- result{rep, err}
		return false
	}
	// Reply only once the thread is gone, so the caller finds the process
	// untraced when it looks.
	tid := unix.Gettid()
	r.startTracer()
	r.active.Done()
	go func() {
		waitThreadExit(tid, 2*time.Second)
		req.reply <- result{rep, err}
	}()
	return true
}

// waitThreadExit waits until thread tid of this process is gone from /proc.
func waitThreadExit(tid int, limit time.Duration) {
	path := fmt.Sprintf("/proc/self/task/%d", tid)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
