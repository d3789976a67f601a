package ui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"mounttop/inspect"
)

// TestPaneRowsEscapeOnce (issue 11 point 4): the tree and holders panes
// show a mount point and a process name holding a newline and a colour
// escape as present renders them, escaped once (\n and \e, never \\n),
// with no raw control reaching the terminal.
func TestPaneRowsEscapeOnce(t *testing.T) {
	const mp, comm = "/mnt/a\nb\x1b[31mc", "x\ny\x1b[31mz"
	const id inspect.MountID = 2
	snap := inspect.NewSnapshot([]inspect.Mount{
		mnt(idRoot, idRoot, "/", "ext4", "/dev/vda1", 1),
		mnt(id, idRoot, mp, "tmpfs", "demo", 40),
	}, map[inspect.MountID][]inspect.Holder{
		id: {{PID: 4242, Comm: comm, User: "root", State: 'S',
			Uses: []inspect.Use{{Kind: inspect.UseFD, FD: 5, Path: mp + "/f", Access: inspect.AccessRead}}}},
	}, nil)
	styles, keys := newStyles(), defaultKeys()

	tree := newTreePane(&styles, &keys, newExpiryMarks())
	tree.SetSize(120, 10)
	tree.setSnapshot(snap)
	holders := newHoldersPane(&styles, &keys)
	holders.SetSize(120, 10)
	holders.show(snap, id, expiryMark{}, true)

	for _, c := range []struct{ pane, view, want string }{
		{"tree", tree.View(), `/mnt/a\nb\e[31mc`},
		{"holders", holders.View(), `[x\ny\e[31mz]`},
		{"holders", holders.View(), `/mnt/a\nb\e[31mc/f`},
	} {
		plain := ansi.Strip(c.view)
		if !strings.Contains(plain, c.want) {
			t.Errorf("%s pane lacks %q:\n%s", c.pane, c.want, plain)
		}
		if strings.Contains(plain, `\\`) || strings.ContainsRune(plain, 0x1b) {
			t.Errorf("%s pane escapes twice or passes ESC raw:\n%q", c.pane, plain)
		}
	}
}
