package termsafe

import (
	"encoding/json"
	"testing"
)

func TestText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/mnt/data", "/mnt/data"},
		{"a b", "a b"},
		{"\x1b[2J\x1b]0;pwned\x07", `\e[2J\e]0;pwned\x07`},
		{"line\nbreak\ttab", `line\nbreak\ttab`},
		{"back\\slash", `back\\slash`},
		{"caf\xc3\xa9", "café"},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"c1\u009bcsi", `c1\u{009b}csi`},
		{"bidi\u202eevil", `bidi\u{202e}evil`},
		{"del\x7f", `del\x7f`},
		{"", ""},
	}
	for _, c := range cases {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestEscapedOnce: a name is escaped once, wherever it ends up: Quote
// keeps Text's escapes inside its quotes, and Message shows a message
// built from escaped names as it is, escaping only a raw control left in
// it.
func TestEscapedOnce(t *testing.T) {
	cases := []struct{ f, in, want string }{
		{"Quote", "/mnt/a\nb", `/mnt/a\nb`},
		{"Quote", "a\\b c", `"a\\b c"`},
		{"Quote", "/mnt/c d\ne", `"/mnt/c d\ne"`},
		{"Quote", `say "hi"`, `"say \"hi\""`},
		{"Quote", "", `""`},
		{"Message", "done " + Quote("/mnt/a\nb") + " is unmounted", `done /mnt/a\nb is unmounted`},
		{"Message", "open " + Quote("/mnt/c d\ne") + ": raw\x1b[2J", `open "/mnt/c d\ne": raw\e[2J`},
		{"Message", "back\\slash", `back\slash`},
	}
	for _, c := range cases {
		got := Quote(c.in)
		if c.f == "Message" {
			got = Message(c.in)
		}
		if got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.f, c.in, got, c.want)
		}
	}
}

func TestJSONIsExactAndSafe(t *testing.T) {
	for _, in := range []string{"/mnt/x", "\x1b[31mred", "q\"uote\\", "caf\xc3\xa9", "nl\n", "c1\u009b", "emoji \U0001F600"} {
		out := JSON(in)
		for _, c := range out {
			if c < 0x20 || c == 0x7f {
				t.Errorf("JSON(%q) = %q carries a raw control byte", in, out)
			}
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("JSON(%q) = %s is not valid JSON: %v", in, out, err)
		}
		if back != in {
			t.Errorf("JSON(%q) round-trips to %q", in, back)
		}
	}
	// Invalid UTF-8 bytes are carried as lone surrogates (PEP 383).
	if got, want := string(JSON("a\xffb")), `"a\udcffb"`; got != want {
		t.Errorf("JSON(invalid) = %s, want %s", got, want)
	}
}

func TestNameMarshals(t *testing.T) {
	b, err := json.Marshal(struct{ P Name }{Name("\x1b]52;c;x\x07")})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"P":"\u001b]52;c;x\u0007"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
