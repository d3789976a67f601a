package unmount

import (
	"mounttop/inspect"
)

// ConcurrentRevoker is a Revoker (or System) that can revoke several
// holders at once: RevokeWorkers says how many. The ptrace revoker's
// tracer process does (revoke.Workers: a tracer thread per process being
// revoked); a Revoker that does not say so is called for one holder at a
// time.
type ConcurrentRevoker interface {
	RevokeWorkers() int
}

// revokeWorkers is how many holders a round revokes at once.
func (r *run) revokeWorkers() int {
	if c, ok := r.u.sys.(ConcurrentRevoker); ok {
		return max(c.RevokeWorkers(), 1)
	}
	return 1
}

// revokeOutcome is how the revoke of one holder went.
type revokeOutcome struct {
	h   inspect.Holder
	did Revoked
	err error
}

// actAll acts on every holder of one round (act), stopping between holders
// once the run is cancelled, past its deadline, or the mount is gone: a
// revoke can take its stop timeout. Under a close policy with a
// ConcurrentRevoker, up to revokeWorkers holders are revoked at once: a
// revoke mostly waits for its process to be scheduled (to stop, then once
// per injected syscall), so the waits overlap, and the round takes about
// the time of the slowest holders rather than the sum of all. What to
// revoke is decided, and each outcome recorded and reported, here on the
// run's goroutine, in the order the revokes end; every revoke started is
// waited for.
func (r *run) actAll(stage Stage, hs []inspect.Holder) {
	stop := func() bool { return r.ctx.Err() != nil || r.forcedGone || !r.u.now().Before(r.deadline) }
	workers := r.revokeWorkers()
	if workers <= 1 || r.plan.Policy == PolicySignal {
		for _, h := range hs {
			if stop() {
				break
			}
			r.act(stage, h)
		}
		return
	}
	done := make(chan revokeOutcome, workers)
	inFlight := 0
	apply := func(o revokeOutcome) {
		inFlight--
		r.applyRevoke(stage, o.h, o.did, o.err)
	}
	for _, h := range hs {
		if stop() {
			break
		}
		t, ok := r.prepareRevoke(stage, h)
		if !ok {
			continue
		}
		for inFlight >= workers {
			apply(<-done)
		}
		if stop() {
			break
		}
		inFlight++
		who := r.who(h)
		go func() {
			r.u.revoking.begin(h.PID, who)
			defer r.u.revoking.end(h.PID)
			did, err := r.u.sys.Revoke(r.ctx, h.PID, t)
			done <- revokeOutcome{h, did, err}
		}()
	}
	for inFlight > 0 {
		apply(<-done)
	}
}
