package unmount_test

import (
	"mounttop/internal/present"
	"mounttop/unmount"
)

func init() {
	unmount.EventWords = present.EventWhat
	unmount.PlanWords = func(p *unmount.Plan) string { return present.EventWhat(unmount.PlanEvent(p)) }
	unmount.WarningWords = present.PlanWarningText
	unmount.ReleaseWords = present.ReleaseText
	unmount.RefusedWords = present.ReleaseRefusalText
	unmount.ServerWords = present.ServerHow
	unmount.FilesystemText = present.FilesystemText
	unmount.LeftoverWords = present.LeftoverDescribe
}
