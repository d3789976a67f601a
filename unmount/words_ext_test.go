package unmount_test

import (
	"mounttop/internal/present"
	"mounttop/unmount"
)

// The tests of package unmount read events and results in present's words
// (words_test.go).
func init() { unmount.SetWordsForTest(present.EventWhat, present.ResultSummary) }
