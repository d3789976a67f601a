// Package bounded runs the system calls that can reach a filesystem's
// server (open, stat, statfs, syncfs, swapoff, a ptrace wait on a process
// stuck in one, ...) where they can be abandoned.
//
// A thread blocked in such a call cannot be interrupted: a FUSE request
// waits in request_wait_answer until the daemon answers, an NFS hard mount
// retries forever (DESIGN.md, "Dead servers"). So each call runs on a
// goroutine of its own, the caller waits for it at most a deadline, and a
// call that does not return in time is abandoned: its goroutine (and the
// OS thread under it) stays blocked while the program goes on. Abandoned
// calls are never silently lost: a Calls keeps them, with when they
// started, until they return, so the program can name what is still
// pending (an event, the journal, the second SIGINT).
package bounded

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrAbandoned matches (errors.Is) the error of a call that did not return
// before its deadline.
var ErrAbandoned = errors.New("abandoned")

// Abandoned is the error of a call that did not return before its deadline:
// it may still be blocked in the kernel, on the thread it was given.
type Abandoned struct {
	Op    string        // what was attempted, in words: "syncfs of /mnt/x"
	After time.Duration // how long it was waited for
	// Cancelled is set when the caller's context ended the wait before the
	// deadline.
	Cancelled bool
}

func (e *Abandoned) Error() string {
	if e.Cancelled {
		return fmt.Sprintf("%s: cancelled after %v; the call is still blocked in the kernel", e.Op, e.After.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s did not return within %v (the filesystem's server is not answering?); abandoned, it stays blocked in the kernel", e.Op, e.After.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrAbandoned) true.
func (e *Abandoned) Is(target error) bool { return target == ErrAbandoned }

// Pending is a call that was abandoned and has not returned yet.
type Pending struct {
	Op    string
	Since time.Time
}

// Late is an abandoned call that returned after all, with its error.
type Late struct {
	Op       string
	Since    time.Time
	Returned time.Time
	Err      error
}

// Calls runs bounded calls and remembers the abandoned ones. The zero value
// is ready; a nil *Calls runs calls bounded but remembers nothing.
type Calls struct {
	mu      sync.Mutex
	next    int
	pending map[int]Pending
	late    []Late
}

// Thread says what the goroutine of a call does to its OS thread.
type Thread int

const (
	// AnyThread runs the call on an ordinary goroutine.
	AnyThread Thread = iota
	// OwnFS runs the call on a goroutine locked to an OS thread that first
	// unshares its filesystem context (unshare(2) CLONE_FS), so that a
	// chdir, fchdir or setns there moves no other thread; the thread is
	// never unlocked and ends with the call. Never the main thread (see
	// onOwnThread).
	OwnFS
)

// Do runs fn, waiting at most limit (and no longer than ctx): its error, or
// an *Abandoned if it did not return in time. limit <= 0 means no deadline
// but ctx's. An abandoned fn keeps running; when it returns, c records it
// as Late.
func (c *Calls) Do(ctx context.Context, limit time.Duration, op string, th Thread, fn func() error) error {
	_, err := Value(ctx, c, limit, op, th, func() (struct{}, error) { return struct{}{}, fn() }, nil)
	return err
}

// Value is Do for a call that returns a value. discard, if not nil, is
// given the value of an abandoned call that returns without error after
// all (an fd to close, say), since nobody else will.
func Value[T any](ctx context.Context, c *Calls, limit time.Duration, op string, th Thread, fn func() (T, error), discard func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	start := time.Now()
	var mu sync.Mutex
	abandoned := false
	id := -1
	done := make(chan result, 1)
	body := func() {
		v, err := fn()
		mu.Lock()
		late := abandoned
		mu.Unlock()
		if late {
			if err == nil && discard != nil {
				discard(v)
			}
			c.returned(id, err)
			return
		}
		done <- result{v, err}
	}
	switch th {
	case OwnFS:
		go onOwnThread(func() {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				done <- result{err: fmt.Errorf("%s: unshare(CLONE_FS): %w", op, err)}
				return
			}
			body()
		})
	default:
		go body()
	}
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	var cancelled bool
	select {
	case r := <-done:
		return r.v, r.err
	case <-timeout:
	case <-ctx.Done():
		cancelled = true
	}
	mu.Lock()
	select {
	case r := <-done: // returned just now: not abandoned after all
		mu.Unlock()
		return r.v, r.err
	default:
	}
	abandoned = true
	id = c.add(op, start)
	mu.Unlock()
	var zero T
	return zero, &Abandoned{Op: op, After: time.Since(start), Cancelled: cancelled}
}

func (c *Calls) add(op string, since time.Time) int {
	if c == nil {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[int]Pending{}
	}
	c.next++
	c.pending[c.next] = Pending{Op: op, Since: since}
	return c.next
}

func (c *Calls) returned(id int, err error) {
	if c == nil || id < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[id]
	if !ok {
		return
	}
	delete(c.pending, id)
	c.late = append(c.late, Late{Op: p.Op, Since: p.Since, Returned: time.Now(), Err: err})
}

// Pending lists the abandoned calls still blocked, oldest first.
func (c *Calls) Pending() []Pending {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Pending, 0, len(c.pending))
	for _, p := range c.pending {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// Late lists the abandoned calls that returned after all, in the order they
// returned.
func (c *Calls) Late() []Late {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Late(nil), c.late...)
}

// onOwnThread runs fn on a goroutine locked to an OS thread that is never
// unlocked, so the thread ends with it and nothing else ever runs in what
// fn did to it. Never on the main thread: Go does not end that one (it
// parks it for good), and /proc/self follows the thread-group leader, so
// the whole process would read its mount table from wherever fn went. If
// the goroutine lands there, it keeps the main thread locked while another
// goroutine, which therefore runs elsewhere, does the work.
func onOwnThread(fn func()) {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		fn() // returns locked: the thread ends
		return
	}
	inner := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends
		defer close(inner)
		fn()
	}()
	<-inner
	runtime.UnlockOSThread()
}
