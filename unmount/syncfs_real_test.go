package unmount

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/testns"
)

// TestSyncfsReachesTheFencedFilesystem: under either fence, Syncfs writes
// the fenced filesystem's dirty data, not the fence's. ext4 counts what it
// writes in /sys/fs/ext4/DEV/lifetime_write_kbytes; data written moments
// ago is too young for periodic writeback (30s), so only the syncfs can
// move the count by the file's size.
func TestSyncfsReachesTheFencedFilesystem(t *testing.T) {
	for _, over := range []bool{false, true} {
		name := "beneath"
		if over {
			name = "over-mount"
		}
		t.Run(name, func(t *testing.T) {
			loop := testns.LoopExt4(t, 32)
			written := func() int {
				b, err := os.ReadFile("/sys/fs/ext4/" + filepath.Base(loop.Device) + "/lifetime_write_kbytes")
				if err != nil {
					t.Fatal(err)
				}
				n, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			in, err := inspect.New("/proc")
			if err != nil {
				t.Fatal(err)
			}
			sys := NewSystem(in, nil)
			snap, err := sys.Mounts(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			target, ok := snap.MountAt(loop.Dir)
			if !ok {
				t.Fatal("no mount")
			}
			unix.Sync() // start from a clean page cache
			const size = 4 << 20
			if err := os.WriteFile(filepath.Join(loop.Dir, "data"), make([]byte, size), 0o644); err != nil {
				t.Fatal(err)
			}
			before := written()
			// The engine's order: the root opened before the fence (under
			// the over-mount fence no path reaches the real mount).
			root, err := sys.OpenRoot(target.Mountpoint, target.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			f, err := sys.Fence(target, over)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sys.Rollback(f) })
			if err := sys.Syncfs(root); err != nil {
				t.Fatalf("Syncfs: %v", err)
			}
			if got := written() - before; got < size>>10 {
				t.Errorf("syncfs under the %s fence wrote %d KiB of the fenced filesystem, want at least %d", name, got, size>>10)
			}
		})
	}
}
