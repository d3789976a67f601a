package unmount

import "testing"

// testRevoker is the real ptrace revoker, closed when the test ends.
func testRevoker(t *testing.T) Revoker {
	r := defaultRevoker()
	t.Cleanup(func() { r.(*ptraceRevoker).Close() })
	return r
}
