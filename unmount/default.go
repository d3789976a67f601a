package unmount

import (
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
