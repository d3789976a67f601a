package present

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"mounttop/inspect"
)

// hostileMount and hostileComm carry a newline and a colour escape: a
// terminal would break the line and turn the text red.
const (
	hostileMount = "/mnt/a\nb\x1b[31mc"
	hostileComm  = "x\ny\x1b[31mz"
	// What each must look like on a terminal: escaped exactly once.
	shownMount = `/mnt/a\nb\e[31mc`
	shownComm  = `x\ny\e[31mz`
)

// hostileSnapshot is / with one tmpfs at hostileMount, held by one
// process named hostileComm through an fd on a file under it.
func hostileSnapshot() (*inspect.Snapshot, *inspect.Mount) {
	const root, id inspect.MountID = 1, 2
	snap := inspect.NewSnapshot([]inspect.Mount{
		{ID: root, OldID: 1, ParentID: root, Major: 8, Minor: 1, Root: "/", Mountpoint: "/", FSType: "ext4", Source: "/dev/sda1", Options: "rw"},
		{ID: id, OldID: 2, ParentID: root, Minor: 40, Root: "/", Mountpoint: hostileMount, FSType: "tmpfs", Source: "src" + hostileComm, Options: "rw"},
	}, map[inspect.MountID][]inspect.Holder{
		id: {{PID: 4242, Comm: hostileComm, Cmdline: []string{hostileComm, hostileMount + "/f"}, User: "root", State: 'S',
			Uses: []inspect.Use{{Kind: inspect.UseFD, FD: 5, Path: hostileMount + "/f", Access: inspect.AccessReadWrite}}}},
	}, nil)
	m, _ := snap.Mount(id)
	return snap, m
}

// checkShownOnce fails unless text shows each hostile name escaped once:
// the escaped form is there, no doubly escaped form (\\n, \\e) is, and no
// raw newline inside a line or ESC reaches the terminal.
func checkShownOnce(t *testing.T, what, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
	if strings.Contains(text, `\\n`) || strings.Contains(text, `\\e`) {
		t.Errorf("%s escapes a name twice:\n%s", what, text)
	}
	if strings.ContainsRune(text, 0x1b) {
		t.Errorf("%s passes ESC through raw:\n%q", what, text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "b") || strings.HasPrefix(line, "y") {
			t.Errorf("%s breaks a name across lines:\n%s", what, text)
		}
	}
}

// checkJSONExact fails unless the JSON document holds each hostile name as
// an escaped JSON string (\n and \u001b, each once) that decodes back to
// the exact name.
func checkJSONExact(t *testing.T, what string, doc []byte, names ...string) {
	t.Helper()
	if bytes.ContainsRune(doc, 0x1b) || bytes.Count(doc, []byte("\n")) != 1 {
		t.Errorf("%s has a raw control character:\n%q", what, doc)
	}
	if bytes.Contains(doc, []byte(`\\n`)) || bytes.Contains(doc, []byte(`\\u001b`)) {
		t.Errorf("%s escapes a name twice:\n%s", what, doc)
	}
	var strs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			strs = append(strs, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	walk(v)
	for _, n := range names {
		found := false
		for _, s := range strs {
			found = found || s == n
		}
		if !found {
			t.Errorf("%s does not carry %q exactly: %q", what, n, strs)
		}
	}
}

// TestNamesEscapedOnce (issue 11 point 4): a mount point and a process
// name with a newline and a colour escape show escaped once (\n, not \\n)
// in list text and JSON, holders text and JSON, and the view's tree and
// holders rows.
func TestNamesEscapedOnce(t *testing.T) {
	snap, m := hostileSnapshot()

	var b bytes.Buffer
	if err := WriteList(&b, snap); err != nil {
		t.Fatal(err)
	}
	checkShownOnce(t, "list", b.String(), shownMount, "src"+shownComm)

	b.Reset()
	if err := WriteJSON(&b, List(snap, nil)); err != nil {
		t.Fatal(err)
	}
	checkJSONExact(t, "list --json", b.Bytes(), hostileMount, "src"+hostileComm)

	b.Reset()
	if err := WriteHolders(&b, snap, m); err != nil {
		t.Fatal(err)
	}
	checkShownOnce(t, "holders", b.String(), shownMount, shownComm, shownMount+"/f")

	b.Reset()
	if err := WriteJSON(&b, HoldersOf(snap, m)); err != nil {
		t.Fatal(err)
	}
	checkJSONExact(t, "holders --json", b.Bytes(), hostileMount, hostileComm, hostileMount+"/f")

	row := TreeColumns.Row(MountRow{Snap: snap, Mount: m, Prefix: "└─"}, TreeColumns.Widths(200, 2))
	checkShownOnce(t, "tree row", row, "└─"+shownMount, "src"+shownComm)

	h := &snap.HoldersOf(m.ID)[0]
	checkShownOnce(t, "holders pane row", HolderLine(h, true), shownComm+" "+shownMount+"/f")
	checkShownOnce(t, "holders pane use", UseLine(h.Uses[0]), shownMount+"/f")
}

// TestColumnTables: every column a view shows has a name, a help line and
// a cell, and the help lists the view's columns in order.
func TestColumnTables(t *testing.T) {
	for _, tc := range []struct {
		view  string
		help  []ColumnHelp
		names []string
	}{
		{"list", ListColumns.Help(), []string{"TARGET", "SOURCE", "FSTYPE", "MODE", "PROPAGATION", "ID", "HOLDERS", "AUTOMOUNT"}},
		{"tree", TreeColumns.Help(), []string{"TARGET", "FSTYPE", "SOURCE", "HOLD", "BUSY", "EXPIRY", "FLAGS"}},
		{"holders", HoldersColumns.Help(), []string{"PID", "USER", "COMM", "USE", "ARGS / PATH"}},
		{"holders pane", HoldersPaneColumns.Help(), []string{"PID", "USER", "USES", "COMMAND"}},
	} {
		if len(tc.help) != len(tc.names) {
			t.Fatalf("%s: %d columns, want %v", tc.view, len(tc.help), tc.names)
		}
		for i, h := range tc.help {
			if h.Name != tc.names[i] || h.Help == "" {
				t.Errorf("%s column %d = %+v, want %s with a help line", tc.view, i, h, tc.names[i])
			}
		}
	}
	for _, c := range MountColumns {
		if c.Cell == nil || c.Width <= 0 {
			t.Errorf("mount column %s has no cell or width", c.Name)
		}
	}
}

// TestTreeRowKeepsPathEnd: a cut TARGET keeps the tree drawing and the
// end of the path, marks the cut, and the row is as wide as its columns.
func TestTreeRowKeepsPathEnd(t *testing.T) {
	snap, _ := hostileSnapshot()
	m := &inspect.Mount{ID: 9, ParentID: 1, Mountpoint: "/very/long/path/to/the/interesting/end", FSType: "tmpfs", Source: "s", Options: "rw"}
	ws := TreeColumns.Widths(100, 2)
	row := TreeColumns.Row(MountRow{Snap: snap, Mount: m, Prefix: "│ └─"}, ws)
	if !strings.HasPrefix(row, "│ └─…") || !strings.Contains(row, "interesting/end ") {
		t.Errorf("cut TARGET lost the drawing or the path's end: %q", row)
	}
	want := len(ws) - 1
	for _, w := range ws {
		want += w
	}
	if got := ansi.StringWidth(row); got != want || want != 98 {
		t.Errorf("row is %d cells, want %d (100 less the gutter): %q", got, want, row)
	}
}
