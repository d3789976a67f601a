package cli

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mounttop/unmount"
)

// TestTableIsWellFormed: every command parses its defaults, names each
// flag once, says what each flag does, and an enumerable flag lists its
// values for completion.
func TestTableIsWellFormed(t *testing.T) {
	p := Mounttop()
	for _, c := range append([]Command{p.Root}, p.Commands...) {
		if _, err := c.Parse(nil); err != nil {
			t.Errorf("%q: parsing no arguments: %v", c.Name, err)
		}
		seen := map[string]bool{}
		for _, f := range c.Flags {
			if seen[f.Name] {
				t.Errorf("%q: --%s twice", c.Name, f.Name)
			}
			seen[f.Name] = true
			if f.Help == "" || (f.Kind != Bool && f.Arg == "") {
				t.Errorf("%q: --%s lacks its help or its value's name", c.Name, f.Name)
			}
			if f.Kind == Enum && (len(f.Values) == 0 || f.Complete != CompleteValues) {
				t.Errorf("%q: --%s is enumerable but lists no values to complete", c.Name, f.Name)
			}
		}
		if c.Brief == "" || len(c.Description) == 0 {
			t.Errorf("%q lacks its brief or description", c.Name)
		}
	}
	if len(p.Keys) == 0 || len(p.Keys[0].Keys) == 0 {
		t.Error("no keys from ui's keymap")
	}
}

// TestParseInterleaved: flags before, between and after the positional
// arguments; after "--" everything is positional; "=" and separate values.
func TestParseInterleaved(t *testing.T) {
	c, _ := Mounttop().Command("umount")
	a, err := c.Parse([]string{"/mnt/a", "--staged", "--timeout=3s", "--revoke", "signal", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Pos, []string{"/mnt/a", "--not-a-flag"}) || !a.Bool("staged") || a.Duration("timeout") != 3*time.Second ||
		a.String("revoke") != "signal" || !a.Given("timeout") || a.Given("grace") || a.Duration("grace") != unmount.DefaultGrace {
		t.Errorf("parsed %+v", a)
	}
	if _, err := c.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Errorf("--help: %v, want ErrHelp", err)
	}
	_, err = c.Parse([]string{"--grace", "soon"})
	var ue *UsageError
	if !errors.As(err, &ue) || ue.Msg != `umount: invalid value "soon" for --grace: time: invalid duration "soon" (see mounttop umount --help)` {
		t.Errorf("bad value: %v", err)
	}
}

// TestUmountFrom: the request builds the plan the flags say, and refuses
// what does not go together.
func TestUmountFrom(t *testing.T) {
	c, _ := Mounttop().Command("umount")
	for _, tc := range []struct {
		args []string
		want func(*Umount) bool
		err  string
	}{
		{[]string{"--staged", "--revoke", "close-plain", "/m"}, func(u *Umount) bool {
			return u.Plan.Mode == unmount.ModeStaged && u.Plan.Policy == unmount.PolicyClosePlain && u.Path == "/m" && u.Plan.Timeout == unmount.DefaultTimeout
		}, ""},
		{[]string{"--expire", "--expire-when-idle", "/m"}, func(u *Umount) bool { return u.Plan.Timeout == 0 && u.Plan.ExpireWhenIdle }, ""},
		{[]string{"--staged", "--id", "77"}, func(u *Umount) bool { return u.ID == 77 && u.Path == "" }, ""},
		{[]string{"--rollback-fence", "--yes", "/m"}, func(u *Umount) bool { return u.Rollback && u.Yes }, ""},
		{[]string{"/m"}, nil, "choose one of"},
		{[]string{"--lazy", "--force", "/m"}, nil, "one mode at a time, not --lazy and --force"},
		{[]string{"--lazy", "--grace", "1s", "/m"}, nil, "apply to --staged only"},
		{[]string{"--rollback-fence", "--recursive", "/m"}, nil, "goes with --dry-run, --yes and --journal only"},
	} {
		a, err := c.Parse(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		u, err := UmountFrom(a)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want %q", tc.args, err, tc.err)
		case tc.err == "" && (err != nil || !tc.want(u)):
			t.Errorf("%q: %v %+v", tc.args, err, u)
		}
	}
}

// TestJSONFields follows encoding/json's rules: embedded structs
// flattened, "-" and unexported fields left out, slices and pointers
// followed.
func TestJSONFields(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type Embedded struct {
		E string `json:"e"`
	}
	type doc struct {
		Embedded
		A      []inner   `json:"a"`
		P      *inner    `json:"p,omitempty"`
		T      time.Time `json:"t"`
		Skip   string    `json:"-"`
		hidden string    //lint:ignore U1000 an unexported field the walk must leave out
		L      []string  `json:"l"`
		Null   *bool     `json:"null"`
	}
	var got []string
	for _, f := range JSONFields(reflect.TypeFor[doc]()) {
		got = append(got, f.Path+": "+f.Type)
	}
	want := []string{"e: string", "a: array of objects", "a[].n: number", "p: object, omitted when empty", "p.n: number",
		"t: string (RFC 3339 time)", "l: array of strings", "null: boolean or null"}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRoff: backslashes, hyphens, leading dots and non-ASCII become roff
// escapes, so groff neither warns nor takes text for a request.
func TestRoff(t *testing.T) {
	if got, want := roff(`.x -a \ →`), `\&.x \-a \e \[u2192]`; got != want {
		t.Errorf("roff = %q, want %q", got, want)
	}
}
