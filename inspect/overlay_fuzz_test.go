package inspect

import (
	"strings"
	"testing"
)

// FuzzLayers: layer paths written as a mounter gives them (lowerdir with
// ':' and '\' escaped by '\', upperdir with '\' escaped, lowerdir+ as is)
// and then as the kernel shows them (seq_show_option: ',', ' ', tab,
// newline and '\' octal-escaped) read back to the same paths, in order;
// any other text parses without a panic.
func FuzzLayers(f *testing.F) {
	f.Add("/t/lo:w", "/t/a,b", "/t/up\\x", "/t/new\nline", "rw,lowerdir=x\\134")
	f.Add("/", "/ a", "/\t", "/\\", "lowerdir=::,upperdir=\\,workdir")
	f.Fuzz(func(t *testing.T, lower1, lower2, upper, plus, junk string) {
		Layers(junk)
		for _, p := range []string{lower1, lower2, upper, plus} {
			if p == "" || strings.ContainsRune(p, 0) {
				return // the kernel takes no empty or NUL-bearing path
			}
		}
		user := func(p, special string) string {
			var b strings.Builder
			for i := 0; i < len(p); i++ {
				if strings.IndexByte(special, p[i]) >= 0 {
					b.WriteByte('\\')
				}
				b.WriteByte(p[i])
			}
			return b.String()
		}
		shown := func(v string) string { return mangle(v, ", \t\n\\") }
		opts := "rw,lowerdir=" + shown(user(lower1, `:\`)+":"+user(lower2, `:\`)) +
			",upperdir=" + shown(user(upper, `\`)) + ",workdir=/w,lowerdir+=" + shown(plus) + ",uuid=on"
		want := []Layer{{"lowerdir", lower1}, {"lowerdir", lower2}, {"upperdir", upper}, {"workdir", "/w"}, {"lowerdir+", plus}}
		got := Layers(opts)
		if len(got) != len(want) {
			t.Fatalf("Layers(%q) = %v, want %v", opts, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("Layers(%q) = %v, want %v", opts, got, want)
			}
		}
	})
}
