package ui

import (
	"fmt"
	"strings"
	"testing"

	"mounttop/inspect"
)

// longSnapshot is / with n tmpfs mounts under it, /srv/vol00 to
// /srv/vol(n-1), and one of them, /srv/vol00, held by holders processes.
func longSnapshot(n, holders int) *inspect.Snapshot {
	ms := []inspect.Mount{mnt(idRoot, idRoot, "/", "ext4", "/dev/vda1", 1)}
	for i := range n {
		ms = append(ms, mnt(idRoot+1+inspect.MountID(i), idRoot, fmt.Sprintf("/srv/vol%02d", i), "tmpfs", "vol", 100+i))
	}
	var hs []inspect.Holder
	for i := range holders {
		hs = append(hs, inspect.Holder{PID: 5000 + i, Comm: "worker", Cmdline: []string{fmt.Sprintf("worker-%02d", i)}, User: "root", State: 'S', Threads: 1,
			Uses: []inspect.Use{{Kind: inspect.UseCwd, FD: -1, Path: "/srv/vol00"}}})
	}
	s := inspect.NewSnapshot(ms, map[inspect.MountID][]inspect.Holder{idRoot + 1: hs}, nil)
	s.Taken = clock0
	return s
}

// cursorLine is the screen's line with the cursor of the pane whose
// first line (its column header) contains header, and its rows in view.
func cursorLine(t *testing.T, screen, header string, rows int) string {
	t.Helper()
	lines := strings.Split(screen, "\n")
	for i, l := range lines {
		if !strings.Contains(l, header) {
			continue
		}
		for _, r := range lines[i+1 : min(i+1+rows, len(lines))] {
			if strings.HasPrefix(r, "> ") {
				return r
			}
		}
		t.Fatalf("no cursor in the %d rows under %q:\n%s", rows, header, screen)
	}
	t.Fatalf("no %q on the screen:\n%s", header, screen)
	return ""
}

// In a list longer than its pane, every movement key keeps the selected
// row on screen: the end, page up and down, the first row; and the
// window moves only as far as it must.
func TestLongListsKeepTheCursorInView(t *testing.T) {
	const n = 60
	scan := &fakeScanner{snaps: []*inspect.Snapshot{longSnapshot(n, 40)}}
	d := newDriver(t, Options{Scanner: scan})
	d.started()
	tree := &d.m.tree
	body := tree.bodyHeight()
	if body >= n {
		t.Fatalf("the tree shows %d rows: the list of %d is not long", body, n+1)
	}
	mountOf := func() string {
		m, _ := d.m.snap.Mount(d.m.tree.selected)
		return m.Mountpoint
	}
	inView := func(step string, wantCursor int) {
		t.Helper()
		if d.m.tree.cursor != wantCursor {
			t.Fatalf("%s: cursor on row %d, want %d", step, d.m.tree.cursor, wantCursor)
		}
		from, to := d.m.tree.window.shown(len(d.m.tree.rows))
		if c := d.m.tree.cursor; c < from || c >= to || to-from != body {
			t.Fatalf("%s: rows %d-%d in view of %d, cursor on %d", step, from, to, len(d.m.tree.rows), c)
		}
		if line := cursorLine(t, d.screen(), "TARGET", body); !strings.Contains(line, mountOf()+" ") {
			t.Fatalf("%s: the cursor's line %q is not the selected %s", step, line, mountOf())
		}
	}
	last := n // the root is row 0
	d.key("end")
	inView("end", last)
	if from, _ := d.m.tree.window.shown(n + 1); from != n+1-body {
		t.Fatalf("end: the window starts at row %d, want the last page (%d)", from, n+1-body)
	}
	d.key("pgup")
	inView("pgup", last-body)
	d.key("pgup")
	inView("pgup again", last-2*body)
	d.key("pgdown")
	inView("pgdown", last-body)
	d.key("home")
	inView("home", 0)
	d.key("pgdown")
	inView("pgdown from the top", body)
	if from, _ := d.m.tree.window.shown(n + 1); from != 1 {
		t.Fatalf("pgdown from the top: the window starts at row %d, want 1 (it moves only as far as it must)", from)
	}
	for i := 0; i < 5; i++ {
		d.key("k")
	}
	inView("up five", body-5)
	d.key("G")
	inView("G", last)
	holdersKeepTheCursorInView(t, d)
}

// holdersKeepTheCursorInView: the holders pane, 40 processes long (their
// uses folded: they do not fit), scrolls as the tree does.
func holdersKeepTheCursorInView(t *testing.T, d *driver) {
	t.Helper()
	d.key("g", "j", "tab")
	if d.m.holders.mount != idRoot+1 {
		t.Fatalf("the holders pane shows %x, want /srv/vol00", d.m.holders.mount)
	}
	h := &d.m.holders
	hbody := h.bodyHeight()
	for _, k := range []string{"end", "pgup", "pgup", "home", "pgdown", "down", "G"} {
		d.key(k)
		from, to := h.window.shown(len(h.rows))
		if c := h.cursor; c < from || c >= to {
			t.Fatalf("holders %s: rows %d-%d in view, cursor on %d", k, from, to, c)
		}
		r, _ := h.current()
		if line := cursorLine(t, d.screen(), "PID", hbody); !strings.Contains(line, strings.TrimSpace(r.text)) {
			t.Fatalf("holders %s: the cursor's line %q is not the current row %q", k, line, r.text)
		}
	}
	if r, _ := h.current(); h.cursor != len(h.rows)-1 {
		t.Fatalf("G: the holders cursor is on %q, want the last row", r.text)
	}
}
