package present

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// planNoteText renders the notes of the plan, releases, refusals and
// leftovers.
func planNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.PlanNote:
		return PlanSentence(&n.Plan, n.Later...), true
	case unmount.ReleaseIntent:
		return ReleaseText(n.Release), true
	case unmount.ReleaseOutcome:
		if n.Done {
			return "done: " + ReleaseText(n.Release), true
		}
		return ReleaseText(n.Release), true
	case unmount.LeftoverIntent:
		return LeftoverDescribe(n.Leftover, ""), true
	case unmount.LeftoverRolledBack:
		return leftoverRolledBackText(n), true
	}
	return "", false
}

// PlanSentence is the one-paragraph plan shown before anything changes
// (the plan event's words): mode, target, what a staged run does, the
// submounts and stacked filesystems first, the holders, the releases,
// the forecast for the filesystem, then every warning (the plan's, then
// later ones the run found as it started).
func PlanSentence(p *unmount.Plan, later ...unmount.PlanWarning) string {
	var b strings.Builder
	m := &p.Target
	fmt.Fprintf(&b, "%s unmount of %s (%s %s, mount %d)", p.Mode, termsafe.Quote(planTarget(m)),
		termsafe.Text(m.FSType), termsafe.Text(m.Source), m.ID)
	switch {
	case p.Mode == unmount.ModeStaged && p.Server.Probed && !p.Server.Answering:
		b.WriteString(deadServerPlan(p))
	case p.Mode == unmount.ModeStaged && m.Detached:
		fmt.Fprintf(&b, ": no fence and no syncfs (it is detached: in no mount table), revoke by %s, drain every %v for up to %v until no process holds it", p.Policy, p.Interval, p.Timeout)
	case p.Mode == unmount.ModeStaged:
		fmt.Fprintf(&b, ": fence, syncfs, revoke by %s, drain every %v for up to %v", p.Policy, p.Interval, p.Timeout)
	}
	if p.Mode == unmount.ModeExpire && p.ExpireWhenIdle {
		fmt.Fprintf(&b, ": re-arm MNT_EXPIRE every %v until it goes", p.Interval)
	}
	if n := len(p.Submounts); n > 0 {
		fmt.Fprintf(&b, "; %s first, deepest first: %s", Plural(n, "submount"), scantext.MountList(p.Submounts, 5))
	}
	if len(p.Stacked) > 0 {
		fmt.Fprintf(&b, "; before it, unmount what uses it as a layer: %s", scantext.MountList(p.Stacked, 5))
	}
	refused := 0
	for _, h := range p.Holders {
		if h.Refused() {
			refused++
		}
	}
	fmt.Fprintf(&b, "; %s", Plural(len(p.Holders), "holder"))
	if refused > 0 {
		fmt.Fprintf(&b, " (%d cannot be revoked)", refused)
	}
	if n := len(p.Releases); n > 0 && p.Mode == unmount.ModeStaged {
		var what []string
		for _, r := range p.Releases {
			w := ReleaseText(r)
			if r.Refused() {
				w += " (cannot: " + ReleaseRefusalText(r) + ")"
			}
			what = append(what, w)
		}
		if p.Release {
			fmt.Fprintf(&b, "; then %s: %s", Plural(n, "release"), strings.Join(what, "; "))
		} else {
			fmt.Fprintf(&b, "; %s (with --release): %s", Plural(n, "release"), strings.Join(what, "; "))
		}
	}
	if s := FilesystemPlanText(&p.Filesystem); s != "" {
		b.WriteString("; " + s)
	}
	for _, w := range append(append([]unmount.PlanWarning(nil), p.Warnings...), later...) {
		b.WriteString("; " + PlanWarningText(w))
	}
	return b.String()
}

// planTarget names the plan's target: its mount point, or for a detached
// mount "(detached mount N)".
func planTarget(m *inspect.Mount) string {
	if m.Detached {
		return fmt.Sprintf("(detached mount %d)", m.ID)
	}
	return m.Mountpoint
}

