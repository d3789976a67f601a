package unmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/testns"
)

// roleUnprivileged (PATH): drops to uid/gid 65534 and tries Lazy on the
// mount at PATH, reporting "err: ERRNO: MESSAGE".
const roleUnprivileged = "unmount-unprivileged"

func init() {
	testns.RegisterRole(roleUnprivileged, 1, func(args []string) error {
		// Go applies setresuid/setresgid to every thread (Go 1.16+).
		if err := syscall.Setgroups(nil); err != nil {
			return err
		}
		if err := syscall.Setresgid(65534, 65534, 65534); err != nil {
			return err
		}
		if err := syscall.Setresuid(65534, 65534, 65534); err != nil {
			return err
		}
		in, err := inspect.New("/proc")
		if err != nil {
			return err
		}
		snap, err := in.Mounts(context.Background())
		if err != nil {
			return err
		}
		m, ok := snap.MountAt(args[0])
		if !ok {
			return fmt.Errorf("%s is not a mount point", args[0])
		}
		testns.Say("ready")
		err = New(NewSystem(in, nil)).Lazy(context.Background(), m)
		var errno unix.Errno
		errors.As(err, &errno)
		testns.Say("err: %s: %v", unix.ErrnoName(errno), err)
		testns.Forever()
		return nil
	})
}

// TestNeedsRoot: EPERM from umount2 reads "needs root".
func TestNeedsRoot(t *testing.T) {
	testns.Require(t, testns.RealRoot)
	dir := testns.Tmpfs(t, "")
	// Let uid 65534 reach the mount point (t.TempDir is 0700).
	for d := filepath.Dir(dir); d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v := testns.StartVictim(t, roleUnprivileged, dir)
	line := v.WaitLine(t, "err: ", 10*time.Second)
	if !strings.HasPrefix(line, "err: EPERM: umount --lazy "+dir+": needs root") {
		t.Fatalf("%q", line)
	}
	if !testns.IsMountPoint(dir) {
		t.Fatal("unmounted by an unprivileged caller")
	}
}
