package unmount

// The operator's words for the plan, its warnings, releases, the server's
// probe, the filesystem and leftovers are internal/present's, which this
// package cannot import; present_words_test.go (package unmount_test)
// sets these before any test runs, so that the tests here check what the
// operator reads.
var (
	EventWords     func(Event) string
	PlanWords      func(*Plan) string
	WarningWords   func(PlanWarning) string
	ReleaseWords   func(Release) string
	RefusedWords   func(Release) string
	ServerWords    func(Server) string
	FilesystemText func(*Filesystem) string
	LeftoverWords  func(Leftover, string) string
)

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
