package termsafe

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// acts reports a character a terminal acts on or that reorders or hides
// text: C0 controls (tab and newline too, in an escaped name), DEL, C1
// controls, Unicode format characters (the bidi controls U+202A-U+202E and
// U+2066-U+2069 among them) and the line and paragraph separators.
func acts(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || unicode.Is(unicode.Cf, r) ||
		r == 0x2028 || r == 0x2029 || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// checkSafe fails if out is not valid UTF-8 or holds a character that acts.
func checkSafe(t *testing.T, what, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s(%q) = %q is not valid UTF-8", what, in, out)
	}
	for _, r := range out {
		if acts(r) || !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			t.Fatalf("%s(%q) = %q lets %U through", what, in, out, r)
		}
	}
}

// unText undoes Text: the README promises its escapes are unambiguous, so
// there must be exactly one input for each output.
func unText(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case 'x':
			if i+2 >= len(s) {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(v))
			i += 2
		case 'u':
			end := strings.IndexByte(s[i:], '}')
			if i+1 >= len(s) || s[i+1] != '{' || end < 0 {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+2:i+end], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(v))
			i += end
		default:
			return "", false
		}
	}
	return b.String(), true
}

// FuzzText: Text lets nothing through that a terminal acts on, keeps every
// printable character, and is reversible: undoing its escapes gives the
// exact bytes back, so two names never look the same. Quote adds double
// quotes around Text's output and a backslash before each double quote only,
// and is reversible too. Message leaves Text's output as it is.
func FuzzText(f *testing.F) {
	for _, seed := range []string{"/mnt/data", "a b", "\x1b[2J\x1b]0;pwned\x07", "line\nbreak\ttab\r", "back\\slash", "caf\xc3\xa9",
		"bad\xff\xfeutf8", "c1\u009bcsi\u0085", "bidi\u202eevil\u2066x\u2069", "zw\u200b\u200d\ufeff", "del\x7f", "", "\\x1b", `"quoted" 'x'`,
		"\u2028\u2029", "\U000e0001tag", "\xed\xa0\x80surrogate", "\xf4\x90\x80\x80big", "nbsp\u00a0\u3000"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		checkSafe(t, "Text", s, out)
		back, ok := unText(out)
		if !ok || back != s {
			t.Fatalf("Text(%q) = %q undoes to %q (%v)", s, out, back, ok)
		}
		if m := Message(out); m != out {
			t.Fatalf("Message(Text(%q)) = %q, want Text's %q: escaped twice", s, m, out)
		}
		checkSafe(t, "Message", s, Message(s))
		q := Quote(s)
		checkSafe(t, "Quote", s, q)
		if strings.HasPrefix(q, `"`) {
			uq := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`), `\"`, `"`)
			if !strings.HasSuffix(q[1:], `"`) || uq != out {
				t.Fatalf("Quote(%q) = %q unquotes to %q, want Text's %q", s, q, uq, out)
			}
		} else if q != out {
			t.Fatalf("Quote(%q) = %q, want Text's %q", s, q, out)
		}
	})
}

// fromJSON decodes a JSON string literal as JSON() writes it, taking a lone
// \udcXX surrogate back to the byte XX (surrogateescape, PEP 383).
func fromJSON(lit string) (string, bool) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", false
	}
	s := lit[1 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c < 0x20 {
			return "", false // raw quote or control: not JSON
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+4 >= len(s) {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
			if err != nil {
				return "", false
			}
			i += 4
			r := rune(v)
			switch {
			case r >= 0xd800 && r < 0xdc00: // a pair
				if i+6 >= len(s) || s[i+1:i+3] != `\u` {
					return "", false
				}
				lo, err := strconv.ParseUint(s[i+3:i+7], 16, 32)
				if err != nil || lo < 0xdc00 || lo > 0xdfff {
					return "", false
				}
				b.WriteRune(0x10000 + (r-0xd800)<<10 + rune(lo) - 0xdc00)
				i += 6
			case r >= 0xdc80 && r <= 0xdcff: // a byte that is not UTF-8
				b.WriteByte(byte(r - 0xdc00))
			case r >= 0xdc00 && r <= 0xdfff:
				return "", false
			default:
				b.WriteRune(r)
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}

// FuzzJSON: JSON writes valid JSON whose bytes a terminal does not act on
// (ASCII controls and C1 are never raw, nor are format characters), which
// any JSON parser decodes to exactly the input when it is valid UTF-8, and
// which gives back the exact bytes of any input under surrogateescape.
func FuzzJSON(f *testing.F) {
	for _, seed := range []string{"/mnt/x", "\x1b[31mred", "q\"uote\\", "caf\xc3\xa9", "nl\n", "c1\u009b", "emoji \U0001F600",
		"a\xffb", "\xed\xb2\x80", "bidi\u202e\u2067", "\U000e0001", "</script>&", "\u2028", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(JSON(s))
		if !json.Valid([]byte(out)) {
			t.Fatalf("JSON(%q) = %s is not valid JSON", s, out)
		}
		checkSafe(t, "JSON", s, out)
		back, ok := fromJSON(out)
		if !ok || back != s {
			t.Fatalf("JSON(%q) = %s decodes (surrogateescape) to %q (%v)", s, out, back, ok)
		}
		if utf8.ValidString(s) {
			var std string
			if err := json.Unmarshal([]byte(out), &std); err != nil || std != s {
				t.Fatalf("JSON(%q) = %s: encoding/json reads %q (%v)", s, out, std, err)
			}
		}
	})
}
