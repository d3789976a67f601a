package inspect

import "time"

// withWorkers bounds how many processes a test's scan reads at once.
func withWorkers(n int) Option { return func(in *Inspector) { in.workers = n } }

// withProcessTimeout is how long one process may take in a test's scan
// before it is abandoned and reported.
func withProcessTimeout(d time.Duration) Option {
	return func(in *Inspector) { in.perProcess = d }
}
