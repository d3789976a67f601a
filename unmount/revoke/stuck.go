package revoke

import (
	"fmt"
	"strings"
	"time"

	"mounttop/internal/termsafe"
)

// StuckError is ErrStuck with what the process was left inside: an
// injected syscall that did not return within the inject timeout, typically
// close(2) (or the dup3(2) of a placeholder, which closes the old file too)
// whose FUSE FLUSH or NFS/CIFS flush waits on a server that does not answer
// (DESIGN.md, "Dead servers"). A thread inside a syscall cannot be handed
// back: the tracer keeps the process stopped until the call returns, then
// restores its registers, hands back held signals and detaches it.
type StuckError struct {
	PID     int
	TID     int           // the thread the syscall runs in
	Syscall string        // "close"
	Arg     string        // "fd 7": the argument that names what it works on
	FSType  string        // the filesystem type of that fd's mount ("fuse.bindfs"), "" when not known
	Mount   string        // that mount's mount point (exact text), "" when not known
	After   time.Duration // how long it had been waited for when this was said
}

func (e *StuckError) Error() string {
	return fmt.Sprintf("process %d: %v: left inside %s for more than %v; it stays stopped until the call returns, then it is restored and released",
		e.PID, ErrStuck, e.Inside(), e.After.Round(time.Millisecond))
}

// Inside says what the process is inside, terminal-safe: "close(fd 7),
// waiting on the FUSE server (fuse.sshfs on /mnt/dead)".
func (e *StuckError) Inside() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%s)", e.Syscall, e.Arg)
	if e.FSType != "" {
		fmt.Fprintf(&b, ", waiting on %s (%s", serverOf(e.FSType), termsafe.Text(e.FSType))
		if e.Mount != "" {
			b.WriteString(" on " + termsafe.Quote(e.Mount))
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrStuck) true.
func (e *StuckError) Unwrap() error { return ErrStuck }

// serverOf names, in the operator's words, who a call on a filesystem of
// type fstype (mountinfo's field, "fuse.sshfs") waits on.
func serverOf(fstype string) string {
	base, _, _ := strings.Cut(fstype, ".")
	switch base {
	case "fuse", "fuseblk":
		return "the FUSE server"
	case "nfs", "nfs4":
		return "the NFS server"
	case "cifs", "smb3":
		return "the SMB server"
	case "9p":
		return "the 9P server"
	case "ceph":
		return "the Ceph cluster"
	}
	return "the filesystem"
}
