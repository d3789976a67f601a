package unmount

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
)

// Sentinels for the refusals and failures that are not an errno. Callers
// test them with errors.Is; `mounttop umount` maps ErrRefused to exit 2.
var (
	// ErrRefused: the request was refused before anything changed (the
	// root mount, mounttop's own executable or cwd, submounts without
	// --recursive, expire of a mount with submounts).
	ErrRefused = errors.New("refused")
	// ErrChanged: between inspection and the call the path came to name
	// another mount (a new mount on top, a swapped path component), or the
	// inspected mount moved; acting now could hit the wrong mount.
	ErrChanged = errors.New("the path no longer names the mount that was inspected")
	// ErrGone: the inspected mount is no longer in this namespace.
	ErrGone = errors.New("the mount is already gone")
	// ErrStillThere: umount2 reported success but the mount is still in
	// the table (or statmount still finds it).
	ErrStillThere = errors.New("still mounted after umount2 returned success")
	// ErrTimeout: the drain did not empty the mount before the timeout.
	ErrTimeout = errors.New("holders remain after the timeout")
	// ErrCancelled: the run was cancelled by the operator.
	ErrCancelled = errors.New("cancelled")
)

// Error is a failed unmount step with what was attempted. Err is the errno
// (unix.EBUSY, EINVAL, EPERM, ...) or one of the sentinels above, so
// callers use errors.Is(err, unix.EBUSY). The message explains itself in
// the operator's words: EBUSY names the holders, EINVAL says "not a mount
// point", EPERM says it needs root, submounts are listed.
type Error struct {
	Op     string // "umount", "umount --expire", "fence", "plan", ...
	Target string // the mount point as the operator named it
	Flags  int    // umount2(2) flags, move_mount(2) flags, ...
	Err    error

	Holders   []inspect.Holder // EBUSY: who holds the mount (from a scan)
	Submounts []inspect.Mount  // mounts below the target
	Hint      string           // what to try instead ("use --staged")
	// Busy (EBUSY): what else holds it (kernel holders, held copies).
	Busy []BusyReason
	// ForceIgnored (EBUSY of a force): the filesystem ignores MNT_FORCE.
	ForceIgnored *ForceIgnoredFS
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Target != "" {
		b.WriteString(" " + termsafe.Quote(e.Target))
	}
	b.WriteString(": ")
	b.WriteString(explain(e.Err))
	if len(e.Holders) > 0 {
		b.WriteString("; held by " + scantext.HolderList(e.Holders, 5))
	}
	if len(e.Submounts) > 0 {
		b.WriteString("; submounts: " + scantext.MountList(e.Submounts, 5))
	}
	if h := e.hints(); h != "" {
		b.WriteString(" (" + h + ")")
	}
	return b.String()
}

// explain turns an errno from umount2(2)/move_mount(2) into the operator's
// words, keeping the errno name so it can be looked up.
func explain(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		if err == nil {
			return "failed"
		}
		return err.Error()
	}
	switch errno {
	case unix.EBUSY:
		return "busy (EBUSY)"
	case unix.EINVAL:
		return "not a mount point (EINVAL)"
	case unix.EPERM:
		return "needs root: unmounting takes CAP_SYS_ADMIN in the mount's namespace (EPERM)"
	case unix.ENOENT:
		return "no such file or directory (ENOENT)"
	case unix.EAGAIN:
		return "marked for expiry (EAGAIN)"
	case unix.ENOSYS:
		return "not supported by this kernel (ENOSYS)"
	}
	return fmt.Sprintf("%v (%s)", errno.Error(), unix.ErrnoName(errno))
}

// ErrHolderGone is what a Revoker returns for a process that exited.
var ErrHolderGone = errors.New("the process exited")

// ErrTransient marks a revoke failure that may pass (errors.Is): a holder
// that did not reach a ptrace stop (D state) or an injected call that hung.
// The drain tries such a holder again on every pass.
var ErrTransient = errors.New("may pass")

// transient wraps a Revoker error as ErrTransient, keeping its message.
type transient struct{ err error }

func (e transient) Error() string        { return e.err.Error() }
func (e transient) Unwrap() error        { return e.err }
func (e transient) Is(target error) bool { return target == ErrTransient }

// ErrReleaseFailed ends a run whose mount is gone (verified) while a
// release of the plan failed: what it was to free (a copy in another
// namespace, a loop device, a swap file) still holds the filesystem.
var ErrReleaseFailed = errors.New("a release failed")

// callOn names a bounded call on a path ("syncfs of '/mnt/x'"), as its
// error (bounded.Abandoned) and Unmounter.Pending say it: error text, so
// the name is escaped here, where the text is made, like every error's.
func callOn(call, path string) string { return call + " " + termsafe.Quote(path) }
