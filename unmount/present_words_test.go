package unmount_test

import (
	"mounttop/internal/present"
	"mounttop/unmount"
)

// The tests of package unmount read the engine's data in present's words
// (words_export_test.go).
func init() {
	unmount.EventWords = present.EventWhat
	unmount.ResultWords = present.ResultSummary
	unmount.PlanWords = func(p *unmount.Plan) string { return present.EventWhat(unmount.PlanEvent(p)) }
	unmount.WarningWords = present.PlanWarningText
	unmount.ReleaseWords = present.ReleaseText
	unmount.RefusedWords = present.ReleaseRefusalText
	unmount.ServerWords = present.ServerHow
	unmount.FilesystemText = present.FilesystemText
	unmount.FilesystemUseWords = present.FilesystemUseText
	unmount.LeftoverWords = present.LeftoverDescribe
	unmount.PendingWords = present.PendingLines
	unmount.StateWords = present.StateMoveText
}
