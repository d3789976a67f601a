package main

import (
	"fmt"
	"os"
	"path/filepath"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// noJournal is the --journal value that means "no journal, no expiry
// state on disk", for every command.
const noJournal = "-"

// state is where a command writes as root: the journal and the expiry
// book (both nil/in memory with --journal -), and where they may move to
// when a run unmounts the mount they lie on.
type state struct {
	journal   *unmount.Journal
	book      *unmount.ExpiryBook
	fallbacks []string
	move      unmount.StateMove // the journal was moved off the target, or disabled
}

// options are the Unmounter options that carry the state.
func (s *state) options() []unmount.Option {
	if s == nil { // a dry run: nothing on disk
		return nil
	}
	opts := []unmount.Option{unmount.WithExpiryBook(s.book), unmount.WithStateFallback(s.fallbacks...)}
	if s.journal != nil {
		opts = append(opts, unmount.WithJournal(s.journal))
	}
	return opts
}

func (s *state) close() {
	if s == nil {
		return
	}
	if s.journal != nil {
		s.journal.Close()
	}
}

// warnState says on stderr that the journal was moved off the target, or
// disabled.
func warnState(s *state) {
	if s != nil && s.move.Kind != unmount.StateStays {
		fmt.Fprintln(os.Stderr, "mounttop: warning: "+present.StateMoveText(s.move))
	}
}

// openState opens the journal named by flag ("" the default for this
// user, "-" none) and the expiry book beside it. With a target (the umount
// command) a journal directory on the target or a mount below it is
// replaced, by the mount table alone, with the first fallback that is not
// (unmount.StatePlace), so the journal never keeps the target busy nor
// touches it. A directory that is not safe to write in as root is
// refused (unmount.ErrUnsafeStateDir), as is one that cannot be opened.
func openState(flag string, table *inspect.Snapshot, target *inspect.Mount) (*state, error) {
	s := &state{book: unmount.OpenExpiryBook(""), fallbacks: unmount.FallbackStateDirs(os.Geteuid(), os.Getenv)}
	if flag == noJournal {
		return s, nil
	}
	path := flag
	if path == "" {
		path = unmount.DefaultJournalPath(os.Geteuid(), os.Getenv)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir, name := filepath.Dir(abs), filepath.Base(abs)
	if target != nil && table != nil {
		var place string
		place, s.move = unmount.StatePlace(table, target, dir, s.fallbacks)
		if place == "" {
			return s, nil
		}
		dir = place
	}
	j, err := unmount.OpenJournal(filepath.Join(dir, name), present.EventJSON)
	if err != nil {
		return nil, err
	}
	s.journal = j
	s.book = unmount.OpenExpiryBook(unmount.DefaultExpiryPath(j.Path()))
	return s, nil
}

// stateError is a journal that cannot be opened: bad input (exit 2),
// nothing changed. The error names its paths escaped already (unmount's
// StateDir quotes them); run escapes what else could reach the terminal.
func stateError(err error) error {
	return usagef("%v (nothing changed; --journal PATH picks another place, --journal - none)", err)
}
