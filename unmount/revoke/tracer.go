//go:build linux && amd64

package revoke

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// serve starts a tracer goroutine: locked to an OS thread, which then makes
// every ptrace call, it serves requests until the Revoker closes or it
// retires.
func (r *Revoker) serve() { goLocked(r.serveLocked) }

// goLocked runs f on a new goroutine locked to an OS thread that may exit,
// and never unlocks it.
//
// When f returns, Go terminates the thread, and the kernel detaches every
// tracee the thread still has (exit_ptrace, kernel/ptrace.c), also threads
// that never reached a stop and so cannot be PTRACE_DETACHed (that needs a
// stopped tracee). That is how a tracer releases a process it could not
// finish with.
//
// Not every thread may exit. Go parks the main thread instead of
// terminating it. And a thread that once forked a child (exec.Cmd forks on
// whatever thread the goroutine runs on) would, by exiting, reparent that
// child and fire its PR_SET_PDEATHSIG (exec.Cmd's Pdeathsig), which is
// "parent thread died" (prctl(2)), killing it. A goroutine that lands on
// such a thread holds it, so the runtime must give the next goroutine
// another thread, and lets go of it once a usable one is locked.
func goLocked(f func()) {
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		if tid != os.Getpid() && !hasChildren(tid) {
			f()
			return
		}
		locked := make(chan struct{})
		goLocked(func() {
			close(locked)
			f()
		})
		<-locked
		runtime.UnlockOSThread()
	}()
}

// hasChildren reports whether thread tid of this process has forked child
// processes that are still around (/proc/PID/task/TID/children, proc(5)).
func hasChildren(tid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/children", tid))
	return err == nil && len(strings.TrimSpace(string(b))) > 0
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
	if err := req.ctx.Err(); err != nil {
		req.reply <- result{Report{PID: req.pid}, err}
		return false
	}
	if e := r.begin(req.pid); e != nil {
		req.reply <- result{Report{PID: req.pid}, e}
		return false
	}
	s := newSession(r, req.pid, req.targets)
	s.wake = r.wakeups.add()
	defer r.wakeups.remove(s.wake)
	s.stuck = func(err error) {
		// Called once, mid-injection, from this goroutine: tell the caller
		// now and let a new tracer serve the others; this one stays with
		// the stuck process until it can restore and release it.
		rep := s.report()
		r.markStuck(req.pid, err)
		req.reply <- result{rep, err}
		r.startTracer()
		r.active.Done()
	}
	err := s.runGuarded()
	rep := s.report()
	if !s.replied && !s.retire {
		req.reply <- result{rep, err}
		r.end(req.pid, rep, err)
		return false
	}
	// This thread exits. Reply (or report the late end of a stuck revoke)
	// only once it is gone, so the caller finds the process untraced when
	// it looks: the kernel detaches whatever release could not as the
	// thread exits (exit_ptrace).
	tid := unix.Gettid()
	if !s.replied {
		r.startTracer()
		r.active.Done()
	}
	go func() {
		waitThreadExit(tid, 2*time.Second)
		if !s.replied {
			req.reply <- result{rep, err}
		}
		r.end(req.pid, rep, err)
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

// wakeups hands SIGCHLD on to the sessions waiting for a tracee's stop
// (backoff): the kernel sends the tracer's process SIGCHLD for every ptrace
// stop and exit of a tracee, whichever thread traces it, so each waiting
// session is told and polls its own threads (wait4 on their TIDs).
type wakeups struct {
	sig     chan os.Signal
	once    sync.Once
	mu      sync.Mutex
	waiters map[chan struct{}]bool
}

func newWakeups() *wakeups {
	w := &wakeups{sig: make(chan os.Signal, 1), waiters: map[chan struct{}]bool{}}
	signal.Notify(w.sig, unix.SIGCHLD)
	go func() {
		for range w.sig {
			w.mu.Lock()
			for c := range w.waiters {
				select {
				case c <- struct{}{}:
				default: // already told, not yet looked
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// add returns a channel told of every SIGCHLD from now on, until remove.
func (w *wakeups) add() chan struct{} {
	c := make(chan struct{}, 1)
	w.mu.Lock()
	w.waiters[c] = true
	w.mu.Unlock()
	return c
}

func (w *wakeups) remove(c chan struct{}) {
	w.mu.Lock()
	delete(w.waiters, c)
	w.mu.Unlock()
}

// stop ends the forwarding; SIGCHLD goes back to what it was
// (signal.Stop). Calls after the first do nothing.
func (w *wakeups) stop() {
	w.once.Do(func() {
		signal.Stop(w.sig)
		close(w.sig)
	})
}
