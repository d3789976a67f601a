package unmount

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/internal/termsafe"
)

// The words below are internal/present's (present.RefusalText,
// ReleaseText, ReleaseRefusalText, ServerHow, AbortText, FilesystemText),
// said again here only for the run's events that still carry a sentence
// (Event.What, Result.Summary, HolderState.Reason) instead of a Note.
// They go with those sentences (issue 11: one renderer speaks); nothing
// new may use them.

// legacyText is present.RefusalText.
func (r Refusal) legacyText() string {
	switch r {
	case RefusalExe:
		return "its executable is on the mount: it cannot be revoked, only stopped (--revoke=signal)"
	case RefusalRoot:
		return "its root directory (chroot) is on the mount: it cannot be revoked, only stopped (--revoke=signal)"
	}
	return ""
}

// legacyWhat is present.ReleaseText.
func (r Release) legacyWhat() string {
	switch r.Kind {
	case ReleaseLoop:
		return fmt.Sprintf("detach loop device %s (its backing file %s)", termsafe.Quote(r.Name), termsafe.Quote(r.BackingFile))
	case ReleaseSwap:
		return fmt.Sprintf("swapoff %s (its pages move back to memory)", termsafe.Quote(r.Name))
	}
	ns := fmt.Sprintf("mnt:[%d]", r.Namespace)
	switch {
	case !r.HostKnown:
		ns += " (the host's? unknown: pid 1's namespace is unreadable)"
	case r.Host:
		ns += " (the host's: pid 1's)"
	}
	s := fmt.Sprintf("unmount its copy at %s in mount namespace %s (pid %d)", termsafe.Quote(r.Mountpoint), ns, r.PID)
	if len(r.Holders) > 0 {
		s += ", lazily (held there by " + holderList(r.Holders, 3) + ", which keep it alive until they let go)"
	}
	if r.Propagates {
		s += "; our unmount propagates to it: a staged run revokes its holders there instead and takes it along"
	}
	return s
}

// legacyRefused is present.ReleaseRefusalText.
func (r Release) legacyRefused() string {
	switch r.Refusal {
	case ReleaseLoopMounted:
		at := "at " + termsafe.Quote(r.RefusedAt)
		if r.RefusedIn != 0 {
			at += fmt.Sprintf(" in mount namespace mnt:[%d]", r.RefusedIn)
		}
		return "the loop device is itself mounted (" + at + "): unmount it first"
	case ReleaseNoEntry:
		return "no process of that namespace is known to enter it through"
	case ReleaseHostNamespace:
		return "it is the host's mount namespace (pid 1's): releasing there needs an explicit confirmation (--release-host)"
	}
	return ""
}

// legacyHow is present.ServerHow.
func (s Server) legacyHow() string {
	pr := s.Probe
	op := pr.Call
	if op == "" {
		op = "statfs of " + termsafe.Quote(pr.Path)
	}
	switch pr.Outcome {
	case ProbeAnswered:
		return fmt.Sprintf("the server answers (%s took %v)", op, pr.Took)
	case ProbeNoPath:
		return "not probed: no path leads to the detached mount and no holder's fd or cwd does either"
	case ProbeCancelled:
		return "the probe was cancelled: " + pr.Err
	case ProbeTimedOut:
		s := fmt.Sprintf("%s did not return within %v", op, pr.Limit)
		if pr.WaitingKnown {
			s += fmt.Sprintf("; %d %s waiting on FUSE connection %d", pr.Waiting, plural(pr.Waiting, "request"), pr.Conn)
		}
		return s
	case ProbeAborted:
		return op + ": ENOTCONN: the connection to the server is aborted already; every request fails at once"
	case ProbeDown:
		return fmt.Sprintf("%s: %s (the server does not answer)", op, unix.ErrnoName(pr.Errno))
	case ProbeUnsure:
		return fmt.Sprintf("the probe could not tell (%s: %s); taken as answering", op, pr.Err)
	}
	return ""
}

// legacyWhat is present.AbortText.
func (a Abort) legacyWhat() string {
	switch {
	case a.Kind == AbortFuseConn:
		return fmt.Sprintf("abort FUSE connection %d (%s/%d/abort)", a.Conn, fuseConnections, a.Conn)
	case a.Kind == AbortForce && a.FUSE:
		return "abort the FUSE connection by umount2(MNT_FORCE) (fuse_umount_begin; fusectl is not mounted at " + fuseConnections + ")"
	case a.Kind == AbortForce:
		return fmt.Sprintf("abort the requests waiting on the %s server by umount2(MNT_FORCE) (umount_begin), again on each drain pass while holders stay stuck", termsafe.Text(a.FSType))
	case a.FUSE:
		return "nothing can abort the FUSE connection: fusectl is not mounted at " + fuseConnections + " and no path names the detached mount for MNT_FORCE"
	case a.Network:
		return "nothing can abort the requests to the server: MNT_FORCE needs a path, and the mount is detached"
	}
	fstype := termsafe.Text(a.FSType)
	if fstype == "" {
		fstype = "its filesystem (of a type no table names: it is detached)"
	}
	return fmt.Sprintf("nothing in userspace can cut %s off what it waits on", fstype)
}

// legacyText is present.FilesystemUseText: "the mount /y", "the overlay /z in
// mount namespace mnt:[N]", "a detached mount held by pid 812".
func (f FilesystemUse) legacyText() string {
	var s string
	switch f.Kind {
	case "mount":
		s = "the mount " + termsafe.Quote(f.Where)
	case "detached":
		s = "a detached mount"
		if len(f.PIDs) > 0 {
			ps := make([]string, len(f.PIDs))
			for i, p := range f.PIDs {
				ps[i] = fmt.Sprint(p)
			}
			s += " held by pid " + strings.Join(ps, ", ")
		}
	case "loop":
		s = "the loop device " + termsafe.Quote(f.Where)
	case "swap":
		s = "the swap file " + termsafe.Quote(f.Where)
	case "device":
		s = "a claim on the block device " + termsafe.Quote(f.Where) + " (open O_EXCL: EBUSY)"
	default:
		s = "the " + termsafe.Text(f.Kind) + " " + termsafe.Quote(f.Where)
	}
	if f.Namespace != 0 {
		s += fmt.Sprintf(" in mount namespace mnt:[%d]", f.Namespace)
		if f.Host {
			s += " (the host's)"
		}
	}
	return s
}

// legacyText is present.FilesystemText: "filesystem released" or
// "filesystem still in use by: ...".
func (f *Filesystem) legacyText() string {
	switch {
	case !f.Checked:
		return "whether the filesystem is released is unknown: " + f.Note
	case len(f.InUseBy) > 0:
		return "filesystem still in use by: " + f.uses()
	case !f.Released:
		return "no other use of the filesystem found, but " + f.Note
	}
	s := "filesystem released"
	if f.Exclusive {
		s += " (the block device " + termsafe.Quote(f.DeviceName) + " opens exclusively)"
	}
	return s
}

func (f *Filesystem) uses() string {
	s := make([]string, len(f.InUseBy))
	for i, u := range f.InUseBy {
		s[i] = u.legacyText()
	}
	return strings.Join(s, "; ")
}
