package unmount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/termsafe"
)

// ExpiryMark is what mounttop knows about an MNT_EXPIRE mark it set. The
// kernel keeps the mark (mnt_expiry_mark) but exposes it nowhere, and any
// access to the mount clears it silently (mntput), so only the one who set
// it can say it was set, and only a later attempt can find out it was
// cleared.
type ExpiryMark struct {
	ID         inspect.MountID `json:"mount_id"`
	Mountpoint termsafe.Name   `json:"mountpoint"`
	MarkedAt   time.Time       `json:"marked_at"` // the latest mark
	FirstAt    time.Time       `json:"first_at"`  // the first mark of this run of attempts
	Attempts   int             `json:"attempts"`  // MNT_EXPIRE calls made on it
	Cleared    int             `json:"cleared"`   // times a later attempt found the mark cleared by an access
	ClearedAt  time.Time       `json:"cleared_at,omitempty"`
}

// ExpiryBook is the set of marks, by unique mount ID (the reusable 32-bit ID
// could name another mount by the next call). With a path it is persisted as
// a small JSON file next to the journal, so the second `mounttop umount
// --expire` invocation knows what the first one did; read-modify-write is
// serialized between processes with flock(2) on PATH.lock. PATH's
// directory is checked like the journal's (OpenStateDir) on every update.
type ExpiryBook struct {
	path string // "" keeps the book in memory only
	mu   sync.Mutex
	mem  map[inspect.MountID]ExpiryMark
	// stuck is set once a file step was abandoned (bookWait): updates
	// fail with it from then on rather than queue behind it.
	stuck error
}

// OpenExpiryBook returns the book persisted at path ("" for memory only).
func OpenExpiryBook(path string) *ExpiryBook {
	return &ExpiryBook{path: path, mem: map[inspect.MountID]ExpiryMark{}}
}

// DefaultExpiryPath is expire.json beside the journal.
func DefaultExpiryPath(journal string) string {
	return filepath.Join(filepath.Dir(journal), "expire.json")
}

// markForgetAfter bounds the book: an old mark is as good as cleared.
const markForgetAfter = 7 * 24 * time.Hour

// Get returns the mark for id, if mounttop set one.
func (b *ExpiryBook) Get(id inspect.MountID) (ExpiryMark, bool) {
	var m ExpiryMark
	var ok bool
	_ = b.update(func(marks map[inspect.MountID]ExpiryMark) bool {
		m, ok = marks[id]
		return false
	})
	return m, ok
}

// All returns every mark in the book, in one read (Get reads the file each
// time: use All to show marks beside many mounts).
func (b *ExpiryBook) All() map[inspect.MountID]ExpiryMark {
	out := map[inspect.MountID]ExpiryMark{}
	_ = b.update(func(marks map[inspect.MountID]ExpiryMark) bool {
		for id, m := range marks {
			out[id] = m
		}
		return false
	})
	return out
}

// Marked records that an MNT_EXPIRE attempt on m returned EAGAIN at `at`,
// i.e. the mount is marked now. If mounttop had marked it before, that mark
// was cleared by an access in between (else this attempt would have
// unmounted it): cleared is true and the returned mark says how often.
func (b *ExpiryBook) Marked(m *inspect.Mount, at time.Time) (mark ExpiryMark, cleared bool, err error) {
	err = b.update(func(marks map[inspect.MountID]ExpiryMark) bool {
		prev, had := marks[m.ID]
		mark = prev
		if !had {
			mark = ExpiryMark{ID: m.ID, FirstAt: at}
		} else {
			cleared = true
			mark.Cleared++
			mark.ClearedAt = at
		}
		mark.Mountpoint = termsafe.Name(m.Mountpoint)
		mark.MarkedAt = at
		mark.Attempts++
		marks[m.ID] = mark
		return true
	})
	return mark, cleared, err
}

// Forget drops the mark of id (the mount is gone, or busy: a busy mount
// holds no mark worth remembering).
func (b *ExpiryBook) Forget(id inspect.MountID) error {
	return b.update(func(marks map[inspect.MountID]ExpiryMark) bool {
		if _, ok := marks[id]; !ok {
			return false
		}
		delete(marks, id)
		return true
	})
}

