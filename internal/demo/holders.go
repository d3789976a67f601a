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

// hold takes the role's arguments and holds what the role holds; it
// returns only when setting up failed.
func hold(role string, args []string) error {
	var h func(args []string) error
	n := 1 // how many arguments the role takes
	switch role {
	case RoleReader:
		h = holdReader
	case RoleShell:
		h, n = holdShell, 2
	case RoleMapper:
		h = holdMapper
	case RoleLocker:
		h, n = holdLocker, 2
	case RoleReopener:
		h = holdReopener
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	if err := need(args, n); err != nil {
		return err
	}
	return h(args)
}

// holdReader: FIFO, blocked in read(2) on it.
func holdReader(args []string) error {
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
}

// holdShell: DIR LOG, its cwd in DIR and LOG open for appending a line
// every 5s.
func holdShell(args []string) error {
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
}

// holdMapper: FILE, mapped (the fd closed) and read every 100ms.
func holdMapper(args []string) error {
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
}

// holdLocker: LOCK DATA, flock(LOCK_EX) on LOCK and DATA open read-write.
func holdLocker(args []string) error {
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
	return nil
}

// holdReopener: FILE, opened, read and closed by path every 300ms; only
// the first open must succeed (after a fence, later opens fail).
func holdReopener(args []string) error {
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

// forever blocks without tripping the runtime's deadlock check.
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}
