package unmount

import (
	"context"
	"io"

	"mounttop/inspect"
)

// Default returns an Unmounter on the live system: the caller's mount
// namespace read through /proc, revoking with the ptrace revoker.
func Default(opts ...Option) (*Unmounter, error) {
	in, err := inspect.New("/proc")
	if err != nil {
		return nil, err
	}
	u := New(nil, opts...)
	u.sys = NewSystem(in, defaultRevoker(u.journal))
	return u, nil
}

// Run is Default().Run: it carries out plan p on the live system. A failure
// to start is reported as the single StageDone event.
func Run(ctx context.Context, p Plan) <-chan Event {
	u, err := Default()
	if err != nil {
		ch := make(chan Event, 1)
		ch <- Event{Stage: StageDone, Err: err, Result: &Result{Summary: "cannot read the system: " + err.Error()}}
		close(ch)
		return ch
	}
	return u.Run(ctx, p)
}

// Close releases what the Unmounter holds: the connection to the
// revoker's tracer process. The error, if any, names the processes the
// tracer process still holds inside an injected syscall; it restores them
// and exits on its own when their calls return.
func (u *Unmounter) Close() error {
	if k, ok := u.sys.(*kernel); ok {
		if c, ok := k.revoker.(io.Closer); ok && c != nil {
			return c.Close()
		}
	}
	return nil
}

// Lazy is Default().Lazy: umount2(MNT_DETACH|UMOUNT_NOFOLLOW) of the
// inspected mount, after re-checking its identity.
func Lazy(ctx context.Context, m *inspect.Mount) error {
	return withDefault(func(u *Unmounter) error { return u.Lazy(ctx, m) })
}

// Force is Default().Force: umount2(MNT_FORCE|UMOUNT_NOFOLLOW).
func Force(ctx context.Context, m *inspect.Mount) error {
	return withDefault(func(u *Unmounter) error { return u.Force(ctx, m) })
}

// Expire is Default().Expire with the expiry book b (nil: in memory, so a
// mark cleared between two calls is noticed only within one Unmounter).
func Expire(ctx context.Context, m *inspect.Mount, b *ExpiryBook) (ExpireResult, error) {
	var opts []Option
	if b != nil {
		opts = append(opts, WithExpiryBook(b))
	}
	var res ExpireResult
	err := withDefault(func(u *Unmounter) error {
		var err error
		res, err = u.Expire(ctx, m)
		return err
	}, opts...)
	return res, err
}

func withDefault(fn func(*Unmounter) error, opts ...Option) error {
	u, err := Default(opts...)
	if err != nil {
		return err
	}
	defer u.Close()
	return fn(u)
}
