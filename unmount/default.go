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
	return New(NewSystem(in, defaultRevoker()), opts...), nil
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

// Close releases what the Unmounter holds (the revoker's tracer thread).
func (u *Unmounter) Close() error {
	if k, ok := u.sys.(*kernel); ok {
		if c, ok := k.revoker.(io.Closer); ok && c != nil {
			return c.Close()
		}
	}
	return nil
}
