package revoke

import (
	"context"
	"errors"
	"time"
)

// The messages between mounttop and its tracer process (Tracer,
// TracerMain), gob-encoded on a socketpair. Targets and Report travel
// whole, so fields added to them need no change here.

// message is one message in either direction; exactly one field is set.
type message struct {
	Hello    *hello         // mounttop -> tracer, first
	Ready    bool           // tracer -> mounttop: serving
	Revoke   *revokeRequest // mounttop -> tracer
	Cancel   uint64         // mounttop -> tracer: the caller of request ID stopped waiting
	Answer   *answer        // tracer -> mounttop
	Restored *restored      // tracer -> mounttop: a stuck revoke ended
}

type hello struct {
	Parent        int // mounttop's pid, never revoked
	StopTimeout   time.Duration
	InjectTimeout time.Duration
	Workers       int    // processes revoked at once (Workers); 0: the default
	ProcRoot      string // ProcRoot; "": /proc
}

type revokeRequest struct {
	ID      uint64
	PID     int
	Targets Targets
}

type answer struct {
	ID     uint64
	Report Report
	Err    *wireError
}

type restored struct {
	Stuck  StuckError
	Report Report
	Err    *wireError
}

// wireError is an error on the wire: its text, the sentinel it wraps (so
// errors.Is works on the other side) and a *StuckError whole.
type wireError struct {
	Msg   string
	Kind  string
	Stuck *StuckError
}

// sentinels are the errors a Revoke error may wrap, by wire name.
func sentinels() map[string]error {
	return map[string]error{
		"traced": ErrTraced, "nostop": ErrNoStop, "gone": ErrGone, "permission": ErrPermission,
		"stuck": ErrStuck, "closed": ErrClosed, "unsupported": ErrUnsupported,
		"canceled": context.Canceled, "deadline": context.DeadlineExceeded,
	}
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Msg: err.Error()}
	var se *StuckError
	if errors.As(err, &se) {
		w.Stuck = se
	}
	for name, s := range sentinels() {
		if errors.Is(err, s) {
			w.Kind = name
			break
		}
	}
	return w
}

func fromWire(w *wireError) error {
	switch {
	case w == nil:
		return nil
	case w.Stuck != nil:
		return w.Stuck
	}
	return &remoteError{msg: w.Msg, kind: sentinels()[w.Kind]}
}

// remoteError is an error the tracer process returned, with its sentinel.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }
