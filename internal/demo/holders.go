package demo

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The demo holders: each is mounttop re-executed with EnvHolder set to its
// role. Each sets its process name (comm) so the holders pane reads like a
// real incident, prints "ready" once it holds what it should, and then
// keeps holding until it is revoked or killed.
const (
	RoleReader   = "reader"   // FIFO: blocked in read(2), as a stuck consumer
	RoleShell    = "shell"    // DIR LOG: cwd in DIR, LOG open for appending, like a login shell running a build
	RoleMapper   = "player"   // FILE: maps FILE and reads it every 100ms, like a media player
	RoleLocker   = "dbserver" // LOCK DATA: flock(LOCK_EX) on LOCK, DATA open read-write
	RoleReopener = "indexer"  // FILE: opens, reads and closes FILE by path every 300ms
)

// RunHolder runs this process as the demo holder in role and never
// returns unless setting up fails (the exit code).
func RunHolder(role string, args []string) int {
	// A holder never outlives the demo: PR_SET_PDEATHSIG is also set by
	// the parent, this makes sure the parent still exists.
	if os.Getppid() == 1 {
		return 1
	}
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append([]byte(role), 0)[0])), 0, 0, 0)
	// hold returns only when setting up failed.
	fmt.Fprintf(os.Stderr, "demo %s: %v\n", role, hold(role, args))
	return 1
}

func ready() { fmt.Println("ready") }

func need(args []string, n int) error {
	if len(args) < n {
		return fmt.Errorf("needs %d arguments, got %q", n, args)
	}
	return nil
}

func hold(role string, args []string) error {
	switch role {
	case RoleReader:
		if err := need(args, 1); err != nil {
			return err
		}
		// O_RDWR: the open of a FIFO does not wait for a writer.
		fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ready()
		buf := make([]byte, 64)
		for {
			if _, err := unix.Read(fd, buf); err != nil {
				// Revoked (EBADF): nothing left to wait for.
				forever()
			}
		}
	case RoleShell:
		if err := need(args, 2); err != nil {
			return err
		}
		if err := unix.Chdir(args[0]); err != nil {
			return err
		}
		fd, err := unix.Open(args[1], unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ready()
		for i := 0; ; i++ {
			_, _ = unix.Write(fd, []byte(fmt.Sprintf("build step %d\n", i)))
			time.Sleep(5 * time.Second)
		}
	case RoleMapper:
		if err := need(args, 1); err != nil {
			return err
		}
		fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		mem, err := unix.Mmap(fd, 0, 1<<16, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		unix.Close(fd)
		ready()
		// After a revoke the mapping is PROT_NONE: the read faults, and
		// SetPanicOnFault lets the player note it and carry on.
		debug.SetPanicOnFault(true)
		for {
			func() {
				defer func() { _ = recover() }()
				_ = *(*byte)(unsafe.Pointer(&mem[0]))
			}()
			time.Sleep(100 * time.Millisecond)
		}
	case RoleLocker:
		if err := need(args, 2); err != nil {
			return err
		}
		lk, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Flock(lk, unix.LOCK_EX); err != nil {
			return err
		}
		if _, err := unix.Open(args[1], unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		ready()
		forever()
	case RoleReopener:
		if err := need(args, 1); err != nil {
			return err
		}
		buf := make([]byte, 512)
		first := true
		for {
			fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if first {
				if err != nil {
					return err
				}
				ready()
				first = false
			}
			if err == nil {
				_, _ = unix.Read(fd, buf)
				time.Sleep(150 * time.Millisecond)
				unix.Close(fd)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	return fmt.Errorf("unknown role %q", role)
}

// forever blocks without tripping the runtime's deadlock check.
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}
