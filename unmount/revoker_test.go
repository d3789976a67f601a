package unmount

import "testing"

// testRevoker is the real ptrace revoker, closed when the test ends.
func testRevoker(t *testing.T) Revoker {
	r := defaultRevoker(nil)
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}
