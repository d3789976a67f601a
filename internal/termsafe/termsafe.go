// Package termsafe makes text from the system safe to show: paths, process
// names and mount sources are chosen by whoever created them and can carry
// terminal escape sequences, newlines, bidirectional overrides and bytes that
// are not UTF-8. Text() renders them for a terminal; JSON() keeps them exact.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s with everything a terminal could act on escaped, in the
// style of `ls -b`: C0 and C1 control characters, DEL, Unicode format
// characters (bidi overrides, zero-width joiners) and line/paragraph
// separators become \n, \t, \e, \xNN or \u{NNNN}; bytes that are not valid
// UTF-8 become \xNN; a backslash becomes \\ so the result is unambiguous.
// Printable text, including non-ASCII letters, passes unchanged.
func Text(s string) string { return escape(s, true) }

// Message shows a message whose names were escaped when it was built (with
// Text or Quote: the texts of unmount's events, plans and errors): what a
// terminal could act on is escaped as Text does, in case a part of it was
// not (an error text from elsewhere), but a backslash passes unchanged, so
// a name escaped once is not escaped again (a mount point with a newline
// shows as /mnt/a\nb, never /mnt/a\\nb). Message(Text(s)) == Text(s).
func Message(s string) string { return escape(s, false) }

// escape is Text, with backslashes doubled or (Message) left as they are.
func escape(s string, backslash bool) string {
	if isPlain(s, backslash) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		i += size
		switch {
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == 0x1b:
			b.WriteString(`\e`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u{%04x}`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isPlain is the fast path: printable ASCII (without a backslash when
// backslashes are escaped).
func isPlain(s string, backslash bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' && backslash {
			return false
		}
	}
	return true
}

func needsEscape(r rune) bool {
	return (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Cf, r) ||
		r == 0x2028 || r == 0x2029 || !unicode.IsPrint(r) && !unicode.IsSpace(r) || r == 0x85
}

// JSON returns s as a JSON string literal that carries its bytes exactly and
// is still safe on a terminal: every control character (C0, DEL, C1) and
// format character is written as a \u escape, and each byte that is not
// valid UTF-8 as a lone surrogate \udcXX, the "surrogateescape" convention of
// PEP 383 (Python's json and os.fsencode read it back to the same bytes).
func JSON(s string) []byte {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = fmt.Appendf(b, `\udc%02x`, s[i])
			i++
			continue
		}
		i += size
		switch {
		case r == '"':
			b = append(b, `\"`...)
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r < 0x20 || r == 0x7f || needsEscape(r):
			if r > 0xffff {
				r1, r2 := utf16Pair(r)
				b = fmt.Appendf(b, `\u%04x\u%04x`, r1, r2)
			} else {
				b = fmt.Appendf(b, `\u%04x`, r)
			}
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// Name is a string from the system that marshals to JSON with JSON(): use it
// for every path, process name and mount source in JSON output.
type Name string

// MarshalJSON implements json.Marshaler.
func (n Name) MarshalJSON() ([]byte, error) { return JSON(string(n)), nil }

// Quote is Text wrapped in double quotes when s is empty or has spaces or
// quotes, for messages such as "not a mount point: PATH". Inside the
// quotes only a double quote gains a backslash (\"): Text's escapes are
// kept as they are, so a name is escaped once ("/mnt/c d\ne", not Go
// quoting's "/mnt/c d\\ne"), and the quoted form is still unambiguous,
// Text never writing \" itself.
func Quote(s string) string {
	t := Text(s)
	if t == "" || strings.ContainsAny(t, " \"'") {
		return `"` + strings.ReplaceAll(t, `"`, `\"`) + `"`
	}
	return t
}
