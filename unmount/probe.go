package unmount

import (
	"context"
	"errors"
	"fmt"
	"mounttop/internal/kindname"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	// termsafe only for errors and the call names bounded puts in its
	// errors (an error is text: its names are escaped as it is built),
	// and the uses that say why.
	"mounttop/internal/termsafe"
)

// DefaultCallTimeout bounds each call of a staged run that can wait on the
// filesystem's server (Plan.CallTimeout).
const DefaultCallTimeout = 4 * time.Second

// DefaultProbeTimeout is how long the probe waits for the server to answer
// a statfs(2) before it calls it not answering. A live local or FUSE
// server answers in milliseconds; an NFS server over a slow link in well
// under a second.
const DefaultProbeTimeout = 2 * time.Second

// Server is what a probe found out about a filesystem's server (FUSE
// daemon, NFS or CIFS server), and what a staged run does about it.
type Server struct {
	Probed    bool // a probe was made (staged runs only)
	Answering bool // it answered in time (or the probe could not tell: Probe says so)
	// Probe is what the probe saw (present.ServerHow says it).
	Probe Probe
	// Aborted: the connection is cut already (ENOTCONN: `umount --force`
	// or an earlier abort): no request reaches the server any more, every
	// one fails at once, so nothing blocks and nothing can be synced.
	Aborted bool
	// Abort is how a run cuts the filesystem off a server that does not
	// answer, so that blocked callers (and injected close(2) calls) return.
	Abort Abort
}

// AbortKind is how a filesystem is cut off its server.
type AbortKind int

const (
	// AbortNone: no way from userspace (a local filesystem on a device that
	// hangs, a detached network mount that no path names any more).
	AbortNone AbortKind = iota
	// AbortFuseConn: write to /sys/fs/fuse/connections/N/abort (fusectl;
	// fuse_abort_conn): every request of the connection fails with
	// ENOTCONN from then on, and the ones waiting return.
	AbortFuseConn
	// AbortForce: umount2(2) MNT_FORCE, which calls the filesystem's
	// umount_begin before the busy check: FUSE aborts the connection
	// (fuse_umount_begin), NFS kills the RPC tasks in flight
	// (nfs_umount_begin: rpc_killall_tasks), CIFS wakes its waiting
	// requests (cifs_umount_begin). The mount stays (EBUSY) while held;
	// an idle one is unmounted by it. NFS and CIFS requests issued after
	// it may block again, so a run repeats it while holders stay stuck.
	AbortForce
)

// ProbeOutcome is what a probe of a filesystem's server saw.
type ProbeOutcome int

const (
	ProbeAnswered  ProbeOutcome = iota + 1 // statfs returned in Took
	ProbeNoPath                            // not probed: no path leads to the detached mount
	ProbeCancelled                         // the run was cancelled meanwhile (Err)
	// ProbeTimedOut: the call did not return within Limit; Waiting
	// requests wait on FUSE connection Conn (WaitingKnown).
	ProbeTimedOut
	ProbeAborted // ENOTCONN: the connection is aborted already
	ProbeDown    // ETIMEDOUT, EHOSTDOWN, EHOSTUNREACH (Errno)
	ProbeUnsure  // another error (Err): taken as answering
)

// Probe is what a probe, or a later call of the run to the server, saw.
type Probe struct {
	Outcome ProbeOutcome
	// Path is what statfs(2) was asked through (the mount point, a
	// holder's /proc magic link). Call, when set instead, is the run's
	// own call that stopped answering (its words, names escaped as the
	// run built them).
	Path  string
	Call  string
	Took  time.Duration // ProbeAnswered
	Limit time.Duration // ProbeTimedOut
	// Waiting (ProbeTimedOut, FUSE): the requests waiting on connection
	// Conn, when fusectl could tell (WaitingKnown).
	Waiting      int
	WaitingKnown bool
	Conn         uint64
	Errno        unix.Errno // ProbeDown
	Err          string     // ProbeCancelled, ProbeUnsure: the error's message
}

// Abort is the chosen way to cut a filesystem off its server: data that
// present.AbortText says ("abort FUSE connection 45
// (/sys/fs/fuse/connections/45/abort)").
type Abort struct {
	Kind AbortKind
	Conn uint64 // AbortFuseConn: the connection (the superblock's device number)
	// FSType is the filesystem's type ("" for a detached mount, whose
	// type no table names); FUSE and Network say which kind of server it
	// has; Detached: no path names the mount (no MNT_FORCE).
	FSType   string
	FUSE     bool
	Network  bool
	Detached bool
	// Once: an abort lasts (a FUSE connection aborted stays so), so it is
	// done once; NFS and CIFS requests made after MNT_FORCE can block
	// again, so there it is repeated while holders stay stuck.
	Once bool
}

// isFUSE reports a FUSE filesystem type: fuse, fuseblk, fuse.SUBTYPE.
func isFUSE(fstype string) bool {
	return fstype == "fuse" || fstype == "fuseblk" || strings.HasPrefix(fstype, "fuse.")
}

// networkForce lists the network filesystems whose umount_begin aborts
// the requests waiting on their server (umount2(2) MNT_FORCE).
var networkForce = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "9p": true, "ceph": true, "lustre": true,
}

// fuseConn is the FUSE connection number of a mount: fusectl names each
// connection by its superblock's device number as the kernel encodes it
// (fuse_ctl_add_conn: "%u" of fc->dev, MKDEV = major<<20 | minor). For
// fuse (anonymous devices, major 0) that is the minor number.
func fuseConn(m *inspect.Mount) uint64 { return uint64(m.Major)<<20 | uint64(m.Minor) }

