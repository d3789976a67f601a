package unmount

import "testing"

// testRevoker is the Revoker the real-kernel tests use.
func testRevoker(t *testing.T) Revoker { return defaultRevoker() }
