package unmount

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

// BenchmarkStagedIdle is the fixed cost of a staged unmount with no
// holders: plan scan, fence (beneath-swap), syncfs, rescan, real unmount,
// fence removal, verification. Revoke throughput per holder is measured in
// bench/ with the revoker itself.
func BenchmarkStagedIdle(b *testing.B) {
	testns.Require(b, testns.Namespace)
	dir := testns.MountDir(b, "target")
	in := b.TempDir()
	u := New(NewSystem(mustInspector(b), nil, StashIn(in)))
	b.Cleanup(func() { detachUnder(in) })
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := unix.Mount("bench", dir, "tmpfs", 0, ""); err != nil {
			b.Fatal(err)
		}
		m := mountAtTB(b, dir)
		b.StartTimer()
		p, err := u.Prepare(context.Background(), Plan{Target: m, Mode: ModeStaged})
		if err != nil {
			b.Fatal(err)
		}
		var last Event
		for ev := range u.Run(context.Background(), p) {
			last = ev
		}
		if last.Result == nil || !last.Result.Gone {
			b.Fatalf("not gone: %v", last.Err)
		}
	}
}