// abortFor picks how a run would cut m off its server: the fusectl abort
// file when there is one for its connection, else MNT_FORCE when a path
// still names the mount, else nothing.
//
// A detached mount's type is not known (it is in no table), but a fusectl
// connection named by its device number says it is FUSE: device numbers
// are unique among live superblocks.
func (u *Unmounter) abortFor(m *inspect.Mount) Abort {
	conn := fuseConn(m)
	a := Abort{FSType: m.FSType, FUSE: isFUSE(m.FSType), Network: networkForce[m.FSType], Detached: m.Detached}
	if a.FUSE || m.FSType == "" {
		if _, err := u.sys.FuseWaiting(conn); err == nil {
			a.Kind, a.Conn, a.Once = AbortFuseConn, conn, true
			return a
		}
	}
	switch {
	case a.FUSE && !m.Detached:
		a.Kind, a.Once = AbortForce, true
	case a.Network && !m.Detached:
		a.Kind = AbortForce
	}
	return a
}

// FuseConnections is where fusectl is mounted: a directory per FUSE
// connection, with its abort and waiting files.
const FuseConnections = fuseConnections

// probe asks the filesystem of m, through path (the mount point, the
// fenced mount in the stash, or a holder's /proc magic link), for
// statfs(2), waiting at most limit. O_PATH opens and statx of /proc links
// with AT_STATX_DONT_SYNC never reach the server; statfs does (FUSE
// STATFS, NFS FSSTAT). An empty path: nothing to ask it by.
func (u *Unmounter) probe(ctx context.Context, m *inspect.Mount, path string, limit time.Duration) Server {
	s := Server{Probed: true, Answering: true, Abort: u.abortFor(m), Probe: Probe{Path: path}}
	if path == "" {
		s.Probe.Outcome = ProbeNoPath
		return s
	}
	start := time.Now()
	op := "statfs of " + termsafe.Quote(path) // bounded's words for an abandoned call
	err := u.calls.Do(ctx, limit, op, bounded.AnyThread, func() error { return u.sys.Statfs(path, m.ID) })
	var ab *bounded.Abandoned
	switch {
	case err == nil:
		s.Probe.Outcome, s.Probe.Took = ProbeAnswered, time.Since(start).Round(100*time.Microsecond)
	case errors.As(err, &ab) && ab.Cancelled:
		s.Probe.Outcome, s.Probe.Err = ProbeCancelled, ab.Error()
	case errors.As(err, &ab):
		s.Answering = false
		s.Probe.Outcome, s.Probe.Limit = ProbeTimedOut, limit
		if isFUSE(m.FSType) || s.Abort.Kind == AbortFuseConn {
			if n, werr := u.sys.FuseWaiting(fuseConn(m)); werr == nil {
				s.Probe.Waiting, s.Probe.WaitingKnown, s.Probe.Conn = n, true, fuseConn(m)
			}
		}
	case errors.Is(err, unix.ENOTCONN):
		s.Answering, s.Aborted = false, true
		s.Probe.Outcome = ProbeAborted
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, unix.EHOSTDOWN), errors.Is(err, unix.EHOSTUNREACH):
		s.Answering = false
		s.Probe.Outcome, s.Probe.Errno = ProbeDown, errnoOf(err)
	default:
		s.Probe.Outcome, s.Probe.Err = ProbeUnsure, oneLine(err.Error())
	}
	return s
}

// errnoOf is the errno inside err, 0 if none.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	errors.As(err, &e)
	return e
}

// holderLink is a /proc magic link to something a holder has open on the
// mount (an fd, a thread's cwd, a mapping), for probing a mount no path
// names: a detached one, or one under an over-mount fence. Opening it with
// O_PATH leads to the file itself without a lookup on the filesystem.
func holderLink(hs []inspect.Holder, skip map[int]bool) string {
	for _, h := range hs {
		if skip[h.PID] {
			continue
		}
		for _, use := range h.Uses {
			switch use.Kind {
			case inspect.UseFD:
				if use.TID != 0 {
					return fmt.Sprintf("/proc/%d/task/%d/fd/%d", h.PID, use.TID, use.FD)
				}
				return fmt.Sprintf("/proc/%d/fd/%d", h.PID, use.FD)
			case inspect.UseCwd:
				tid := use.TID
				if tid == 0 {
					tid = h.PID
				}
				return fmt.Sprintf("/proc/%d/task/%d/cwd", h.PID, tid)
			case inspect.UseMmap:
				return fmt.Sprintf("/proc/%d/map_files/%x-%x", h.PID, use.Start, use.End)
			}
		}
	}
	return ""
}

// probeLimit is the probe's deadline: DefaultProbeTimeout, within the
// plan's CallTimeout.
func probeLimit(p *Plan) time.Duration {
	if p.CallTimeout > 0 && p.CallTimeout < DefaultProbeTimeout {
		return p.CallTimeout
	}
	return DefaultProbeTimeout
}

// abortKindNames are the AbortKind values' names, for logs and tests (String).
var abortKindNames = [...]string{AbortNone: "none", AbortFuseConn: "fuse-conn", AbortForce: "force"}

// String names the AbortKind (kindname.Of).
func (a AbortKind) String() string { return kindname.Of("AbortKind", abortKindNames[:], int(a), 0) }

// probeOutcomeNames are the ProbeOutcome values' names, for logs and tests (String).
var probeOutcomeNames = [...]string{ProbeAnswered - 1: "answered", ProbeNoPath - 1: "no-path", ProbeCancelled - 1: "cancelled", ProbeTimedOut - 1: "timed-out", ProbeAborted - 1: "aborted", ProbeDown - 1: "down", ProbeUnsure - 1: "unsure"}

// String names the ProbeOutcome (kindname.Of).
func (p ProbeOutcome) String() string {
	return kindname.Of("ProbeOutcome", probeOutcomeNames[:], int(p), 1)
}
