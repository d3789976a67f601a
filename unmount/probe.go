package unmount

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
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
	Probed    bool   // a probe was made (staged runs only)
	Answering bool   // it answered in time (or the probe could not tell: How says so)
	How       string // what the probe saw, in the operator's words
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

// Abort is the chosen way to cut a filesystem off its server.
type Abort struct {
	Kind AbortKind
	Conn uint64 // AbortFuseConn: the connection (the superblock's device number)
	What string // in words: "abort FUSE connection 45 (/sys/fs/fuse/connections/45/abort)"
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
	if isFUSE(m.FSType) || m.FSType == "" {
		if _, err := u.sys.FuseWaiting(conn); err == nil {
			return Abort{Kind: AbortFuseConn, Conn: conn, Once: true, What: fmt.Sprintf("abort FUSE connection %d (%s/%d/abort)", conn, fuseConnections, conn)}
		}
	}
	fstype := termsafe.Text(m.FSType)
	if fstype == "" {
		fstype = "its filesystem (of a type no table names: it is detached)"
	}
	switch {
	case isFUSE(m.FSType):
		if !m.Detached {
			return Abort{Kind: AbortForce, Once: true, What: "abort the FUSE connection by umount2(MNT_FORCE) (fuse_umount_begin; fusectl is not mounted at " + fuseConnections + ")"}
		}
		return Abort{What: "nothing can abort the FUSE connection: fusectl is not mounted at " + fuseConnections + " and no path names the detached mount for MNT_FORCE"}
	case networkForce[m.FSType] && !m.Detached:
		return Abort{Kind: AbortForce, What: fmt.Sprintf("abort the requests waiting on the %s server by umount2(MNT_FORCE) (umount_begin), again on each drain pass while holders stay stuck", termsafe.Text(m.FSType))}
	case networkForce[m.FSType]:
		return Abort{What: "nothing can abort the requests to the server: MNT_FORCE needs a path, and the mount is detached"}
	}
	return Abort{What: fmt.Sprintf("nothing in userspace can cut %s off what it waits on", fstype)}
}

// probe asks the filesystem of m, through path (the mount point, the
// fenced mount in the stash, or a holder's /proc magic link), for
// statfs(2), waiting at most limit. O_PATH opens and statx of /proc links
// with AT_STATX_DONT_SYNC never reach the server; statfs does (FUSE
// STATFS, NFS FSSTAT). An empty path: nothing to ask it by.
func (u *Unmounter) probe(ctx context.Context, m *inspect.Mount, path string, limit time.Duration) Server {
	s := Server{Probed: true, Answering: true, Abort: u.abortFor(m)}
	if path == "" {
		s.How = "not probed: no path leads to the detached mount and no holder's fd or cwd does either"
		return s
	}
	start := time.Now()
	op := "statfs of " + termsafe.Quote(path)
	err := u.calls.Do(ctx, limit, op, bounded.AnyThread, func() error { return u.sys.Statfs(path, m.ID) })
	var ab *bounded.Abandoned
	switch {
	case err == nil:
		s.How = fmt.Sprintf("the server answers (%s took %v)", op, time.Since(start).Round(100*time.Microsecond))
	case errors.As(err, &ab) && ab.Cancelled:
		s.How = "the probe was cancelled: " + ab.Error()
	case errors.As(err, &ab):
		s.Answering = false
		s.How = fmt.Sprintf("%s did not return within %v", op, limit)
		if isFUSE(m.FSType) || s.Abort.Kind == AbortFuseConn {
			if n, werr := u.sys.FuseWaiting(fuseConn(m)); werr == nil {
				s.How += fmt.Sprintf("; %d %s waiting on FUSE connection %d", n, plural(n, "request"), fuseConn(m))
			}
		}
	case errors.Is(err, unix.ENOTCONN):
		s.Answering, s.Aborted = false, true
		s.How = op + ": ENOTCONN: the connection to the server is aborted already; every request fails at once"
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, unix.EHOSTDOWN), errors.Is(err, unix.EHOSTUNREACH):
		s.Answering = false
		s.How = fmt.Sprintf("%s: %s (the server does not answer)", op, unix.ErrnoName(errnoOf(err)))
	default:
		s.How = fmt.Sprintf("the probe could not tell (%s: %s); taken as answering", op, oneLine(err.Error()))
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

// deadServerPlan is the plan's sentence for a server that does not answer:
// what cannot be done and what the run does instead.
func deadServerPlan(p *Plan) string {
	s := &p.Server
	var b strings.Builder
	if s.Aborted {
		fmt.Fprintf(&b, ": the connection to the server is aborted already (%s): data not yet written is lost; so: no syncfs", s.How)
	} else {
		fmt.Fprintf(&b, ": the server is not answering (%s): data not yet written cannot be synced; instead: ", s.How)
		if s.Abort.Kind != AbortNone {
			b.WriteString(s.Abort.What + " (holders' I/O on the mount then fails), ")
		} else {
			b.WriteString("(" + s.Abort.What + ") ")
		}
		b.WriteString("skip syncfs")
	}
	if p.Target.Detached {
		fmt.Fprintf(&b, ", no fence (detached), revoke by %s, drain every %v for up to %v until no process holds it", p.Policy, p.Interval, p.Timeout)
	} else {
		fmt.Fprintf(&b, ", fence, revoke by %s, drain every %v for up to %v, unmount", p.Policy, p.Interval, p.Timeout)
	}
	return b.String()
}
