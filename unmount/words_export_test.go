package unmount

// The engine returns data (Event.Note, Result.Outcome, PlanWarning,
// Release, Server, Filesystem, Leftover); the operator's words for it are
// internal/present's, which this package cannot import (present imports
// unmount). present_words_test.go (package unmount_test, which can) sets
// these before any test runs, so that the tests here check what the
// operator reads.
var (
	EventWords         func(Event) string
	ResultWords        func(Result) string
	PlanWords          func(*Plan) string
	WarningWords       func(PlanWarning) string
	ReleaseWords       func(Release) string
	RefusedWords       func(Release) string
	ServerWords        func(Server) string
	FilesystemText     func(*Filesystem) string
	FilesystemUseWords func(FilesystemUse) string
	LeftoverWords      func(Leftover, string) string
	PendingWords       func([]Pending) []string
	StateWords         func(StateMove) string
)

// summaryOf is a result's line in present's words ("" for no result).
func summaryOf(r *Result) string {
	if r == nil {
		return ""
	}
	return ResultWords(*r)
}

// warningsWords is every warning of p in words, one a line.
func warningsWords(p *Plan) string {
	var s string
	for i, w := range p.Warnings {
		if i > 0 {
			s += "\n"
		}
		s += WarningWords(w)
	}
	return s
}
