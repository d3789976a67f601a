package unmount

// The engine returns notes (Event.Note, Result.Outcome); internal/present
// words them. This package's tests assert on those words, but cannot
// import present (present imports unmount): words_ext_test.go (package
// unmount_test, which can) hands present's renderers in through
// SetWordsForTest before any test runs.
var (
	eventWords  = func(e Event) string { return e.What }
	resultWords = func(r Result) string { return r.Summary }
)

// SetWordsForTest sets how the tests word an event and a result.
func SetWordsForTest(event func(Event) string, result func(Result) string) {
	eventWords, resultWords = event, result
}

// whatOf is what an event says, in present's words.
func whatOf(e Event) string { return eventWords(e) }

// summaryOf is a result's line, in present's words.
func summaryOf(r *Result) string {
	if r == nil {
		return ""
	}
	return resultWords(*r)
}