// update runs fn on the current marks under the lock and saves them if fn
// says it changed them. The files are opened relative to the checked state
// directory (OpenStateDir) without following links: PATH.lock and PATH
// are read as they are, PATH is replaced by a fresh PATH.new (a file or
// link already there is unlinked, never followed), fsynced and renamed
// over it, and the directory fsynced (StateDir.replaceFile).
//
// The file work is bounded (bookWait), in two steps around fn, which runs
// here: a book on a filesystem whose server stopped answering gives an
// error, and every later update fails at once with it (b.stuck) until the
// book moves (moveTo, forgetFile).
func (b *ExpiryBook) update(fn func(map[inspect.MountID]ExpiryMark) bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stuck != nil {
		return b.stuck
	}
	if b.path == "" {
		fn(b.mem)
		return nil
	}
	var none *bounded.Calls // bounded; b.stuck remembers an abandoned call
	ctx := context.Background()
	l, err := bounded.Value(ctx, none, bookWait, "reading the expiry state "+termsafe.Quote(b.path), bounded.AnyThread,
		func() (bookLock, error) { return lockBook(b.path) },
		func(l bookLock) { l.lock.Close(); l.d.Close() })
	if errors.Is(err, bounded.ErrAbandoned) {
		b.stuck = fmt.Errorf("expiry state: %w", err)
	}
	if err != nil {
		return err
	}
	release := func() { l.lock.Close(); l.d.Close() } // closing the lock fd drops the flock
	if !fn(l.marks) {
		release()
		return nil
	}
	list := make([]ExpiryMark, 0, len(l.marks))
	for _, m := range l.marks {
		list = append(list, m)
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		release()
		return err
	}
	err = none.Do(ctx, bookWait, "writing the expiry state "+termsafe.Quote(b.path), bounded.AnyThread, func() error {
		defer release()
		if err := l.d.replaceFile(filepath.Base(b.path), append(out, '\n')); err != nil {
			return fmt.Errorf("expiry state: %w", err)
		}
		return nil
	})
	if errors.Is(err, bounded.ErrAbandoned) {
		b.stuck = fmt.Errorf("expiry state: %w", err)
	}
	return err
}

// bookWait bounds each step of an expiry book update.
const bookWait = 5 * time.Second

// bookLock is a book's directory, its held lock and the marks read.
type bookLock struct {
	d     *StateDir
	lock  *os.File
	marks map[inspect.MountID]ExpiryMark
}

// lockBook opens the book's directory, takes the flock(2) on PATH.lock
// that serializes mounttop processes, and reads the marks at path (none if
// it does not exist yet; marks older than markForgetAfter are dropped).
func lockBook(path string) (bookLock, error) {
	d, err := openStateDir(filepath.Dir(path))
	if err != nil {
		return bookLock{}, fmt.Errorf("expiry state: %w", err)
	}
	name := filepath.Base(path)
	lock, err := d.openFile(name+".lock", unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		d.Close()
		return bookLock{}, fmt.Errorf("expiry state: %w", err)
	}
	fail := func(err error) (bookLock, error) {
		lock.Close()
		d.Close()
		return bookLock{}, fmt.Errorf("expiry state: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fail(fmt.Errorf("lock: %w", err))
	}
	marks := map[inspect.MountID]ExpiryMark{}
	f, err := d.openFile(name, unix.O_RDONLY)
	switch {
	case err == nil:
		data, rerr := io.ReadAll(io.LimitReader(f, maxBook))
		f.Close()
		if rerr != nil {
			return fail(rerr)
		}
		var list []ExpiryMark
		if json.Unmarshal(data, &list) == nil {
			for _, m := range list {
				if time.Since(m.MarkedAt) < markForgetAfter {
					marks[m.ID] = m
				}
			}
		}
	case !errors.Is(err, unix.ENOENT):
		return fail(err)
	}
	return bookLock{d: d, lock: lock, marks: marks}, nil
}

// maxBook bounds what is read of expire.json (a mark is ~200 bytes).
const maxBook = 4 << 20

// dir is the directory the book is kept in ("" in memory).
func (b *ExpiryBook) dir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.path == "" {
		return ""
	}
	return filepath.Dir(b.path)
}

// moveTo keeps the book in dir from now on (the same file name). The marks
// in the old place are not carried over: reading them would touch the
// mount the run is about to expire and clear its mark.
func (b *ExpiryBook) moveTo(dir string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.path != "" {
		b.path = filepath.Join(dir, filepath.Base(b.path))
		b.stuck = nil
	}
}

// forgetFile keeps the book in memory from now on.
func (b *ExpiryBook) forgetFile() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.path, b.stuck = "", nil
}
