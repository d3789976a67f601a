package ui

import (
	"time"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// The kernel keeps an MNT_EXPIRE mark nowhere it can be read back: only the
// caller that set it knows, and only a later attempt finds out that an
// access cleared it (umount2(2); DESIGN.md, expiry marks). The unmount
// engine keeps those marks in its ExpiryBook; the view reads them in the
// scan command (never in Update) through ExpiryReader, and remembers the
// mounts its own expire runs unmounted.

// ExpiryReader tells the expiry marks the unmount engine has set. Engine
// implements it; the view uses it when the Unmounter does.
type ExpiryReader interface {
	ExpiryMarks(ids []inspect.MountID) map[inspect.MountID]unmount.ExpiryMark
}

type expiryState int

const (
	expiryNone    expiryState = iota
	expiryArmed               // marked by an MNT_EXPIRE attempt (EAGAIN)
	expiryCleared             // the last attempt found the mark cleared by an access, and marked it again
	expiryExpired             // an expire run unmounted it
)

// expiryMark is what is known about one mount's expiry.
type expiryMark struct {
	state   expiryState
	armed   time.Time // when the current mark was set
	since   time.Time // when the state last changed
	cleared int       // how often an access cleared our mark
}

// expiryOf combines the engine's book and the view's own record.
func expiryOf(mk unmount.ExpiryMark, marked bool, expiredAt time.Time) expiryMark {
	switch {
	case !expiredAt.IsZero():
		return expiryMark{state: expiryExpired, armed: mk.MarkedAt, since: expiredAt}
	case !marked:
		return expiryMark{}
	case mk.Cleared > 0 && !mk.ClearedAt.IsZero() && !mk.ClearedAt.Before(mk.MarkedAt):
		return expiryMark{state: expiryCleared, armed: mk.MarkedAt, since: mk.ClearedAt, cleared: mk.Cleared}
	}
	return expiryMark{state: expiryArmed, armed: mk.MarkedAt, since: mk.MarkedAt, cleared: mk.Cleared}
}

// cell is the EXPIRY column text (at most 16 cells).
func (e expiryMark) cell() string {
	switch e.state {
	case expiryArmed:
		return "armed " + e.armed.Format("15:04:05")
	case expiryCleared:
		return "cleared " + e.since.Format("15:04:05")
	case expiryExpired:
		return "expired " + e.since.Format("15:04:05")
	}
	return "-"
}

// sentence is the holders pane's line about the mark.
func (e expiryMark) sentence(k *keyMap) string {
	switch e.state {
	case expiryArmed:
		return present.ExpiryArmed(e.armed, k.name(k.Expire))
	case expiryCleared:
		return present.ExpiryCleared(e.armed)
	case expiryExpired:
		return present.ExpiryExpired(e.since)
	}
	return ""
}

// expiryMarks is the view's record: the engine's marks as last read, and
// when an expire run of this session unmounted a mount.
type expiryMarks struct {
	book    map[inspect.MountID]unmount.ExpiryMark
	expired map[inspect.MountID]time.Time
}

func newExpiryMarks() *expiryMarks {
	return &expiryMarks{book: map[inspect.MountID]unmount.ExpiryMark{}, expired: map[inspect.MountID]time.Time{}}
}

func (x *expiryMarks) of(id inspect.MountID) expiryMark {
	mk, ok := x.book[id]
	return expiryOf(mk, ok, x.expired[id])
}
