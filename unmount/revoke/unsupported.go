//go:build !(linux && amd64)

package revoke

// serve answers every request with ErrUnsupported: the injection needs
// x86_64 registers and syscall numbers.
func (r *Revoker) serve() { go r.serveUnsupported() }

func (r *Revoker) serveUnsupported() {
	defer r.active.Done()
	for {
		select {
		case <-r.done:
			return
		case req := <-r.reqs:
			req.reply <- result{Report{PID: req.pid}, ErrUnsupported}
		}
	}
}

type wakeups struct{}

func newWakeups() *wakeups { return &wakeups{} }
func (*wakeups) stop()     {}
