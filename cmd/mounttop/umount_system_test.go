package main

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// TestUmountRefusesSystemMounts: `umount --lazy` of /proc, /sys and
// /dev/pts (in the test's private namespace), and of a tmpfs mounted at
// /run itself, exit 2 with one line giving the reason and the override,
// and change nothing; an API filesystem mounted anywhere (a new mqueue
// instance at a temp dir) is refused by type, and --allow-system-mount
// lifts the refusal.
func TestUmountRefusesSystemMounts(t *testing.T) {
	testns.Require(t, testns.Namespace)
	if err := unix.Mount("mounttop-test", "/run", "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs on /run (test namespace): %v", err)
	}
	testns.CleanupMount(t, "/run")
	j := journalArgs(t)
	for _, mp := range []string{"/proc", "/sys", "/dev/pts", "/run"} {
		t.Run(mp, func(t *testing.T) {
			if !testns.IsMountPoint(mp) {
				t.Skipf("%s is not a mount point in this namespace", mp)
			}
			before := mountTable(t)
			r := runMounttop(t, "", nil, append(append([]string{"umount"}, j...), "--lazy", "--yes", mp)...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			for _, want := range []string{mp + " is a mount the system runs on", "--allow-system-mount"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q lacks %q", r.stderr, want)
				}
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Errorf("stderr is %d lines: %q", n+1, r.stderr)
			}
			if after := mountTable(t); after != before {
				t.Errorf("the mount table changed:\n%s\n->\n%s", before, after)
			}
		})
	}

	t.Run("an API filesystem at a temp dir", func(t *testing.T) {
		testns.Require(t, testns.RealRoot) // mqueue belongs to the IPC namespace's user namespace
		dir := testns.MountDir(t, "mqueue")
		if err := unix.Mount("mqueue", dir, "mqueue", 0, ""); err != nil {
			t.Fatalf("mount mqueue on %s: %v", dir, err)
		}
		testns.CleanupMount(t, dir)
		before := mountTable(t)
		r := runMounttop(t, "", nil, append(append([]string{"umount"}, j...), "--lazy", "--yes", dir)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "kernel API filesystem (mqueue)") {
			t.Fatalf("without the override: exit %d, stderr %q; want 2 and the reason", r.code, r.stderr)
		}
		if after := mountTable(t); after != before {
			t.Fatalf("the mount table changed:\n%s\n->\n%s", before, after)
		}
		r = runMounttop(t, "", nil, append(append([]string{"umount"}, j...), "--lazy", "--yes", "--allow-system-mount", dir)...)
		if r.code != 0 {
			t.Fatalf("with --allow-system-mount: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		if testns.IsMountPoint(dir) {
			t.Fatal("still mounted after an allowed lazy unmount")
		}
		if _, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		}
	})
}