// deadServerPlan is the plan's sentence for a server that does not answer:
// what cannot be done and what the run does instead.
func deadServerPlan(p *unmount.Plan) string {
	s := &p.Server
	var b strings.Builder
	if s.Aborted {
		fmt.Fprintf(&b, ": the connection to the server is aborted already (%s): data not yet written is lost; so: no syncfs", ServerHow(*s))
	} else {
		fmt.Fprintf(&b, ": the server is not answering (%s): data not yet written cannot be synced; instead: ", ServerHow(*s))
		if s.Abort.Kind != unmount.AbortNone {
			b.WriteString(AbortText(s.Abort) + " (holders' I/O on the mount then fails), ")
		} else {
			b.WriteString("(" + AbortText(s.Abort) + ") ")
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

// PlanWarningText is one warning of a plan in the operator's words.
func PlanWarningText(w unmount.PlanWarning) string {
	switch w.Kind {
	case unmount.WarnAutomount:
		return termsafe.Text(w.Detail)
	case unmount.WarnForceIgnored:
		return ForceIgnoredText(w.FSType)
	case unmount.WarnAllowedSystem:
		return "allowed by --allow-system-mount: " + termsafe.Text(w.Detail)
	case unmount.WarnSelfUnknown:
		return "could not check mounttop's own executable, cwd and /proc: " + termsafe.Message(w.Message)
	case unmount.WarnStacked:
		return "--recursive unmounts first what uses it as a layer: " + scantext.MountList(w.Mounts, 5)
	case unmount.WarnBusy:
		held := "held by " + BusyReasonText(w.Reason)
		switch w.Busy {
		case unmount.BusyReleased:
			return held + " (released during the run)"
		case unmount.BusyWithRelease:
			return held + " (no revoke of ours releases it; a staged run with --release does)"
		}
		return held + " (no revoke can release it)"
	case unmount.WarnAliveElsewhere:
		pids := ""
		if n := len(w.PIDs); n > 0 {
			pids = fmt.Sprintf(" (pid %d", w.PIDs[0])
			if n > 1 {
				pids += fmt.Sprintf(" and %d more", n-1)
			}
			pids += ")"
		}
		return fmt.Sprintf("the filesystem is also mounted in mount namespace mnt:[%d]%s at %s: it stays alive there after this unmount",
			w.Namespace, pids, termsafe.Quote(w.Mountpoint))
	case unmount.WarnAlsoMounted:
		return fmt.Sprintf("the filesystem is also mounted at %s: it stays alive there", termsafe.Quote(w.Mountpoint))
	case unmount.WarnPartialScan:
		return fmt.Sprintf("the scan was partial (%d warnings, first: %s)", w.Count, termsafe.Text(w.Detail))
	case unmount.WarnJournal:
		return StateMoveText(w.State)
	}
	return termsafe.Text(w.Detail) + termsafe.Message(w.Message)
}

// RefusalText is why a holder cannot be revoked by ptrace injection.
func RefusalText(r unmount.Refusal) string {
	switch r {
	case unmount.RefusalExe:
		return "its executable is on the mount: it cannot be revoked, only stopped (--revoke=signal)"
	case unmount.RefusalRoot:
		return "its root directory (chroot) is on the mount: it cannot be revoked, only stopped (--revoke=signal)"
	}
	return ""
}

// ServerHow says what the probe of a filesystem's server saw.
func ServerHow(s unmount.Server) string {
	pr := s.Probe
	op := termsafe.Message(pr.Call)
	if pr.Call == "" {
		op = "statfs of " + termsafe.Quote(pr.Path)
	}
	switch pr.Outcome {
	case unmount.ProbeAnswered:
		return fmt.Sprintf("the server answers (%s took %v)", op, pr.Took)
	case unmount.ProbeNoPath:
		return "not probed: no path leads to the detached mount and no holder's fd or cwd does either"
	case unmount.ProbeCancelled:
		return "the probe was cancelled: " + termsafe.Message(pr.Err)
	case unmount.ProbeTimedOut:
		out := fmt.Sprintf("%s did not return within %v", op, pr.Limit)
		if pr.WaitingKnown {
			out += fmt.Sprintf("; %s waiting on FUSE connection %d", Plural(pr.Waiting, "request"), pr.Conn)
		}
		return out
	case unmount.ProbeAborted:
		return op + ": ENOTCONN: the connection to the server is aborted already; every request fails at once"
	case unmount.ProbeDown:
		return fmt.Sprintf("%s: %s (the server does not answer)", op, unix.ErrnoName(pr.Errno))
	case unmount.ProbeUnsure:
		return fmt.Sprintf("the probe could not tell (%s: %s); taken as answering", op, termsafe.Message(pr.Err))
	}
	return ""
}

// AbortText says how a run cuts the filesystem off a server that does not
// answer, or why nothing can.
func AbortText(a unmount.Abort) string {
	fc := unmount.FuseConnections
	switch {
	case a.Kind == unmount.AbortFuseConn:
		return fmt.Sprintf("abort FUSE connection %d (%s/%d/abort)", a.Conn, fc, a.Conn)
	case a.Kind == unmount.AbortForce && a.FUSE:
		return "abort the FUSE connection by umount2(MNT_FORCE) (fuse_umount_begin; fusectl is not mounted at " + fc + ")"
	case a.Kind == unmount.AbortForce:
		return fmt.Sprintf("abort the requests waiting on the %s server by umount2(MNT_FORCE) (umount_begin), again on each drain pass while holders stay stuck", termsafe.Text(a.FSType))
	case a.FUSE:
		return "nothing can abort the FUSE connection: fusectl is not mounted at " + fc + " and no path names the detached mount for MNT_FORCE"
	case a.Network:
		return "nothing can abort the requests to the server: MNT_FORCE needs a path, and the mount is detached"
	}
	fstype := termsafe.Text(a.FSType)
	if fstype == "" {
		fstype = "its filesystem (of a type no table names: it is detached)"
	}
	return fmt.Sprintf("nothing in userspace can cut %s off what it waits on", fstype)
}

// FilesystemUseText is one use of a filesystem in operator words: "the
// mount /y", "the overlay /z in mount namespace mnt:[N]", "a detached
// mount held by pid 812".
func FilesystemUseText(f unmount.FilesystemUse) string {
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

func filesystemUses(f *unmount.Filesystem) string {
	s := make([]string, len(f.InUseBy))
	for i, u := range f.InUseBy {
		s[i] = FilesystemUseText(u)
	}
	return strings.Join(s, "; ")
}

// FilesystemText is the finding after an unmount: "filesystem released"
// or "filesystem still in use by: ...", or why that is unknown
// (DoubtText).
func FilesystemText(f *unmount.Filesystem) string {
	switch {
	case !f.Checked:
		return "whether the filesystem is released is unknown: " + DoubtText(f.Doubt)
	case len(f.InUseBy) > 0:
		return "filesystem still in use by: " + filesystemUses(f)
	case !f.Released:
		return "no other use of the filesystem found, but " + DoubtText(f.Doubt)
	}
	s := "filesystem released"
	if f.Exclusive {
		s += " (the block device " + termsafe.Quote(f.DeviceName) + " opens exclusively)"
	}
	return s
}

// FilesystemPlanText is the plan's forecast: what will keep the
// filesystem in use once the target (and its submounts) is unmounted; ""
// when it was not checked.
func FilesystemPlanText(f *unmount.Filesystem) string {
	switch {
	case !f.Checked:
		return ""
	case len(f.InUseBy) > 0:
		return "after this unmount the filesystem stays in use by: " + filesystemUses(f)
	}
	return "after this unmount nothing mounttop can see uses the filesystem: it is released"
}

// ReleaseText says what a release does, in the operator's words: "detach
// loop device /dev/loop3 (its backing file /img)", "swapoff /swap (its
// pages move back to memory)", "unmount its copy at /x in mount namespace
// mnt:[N] (pid 812), lazily (held there by ...)".
func ReleaseText(r unmount.Release) string {
	switch r.Kind {
	case unmount.ReleaseLoop:
		return fmt.Sprintf("detach loop device %s (its backing file %s)", termsafe.Quote(r.Name), termsafe.Quote(r.BackingFile))
	case unmount.ReleaseSwap:
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
		s += ", lazily (held there by " + scantext.HolderList(r.Holders, 3) + ", which keep it alive until they let go)"
	}
	if r.Propagates {
		s += "; our unmount propagates to it: a staged run revokes its holders there instead and takes it along"
	}
	return s
}

// ReleaseRefusalText says why a release cannot be done ("" when it can).
func ReleaseRefusalText(r unmount.Release) string {
	switch r.Refusal {
	case unmount.ReleaseLoopMounted:
		at := "at " + termsafe.Quote(r.RefusedAt)
		if r.RefusedIn != 0 {
			at += fmt.Sprintf(" in mount namespace mnt:[%d]", r.RefusedIn)
		}
		return "the loop device is itself mounted (" + at + "): unmount it first"
	case unmount.ReleaseNoEntry:
		return "no process of that namespace is known to enter it through"
	case unmount.ReleaseHostNamespace:
		return "it is the host's mount namespace (pid 1's): releasing there needs an explicit confirmation (--release-host)"
	}
	return ""
}

// LeftoverRollbackCommand is the command that rolls l back.
func LeftoverRollbackCommand(l unmount.Leftover) string {
	return "mounttop umount --rollback-fence " + termsafe.Quote(l.Fence.Target)
}

// LeftoverWhat says what is left and where the filesystem is.
func LeftoverWhat(l unmount.Leftover) string {
	s := "a fence left by a killed run covers " + termsafe.Quote(l.Fence.Target)
	switch {
	case l.RealGone:
		s += "; the filesystem was unmounted already"
	case l.Fence.Kind == unmount.FenceBeneath:
		s += "; the filesystem is at " + termsafe.Quote(l.Fence.RealPath)
	default:
		s += "; the filesystem is beneath it"
	}
	return s + fmt.Sprintf(" (mount %d)", l.Fence.RealID)
}

// LeftoverDescribe is LeftoverWhat with how to roll it back (key is the
// view's key, "" for the command alone).
func LeftoverDescribe(l unmount.Leftover, key string) string {
	if key != "" {
		return LeftoverWhat(l) + "; press " + key + " / run `" + LeftoverRollbackCommand(l) + "`"
	}
	return LeftoverWhat(l) + "; run `" + LeftoverRollbackCommand(l) + "`"
}

// LeftoverPlan says what RollbackLeftover will do, for the plan line and
// the view's dialog.
func LeftoverPlan(l unmount.Leftover) string {
	f := &l.Fence
	switch {
	case l.RealGone:
		return fmt.Sprintf("unmount the fence (mount %d) at %s; the filesystem was unmounted already, so %s becomes a plain directory", f.FenceID, termsafe.Quote(f.Target), termsafe.Quote(f.Target))
	case f.Kind == unmount.FenceBeneath:
		return fmt.Sprintf("move the filesystem (mount %d) from %s back beneath the fence at %s, then unmount the fence (mount %d) and the stash; no process is touched",
			f.RealID, termsafe.Quote(f.RealPath), termsafe.Quote(f.Target), f.FenceID)
	}
	return fmt.Sprintf("unmount the fence (mount %d) over %s, so the filesystem beneath it (mount %d) shows again; no process is touched", f.FenceID, termsafe.Quote(f.Target), f.RealID)
}

// leftoverRolledBackText is the outcome of a rollback of a leftover fence.
func leftoverRolledBackText(n unmount.LeftoverRolledBack) string {
	var what string
	switch {
	case n.Failed:
		what = "rolling the fence back failed"
	case n.Moved:
		what = fmt.Sprintf("the filesystem (mount %d) is back at %s; the fence and the stash %s are gone", n.RealID, termsafe.Quote(n.Target), termsafe.Quote(n.Stash))
	default:
		what = fmt.Sprintf("the fence (mount %d) at %s is unmounted", n.FenceID, termsafe.Quote(n.Target))
		if !n.RealGone {
			what += fmt.Sprintf("; the filesystem (mount %d) shows there again", n.RealID)
		}
	}
	if n.JournalErr != "" {
		what += " (the journal could not record it: " + termsafe.Message(n.JournalErr) + ")"
	}
	return what
}

// StateMoveText says what became of the journal and the expiry state of a
// run whose state directory lies on its target; "" when nothing moved.
func StateMoveText(m unmount.StateMove) string {
	const on = "lie on the mount to unmount (they would keep it busy)"
	switch m.Kind {
	case unmount.StateMoved:
		return "the journal and the expiry state in " + termsafe.Quote(m.From) + " " + on + ": written to " + termsafe.Quote(m.To) + " instead"
	case unmount.StateNoPlace:
		return "the journal and the expiry state in " + termsafe.Quote(m.From) + " " + on + " and no other place is left: this run goes without a journal"
	case unmount.StateCannotMove:
		return "the journal in " + termsafe.Quote(m.From) + " lies on the mount to unmount and cannot move to " + termsafe.Quote(m.To) +
			" (" + termsafe.Message(oneLine(m.ErrText)) + "): this run goes without a journal"
	case unmount.StateUnknown:
		return "could not check where the journal lies: " + termsafe.Message(oneLine(m.ErrText))
	}
	return ""
}
