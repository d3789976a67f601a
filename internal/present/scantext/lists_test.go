package scantext

import (
	"testing"

	"mounttop/inspect"
)

// TestLists: the first max names, each escaped once (a path with a space
// or a newline quoted, a command's control character escaped), then how
// many more; nothing for none.
func TestLists(t *testing.T) {
	ms := []inspect.Mount{{Mountpoint: "/a"}, {Mountpoint: "/b c"}, {Mountpoint: "/d\ne"}}
	hs := []inspect.Holder{{PID: 12, Comm: "cat"}, {PID: 40, Comm: "x\x1b[2J"}, {PID: 41, Comm: "bash"}}
	for _, c := range []struct{ got, want string }{
		{MountList(ms, 5), `/a, "/b c", /d\ne`},
		{MountList(ms, 3), `/a, "/b c", /d\ne`},
		{MountList(ms, 1), `/a, and 2 more`},
		{MountList(nil, 5), ``},
		{HolderList(hs, 2), `pid 12 (cat), pid 40 (x\e[2J), and 1 more`},
		{HolderList(hs[:1], 3), `pid 12 (cat)`},
		{HolderList(hs, 0), `and 3 more`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
