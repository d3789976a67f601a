package kindname

import "testing"

func TestOf(t *testing.T) {
	names := []string{"answered", "no-path"}
	for _, c := range []struct {
		v, base int
		want    string
	}{
		{1, 1, "answered"},
		{2, 1, "no-path"},
		{0, 1, "Outcome(0)"},
		{3, 1, "Outcome(3)"},
		{0, 0, "answered"},
		{-1, 0, "Outcome(-1)"},
	} {
		if got := Of("Outcome", names, c.v, c.base); got != c.want {
			t.Errorf("Of(%d, base %d) = %q, want %q", c.v, c.base, got, c.want)
		}
	}
}
