package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/internal/termsafe"
	"mounttop/internal/testns"
	"mounttop/unmount"
)

// hostile is text a terminal acts on: ESC and BEL (an OSC title), a C1 CSI
// (U+009B), a right-to-left override (U+202E) and a right-to-left isolate
// (U+2067).
const hostile = "\x1b]0;x\x07\u009b2J\u202eevil\u2067"

// rawControls returns the terminal controls found raw in b: C0 but tab and
// newline, DEL, C1 and the bidi controls (U+202A-U+202E, U+2066-U+2069).
func rawControls(b []byte) []rune {
	var found []rune
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			found = append(found, r)
		}
	}
	return found
}

// TestJSONWarningsAndNamesAreExactAndSafe (issue 9 point 8b): `list --json`
// and `holders --json` carry a mount point and a warning holding ESC, C1
// and bidi controls as \u escapes (no raw control byte reaches a terminal
// that shows the JSON) and decode back to the exact text. The warning is a
// real one: the proc root given with --proc is named in "unique mount IDs
// unavailable ... proc root DIR is not the live /proc".
func TestJSONWarningsAndNamesAreExactAndSafe(t *testing.T) {
	evil := filepath.Join(t.TempDir(), "m"+hostile)
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("src"+hostile, evil, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, evil)
	// A proc root whose path carries the same text, holding a copy of our
	// mount table.
	proc := filepath.Join(t.TempDir(), "proc"+hostile)
	table, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), table, 0o644); err != nil {
		t.Fatal(err)
	}

	type mount struct{ Mountpoint, Source string }
	for _, args := range [][]string{{"list", "--json", "--proc", proc}, {"holders", "--json", "--proc", proc, evil}} {
		r := runMounttop(t, "", nil, args...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d: %s", args, r.code, r.stderr)
		}
		if raw := rawControls([]byte(r.stdout)); len(raw) > 0 {
			t.Errorf("%q: raw controls %U in the JSON:\n%s", args, raw, r.stdout)
		}
		var out struct {
			Mounts   []mount `json:"mounts"`
			Mount    mount   `json:"mount"`
			Warnings []string
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		mounts := append(out.Mounts, out.Mount)
		found := false
		for _, m := range mounts {
			found = found || m.Mountpoint == evil && m.Source == "src"+hostile
		}
		if !found {
			t.Errorf("%q: the mount point and source did not decode to the exact text: %+v", args, mounts)
		}
		exact := false
		for _, w := range out.Warnings {
			exact = exact || strings.Contains(w, "proc root "+proc+" is not the live /proc")
		}
		if !exact {
			t.Errorf("%q: no warning decodes to the exact proc root %q: %q", args, proc, out.Warnings)
		}
	}
}

// TestKernelHolderActionIsEscaped: a kernel holder's action names a mount
// point or a binfmt_misc entry; in JSON it is carried like every name.
func TestKernelHolderActionIsEscaped(t *testing.T) {
	snap := inspect.NewSnapshot([]inspect.Mount{{ID: 1, ParentID: 1, Mountpoint: "/"}}, nil,
		[]inspect.Warning{{PID: 7, What: "reading " + hostile}})
	snap.Kernel = map[inspect.MountID][]inspect.KernelHolder{1: {{Kind: "binfmt_misc", Name: "e" + hostile,
		Path: "/usr/bin/x", Entry: "/proc/sys/fs/binfmt_misc/e" + hostile}}}
	m, _ := snap.Mount(1)
	var b bytes.Buffer
	if err := present.WriteJSON(&b, present.HoldersOf(snap, m)); err != nil {
		t.Fatal(err)
	}
	if raw := rawControls(b.Bytes()); len(raw) > 0 {
		t.Errorf("raw controls %U in %s", raw, b.Bytes())
	}
	var out struct {
		KernelHolders []struct{ Name, Action string } `json:"kernel_holders"`
		Warnings      []string                        `json:"warnings"`
	}
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.KernelHolders) != 1 || out.KernelHolders[0].Action != "echo -1 > /proc/sys/fs/binfmt_misc/e"+hostile ||
		out.KernelHolders[0].Name != "e"+hostile {
		t.Errorf("kernel holder = %+v", out.KernelHolders)
	}
	if len(out.Warnings) != 1 || out.Warnings[0] != "pid 7: reading "+hostile {
		t.Errorf("warnings = %q", out.Warnings)
	}
	if !bytes.Contains(b.Bytes(), termsafe.JSON(hostile)[1:len(termsafe.JSON(hostile))-1]) {
		t.Errorf("the hostile text is not carried as termsafe.JSON writes it: %s", b.Bytes())
	}
}

// TestUmountJSONAsREADMESays: `umount --json` and the journal of a run on
// a mount point holding a newline, ESC, C1 and bidi controls carry no raw
// control; the journal's "target" decodes to the exact mount point; the
// events' texts carry it escaped once, as the text output shows it
// (README, escaping).
func TestUmountJSONAsREADMESays(t *testing.T) {
	evil := filepath.Join(t.TempDir(), "a\nb"+hostile)
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("src", evil, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testns.CleanupMount(t, evil)
	journal := filepath.Join(t.TempDir(), "log", "journal.jsonl")
	r := runMounttop(t, "", nil, "umount", "--lazy", "--yes", "--json", "--journal", journal, evil)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	shown := termsafe.Text(evil)
	for name, out := range map[string][]byte{"stdout": []byte(r.stdout), "journal": lines} {
		if raw := rawControls(out); len(raw) > 0 {
			t.Errorf("%s: raw controls %U in %s", name, raw, out)
		}
		var done bool
		for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var ev struct {
				Stage, What, Target string
				Result              *struct{ Summary string }
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("%s: %v in %s", name, err, line)
			}
			if name == "journal" && ev.Target != evil {
				t.Errorf("journal target %q, want %q", ev.Target, evil)
			}
			if ev.Stage == "done" {
				done = true
				if want := shown + " is unmounted; filesystem released"; ev.Result == nil || ev.Result.Summary != want || ev.What != want {
					t.Errorf("%s: done event %s, want the summary %q", name, line, want)
				}
			}
		}
		if !done {
			t.Errorf("%s: no done event in %s", name, out)
		}
	}
}

// TestEventTextEscapedOnce: umount's text output shows a name that the
// event's note carries raw escaped once (/mnt/a\nb, not /mnt/a\\nb), and
// escapes a control that an error text carries raw (an error from
// elsewhere that quoted nothing).
func TestEventTextEscapedOnce(t *testing.T) {
	var b bytes.Buffer
	writeEventText(&b, unmount.Event{Stage: unmount.StageUnmount, Note: unmount.PlainUnmounted{Flag: "MNT_DETACH", Mountpoint: "/mnt/a\nb", Failed: true},
		Err: errors.New("open /mnt/c" + hostile + ": EIO")})
	got := b.String()
	if raw := rawControls([]byte(got)); len(raw) > 0 {
		t.Errorf("raw controls %U in %q", raw, got)
	}
	if want := `umount2(MNT_DETACH) of /mnt/a\nb failed [open /mnt/c` + termsafe.Text(hostile) + `: EIO]`; !strings.Contains(got, want) {
		t.Errorf("got %q, want it to hold %q", got, want)
	}
}
