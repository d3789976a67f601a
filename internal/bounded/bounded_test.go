package bounded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A call blocked in the kernel (open of a FIFO with no writer blocks until
// one comes, as an open on a dead FUSE server waits for its answer) is
// abandoned at its deadline, listed as pending, and recorded as late once
// it returns; an fd it returns late is handed to discard.
func TestAbandonedCallIsPendingThenLate(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var c Calls
	discarded := make(chan int, 1)
	start := time.Now()
	fd, err := Value(context.Background(), &c, 100*time.Millisecond, "open of the fifo", AnyThread,
		func() (int, error) { return unix.Open(fifo, unix.O_RDONLY|unix.O_CLOEXEC, 0) },
		func(fd int) { discarded <- fd; unix.Close(fd) })
	if !errors.Is(err, ErrAbandoned) {
		t.Fatalf("got fd %d, err %v; want ErrAbandoned", fd, err)
	}
	var ab *Abandoned
	if !errors.As(err, &ab) || ab.Op != "open of the fifo" || ab.Cancelled {
		t.Fatalf("error %#v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("abandoning took %v", took)
	}
	if p := c.Pending(); len(p) != 1 || p[0].Op != "open of the fifo" {
		t.Fatalf("pending %+v", p)
	}
	// The writer comes: the blocked open returns, late.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	select {
	case <-discarded:
	case <-time.After(5 * time.Second):
		t.Fatal("the late fd was never discarded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.Late()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if l := c.Late(); len(l) != 1 || l[0].Op != "open of the fifo" || l[0].Err != nil {
		t.Fatalf("late %+v", l)
	}
	if p := c.Pending(); len(p) != 0 {
		t.Fatalf("still pending %+v", p)
	}
}

func TestCancelledWait(t *testing.T) {
	var c Calls
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	defer close(release)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	err := c.Do(ctx, time.Hour, "blocked", AnyThread, func() error { <-release; return nil })
	var ab *Abandoned
	if !errors.As(err, &ab) || !ab.Cancelled {
		t.Fatalf("err %v", err)
	}
}

func TestQuickCallReturnsItsResult(t *testing.T) {
	var c Calls
	want := errors.New("boom")
	if err := c.Do(context.Background(), time.Second, "quick", AnyThread, func() error { return want }); err != want {
		t.Fatalf("err %v", err)
	}
	if len(c.Pending())+len(c.Late()) != 0 {
		t.Fatal("a call that returned in time is neither pending nor late")
	}
}

// OwnFS: a chdir on the call's thread moves no other thread's cwd, and the
// call never runs on the main thread.
func TestOwnFSThread(t *testing.T) {
	before, _ := os.Getwd()
	dir := t.TempDir()
	var tid int
	err := (*Calls)(nil).Do(context.Background(), 5*time.Second, "chdir", OwnFS, func() error {
		tid = unix.Gettid()
		if err := unix.Chdir(dir); err != nil {
			return err
		}
		wd, _ := os.Getwd()
		if wd != dir {
			return errors.New("chdir did not take on the call's thread")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tid == unix.Getpid() {
		t.Fatal("ran on the main thread")
	}
	if after, _ := os.Getwd(); after != before {
		t.Fatalf("the process's cwd moved: %s -> %s", before, after)
	}
}
