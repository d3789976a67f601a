package present

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// runNoteText renders the notes of a run's steps: probe, abort, fence,
// syncfs, revoke, drain, unmount, rollback, releases and the result. Each
// name is escaped here, once: a path by termsafe.Quote, a process or
// filesystem type name by termsafe.Text. A field that ends in Text is the
// engine's or the revoker's words already (an error's text) and is passed
// on as it is.
func runNoteText(n unmount.Note) (string, bool) {
	if s, ok := holderNoteText(n); ok {
		return s, true
	}
	if s, ok := stepNoteText(n); ok {
		return s, true
	}
	if s, ok := serverNoteText(n); ok {
		return s, true
	}
	return outcomeText(n)
}

// holderNoteText renders what happened to one holder.
func holderNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.HolderRevoked:
		return who(n.Who) + ": " + RevokedText(n.Did), true
	case unmount.HolderRestored:
		return who(n.Who) + ": " + restoreText(n.Restore), true
	case unmount.HolderExited:
		return who(n.Who) + " exited", true
	case unmount.HolderLetGo:
		return who(n.Who) + ": no longer holds the mount", true
	case unmount.HolderNotRevoked:
		return who(n.Who) + ": not revoked: " + notRevokedWhy(n), true
	case unmount.HolderSignalled:
		s := who(n.Who) + ": sent " + n.Signal
		if n.Refusal != unmount.RefusalNone {
			s += " (" + RefusalText(n.Refusal) + ")"
		}
		return s, true
	case unmount.HolderNotSignalled:
		return who(n.Who) + ": not signalled: " + n.ErrText, true
	case unmount.SignalFailed:
		return who(n.Who) + ": " + n.Signal + " failed", true
	case unmount.SignalledExited:
		return fmt.Sprintf("pid %d exited", n.PID), true
	}
	return "", false
}

// holderWhy is the reason of a holder's state that a run note gives (the
// "reason" of `umount --json`, the progress pane's REASON).
func holderWhy(n unmount.Note) string {
	switch n := n.(type) {
	case unmount.HolderRevoked:
		return RevokedText(n.Did)
	case unmount.HolderRestored:
		return restoreText(n.Restore)
	case unmount.HolderExited, unmount.SignalledExited:
		return "exited"
	case unmount.HolderLetGo:
		return "no longer holds the mount"
	case unmount.HolderNotRevoked:
		return notRevokedWhy(n)
	case unmount.HolderSignalled:
		return n.Signal
	case unmount.HolderNotSignalled:
		return n.ErrText
	case nil:
		return ""
	}
	return NoteText(n)
}

func notRevokedWhy(n unmount.HolderNotRevoked) string {
	if n.ErrText != "" {
		return n.ErrText
	}
	return RefusalText(n.Refusal)
}

// who names a holder: "pid 12 (cat)", with its mount namespace when it
// holds a copy there.
func who(w unmount.Who) string {
	s := fmt.Sprintf("pid %d (%s)", w.PID, termsafe.Text(w.Comm))
	if w.Namespace != 0 {
		s += " in mount namespace " + NamespaceID(w.Namespace)
	}
	return s
}

// stepNoteText renders the steps of a run, each group by a renderer of
// its own: revoke and drain, fence and syncfs, the unmounts, the releases.
func stepNoteText(n unmount.Note) (string, bool) {
	if s, ok := drainNoteText(n); ok {
		return s, true
	}
	if s, ok := fenceNoteText(n); ok {
		return s, true
	}
	if s, ok := unmountNoteText(n); ok {
		return s, true
	}
	return releaseNoteText(n)
}

// drainNoteText renders what the revoke and the drain find: no holder, a
// failed scan, the holders left, a mount busy with none.
func drainNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.RevokeScanFailed:
		return "scan failed; the drain will retry", true
	case unmount.NoHolder:
		return "no process holds the mount", true
	case unmount.DrainRescanFailed:
		return "rescan failed", true
	case unmount.DrainLeft:
		return Plural(len(n.Left), "holder") + " left: " + whyLeft(n.Left) + releasesLeft(n.NotReleased), true
	case unmount.NothingHolds:
		return "nothing holds the mount any more; unmounting", true
	case unmount.BusyNoHolder:
		return "busy, but no process holds it: " + busyWhy(n.Why) + releasesLeft(n.NotReleased), true
	}
	return "", false
}

// fenceNoteText renders the fence and syncfs steps and the fence's
// rollback, and a detached mount's steps instead of them.
func fenceNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.BeneathRefused:
		return "mount beneath refused (EINVAL); over-mounting instead", true
	case unmount.Fenced:
		return fencedText(n), true
	case unmount.Synced:
		return syncedText(n.Step), true
	case unmount.RollbackFailed:
		return "rolling back the fence failed: " + fenceState(n.Fence) + abortedNote(n.Aborted), true
	case unmount.FenceRolledBack:
		return rolledBackText(n), true
	case unmount.DetachedNoFence:
		return fmt.Sprintf("no fence: detached mount %d is in no mount table, so no path can open anything on it; no syncfs either (no path to it): the kernel syncs the filesystem when it lets go of it", n.MountID), true
	case unmount.DetachedReleased:
		return fmt.Sprintf("no process holds detached mount %d any more (verified by a scan): the kernel releases it", n.MountID), true
	}
	return "", false
}

// unmountNoteText renders the unmounts (stacked filesystems, submounts,
// the mount itself, lazy, forced or expired) and the fence's removal
// after them.
func unmountNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.StackedUnmounted:
		s := fmt.Sprintf("the %s at %s (it uses the mount as a layer)", termsafe.Text(n.FSType), termsafe.Quote(n.Mountpoint))
		if !n.Failed {
			s += " unmounted first"
		}
		return s, true
	case unmount.OverFenceRemoved:
		return "fence removed (over-mount); unmounting the mount beneath it", true
	case unmount.SubmountUnmounted:
		s := "submount " + termsafe.Quote(n.Mountpoint)
		if !n.Failed {
			s += " unmounted"
		}
		return s, true
	case unmount.RealUnmounted:
		return fmt.Sprintf("umount2 of %s (not lazy): unmounted, verified by statmount", termsafe.Quote(n.Path)), true
	case unmount.FenceLeft:
		return "the filesystem is unmounted, but removing the fence failed: " + termsafe.Quote(n.Target) + " still shows an empty read-only tmpfs", true
	case unmount.FenceRemoved:
		again := " is a plain directory again"
		if n.File {
			again = " is the file underneath again"
		}
		return "fence removed: " + termsafe.Quote(n.Target) + again, true
	case unmount.ForceIgnoredFS:
		return ForceIgnoredText(n.FSType), true
	case unmount.PlainUnmounted:
		if n.Failed {
			return fmt.Sprintf("umount2(%s) of %s failed", n.Flag, termsafe.Quote(n.Mountpoint)), true
		}
		return fmt.Sprintf("umount2(%s) of %s: gone (verified by statmount)", n.Flag, termsafe.Quote(n.Mountpoint)), true
	case unmount.ExpireAttempt:
		return expireText(n), true
	}
	return "", false
}

// releaseNoteText renders the releases (loop devices, swap files, copies
// in other mount namespaces) and a journal that could not be written.
func releaseNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.ReleaseNotDone:
		why := ReleaseRefusalText(n.Release)
		if n.SwapCovered {
			why = "under the over-mount fence the swap file cannot be named (swapoff(2) takes a path)"
		}
		return "not done: " + ReleaseText(n.Release) + ": " + why, true
	case unmount.CopyGoesAlong:
		return fmt.Sprintf("its copy at %s in mount namespace mnt:[%d] goes with our unmount (it propagates there); its holders there are revoked like ours",
			termsafe.Quote(n.Mountpoint), n.Namespace), true
	case unmount.CopyBusyLazy:
		return "the copy is busy now; unmounting it lazily instead", true
	case unmount.Released:
		s := "done: " + ReleaseText(n.Release)
		if n.BeforeFence {
			s += " (before the fence: under an over-mount fence the file cannot be named)"
		}
		return s, true
	case unmount.ReleaseFailed:
		return "failed: " + ReleaseText(n.Release), true
	case unmount.JournalFailed:
		return "the journal could not be written; it misses the lines from here on: " + n.ErrText, true
	}
	return "", false
}

// whyLeft explains each holder left (five of them, then how many more):
// how it holds the mount and its state (refused and why, signalled, D
// state).
func whyLeft(left []unmount.LeftHolder) string {
	var parts []string
	for i, h := range left {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(left)-5))
			break
		}
		why := h.State.State.String()
		switch {
		case h.DState:
			why = "in D state (uninterruptible sleep; it stops only when its I/O completes)"
		case stateReason(h.State) != "" && h.State.State != unmount.StatusPending:
			why = h.State.State.String() + ": " + stateReason(h.State)
		}
		parts = append(parts, fmt.Sprintf("%s by %s, %s", who(h.Who), strings.Join(h.Kinds, "+"), why))
	}
	return strings.Join(parts, "; ")
}

// stateReason is the run's word on a holder's state: what happened to it,
// or for a holder of ours refused as planned, the refusal (a holder of a
// copy is planned with its namespace, and says it again when the run
// meets it).
func stateReason(st unmount.HolderState) string {
	switch {
	case st.Why != nil:
		return holderWhy(st.Why)
	case st.Reason == "" && st.Planned != nil && st.Planned.Refused() && st.Planned.Namespace == 0:
		return RefusalText(st.Planned.Refusal)
	}
	return st.Reason
}

// releasesLeft names the releases that failed, "; not released: " first,
// or "".
func releasesLeft(rs []unmount.ReleaseLeft) string {
	if len(rs) == 0 {
		return ""
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = ReleaseText(r.Release) + ": " + r.ErrText
	}
	return "; not released: " + strings.Join(parts, "; ")
}

// busyWhy says why a mount no process holds is busy.
func busyWhy(b unmount.BusyWhy) string {
	switch {
	case len(b.Stuck) > 0:
		ws := make([]string, len(b.Stuck))
		for i, s := range b.Stuck {
			ws[i] = stuckText(s.Who, s.InsideText)
		}
		return strings.Join(ws, "; ") + ", which holds the file until the call returns"
	case b.Dead != nil:
		return deadHint(*b.Dead)
	}
	return BusyOthersText(b.Others)
}

func stuckText(w unmount.Who, inside string) string { return who(w) + " was left inside " + inside }

// deadHint explains an EBUSY with no process holding the mount when the
// server does not answer.
func deadHint(d unmount.DeadServer) string {
	hint := "the filesystem's server is not answering (" + ServerHow(d.Server) + ")"
	if d.Server.Aborted {
		hint = "the connection to the server is aborted"
	}
	if len(d.OwnCalls) > 0 {
		return hint + "; calls of mounttop's own still blocked on it hold it until they return: " + strings.Join(d.OwnCalls, ", ")
	}
	return hint + "; a request in flight to it (a page being written back, a holder that just left) may hold it a moment longer"
}

func fencedText(f unmount.Fenced) string {
	fence, effect := "an empty read-only tmpfs", "new opens: ENOENT, creates: EROFS"
	if f.File {
		fence, effect = "an empty read-only file", "reads: nothing, writes: EROFS"
	}
	if !f.Over {
		return fmt.Sprintf("fenced by beneath-swap: %s now shows %s (%s); the mount itself is at %s",
			termsafe.Quote(f.Target), fence, effect, termsafe.Quote(f.RealPath))
	}
	return fmt.Sprintf("fenced by over-mount (the parent is shared): %s covers %s and its peers", fence, termsafe.Quote(f.Target))
}

func syncedText(s unmount.SyncfsStep) string {
	switch s {
	case unmount.SyncfsDone:
		return "syncfs: data written so far is on disk"
	case unmount.SyncfsFailed:
		return "syncfs failed: written data may not be on disk"
	case unmount.SyncfsNoRoot:
		return "no syncfs: the mount's root could not be opened; written data may not be on disk"
	case unmount.SyncfsOpenFailed:
		return "opening the mount's root for syncfs failed: written data may not be on disk"
	case unmount.SyncfsAbortedAtOpen:
		return "the connection to the server is aborted (ENOTCONN from the open of the root): nothing can be synced"
	case unmount.SyncfsAborted:
		return "the connection to the server is aborted (syncfs: ENOTCONN): nothing can be synced"
	}
	return fmt.Sprintf("syncfs step %d", s)
}

// fenceState says where things are while fenced, for a failure report.
func fenceState(f unmount.FenceState) string {
	if !f.Over {
		return fmt.Sprintf("%s shows an empty read-only tmpfs (the fence, mount %d); the filesystem is still mounted at %s (mount %d)",
			termsafe.Quote(f.Target), f.FenceID, termsafe.Quote(f.RealPath), f.MountID)
	}
	return fmt.Sprintf("an empty read-only tmpfs (mount %d) covers %s, the filesystem is still mounted beneath it (mount %d)",
		f.FenceID, termsafe.Quote(f.Target), f.MountID)
}

// abortedNote says, after a failure, that the run cut the connection to
// the server: that stays so whatever else is undone.
func abortedNote(aborted bool) string {
	if aborted {
		return "; the connection to the server was aborted and stays so (I/O on the mount fails)"
	}
	return ""
}

func rolledBackText(n unmount.FenceRolledBack) string {
	s := fmt.Sprintf("fence removed: the mount (%d) is back at %s", n.MountID, termsafe.Quote(n.Target))
	switch {
	case n.Revoked+n.Signalled+n.Released > 0:
		s += fmt.Sprintf("; %d holders were revoked and %d signalled before that and stay so", n.Revoked, n.Signalled)
		if n.Released > 0 {
			s += "; " + Plural(n.Released, "release") + " done stay so"
		}
	case n.AsItWas:
		s += "; everything is as it was"
	}
	return s + unsettled(n.Unsettled) + abortedNote(n.Aborted)
}

// unsettled lists, "; " first, the holders the tracer process still has.
func unsettled(u unmount.Unsettled) string {
	var out string
	for _, h := range u {
		if h.UnderWay {
			out += "; the revoke of " + who(h.Who) + " was under way when the run was cancelled: the tracer process finishes it (what it took stays taken) or, had it not begun, leaves the process untouched"
			continue
		}
		out += "; " + stuckText(h.Who, h.InsideText) + ": the tracer process restores it when the call returns"
	}
	return out
}

func expireText(n unmount.ExpireAttempt) string {
	s := fmt.Sprintf("attempt %d", n.Attempt)
	switch n.Step {
	case unmount.ExpireElsewhere:
		s += ": the mount is gone (unmounted by something else)"
	case unmount.ExpireBusy:
		s += ": " + n.ErrText
	case unmount.ExpireGone:
		since := ""
		if !n.MarkedAt.IsZero() {
			since = " since " + n.MarkedAt.Format(time.TimeOnly)
		}
		s += ": untouched and still marked" + since + ", so umount2(MNT_EXPIRE) unmounted it"
	case unmount.ExpireCleared:
		s += fmt.Sprintf(": the mark set at %s was cleared by an access since (%s so far); marked again",
			n.MarkedAt.Format(time.TimeOnly), Plural(n.Cleared, "time"))
	case unmount.ExpireMarked:
		s += ": idle, now marked for expiry (EAGAIN)"
	}
	return s
}

// serverNoteText renders what the run finds of the filesystem's server
// and does to cut it off.
func serverNoteText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.CallAbandoned:
		s := fmt.Sprintf("%s did not return within %v; abandoned (the call stays blocked in the kernel until the server answers or the connection is aborted)", n.CallText, n.Limit)
		if n.Cancelled {
			s = fmt.Sprintf("%s: cancelled after %v; abandoned (the call stays blocked in the kernel)", n.CallText, n.After)
		}
		if c := consequence(n.Consequence); c != "" {
			s += ": " + c
		}
		return s, true
	case unmount.UmountAbandonedGone:
		return fmt.Sprintf("umount2 of %s did not return within %v: the mount is gone from the namespace (verified by statmount), the filesystem's shutdown (its last writeback) still waits on the server",
			termsafe.Quote(n.Mountpoint), n.Limit), true
	case unmount.ProbeFinding:
		if n.NotAnswering {
			return "probe: the server is not answering: " + ServerHow(n.Server) + "; data not yet written cannot be synced", true
		}
		return "probe: " + ServerHow(n.Server), true
	case unmount.CannotCutOff:
		return cutCause(n.Cause) + ": " + AbortText(n.Abort) + "; holders blocked on the server stay so until it answers", true
	case unmount.FuseAbortFailed:
		return fmt.Sprintf("%s: aborting FUSE connection %d failed", cutCause(n.Cause), n.Conn), true
	case unmount.FuseConnAborted:
		return fmt.Sprintf("%s: aborted FUSE connection %d (%s/%d/abort): every request now fails at once (ENOTCONN), blocked callers return; holders keep running, their I/O on the mount fails",
			cutCause(n.Cause), n.Conn, n.Dir, n.Conn), true
	case unmount.ForceUnreachable:
		return cutCause(n.Cause) + ": umount2(MNT_FORCE) cannot reach the mount under the over-mount fence; holders blocked on the server stay so until it answers", true
	case unmount.ForceAborted:
		op := "umount2(MNT_FORCE) of " + termsafe.Quote(n.Mountpoint)
		if n.Gone {
			return fmt.Sprintf("%s: %s aborted the requests to the server (umount_begin) and, nothing holding the mount, unmounted it (verified by statmount)", cutCause(n.Cause), op), true
		}
		return fmt.Sprintf("%s: %s aborted the requests to the server (umount_begin); the mount stays while held (EBUSY), blocked callers return", cutCause(n.Cause), op), true
	case unmount.ForceFailed:
		return cutCause(n.Cause) + ": umount2(MNT_FORCE) of " + termsafe.Quote(n.Mountpoint) + " failed", true
	}
	return "", false
}

func consequence(c unmount.Consequence) string {
	switch c {
	case unmount.ConsequenceFenceLater:
		return "if it completes after all, the fence is rolled back at once"
	case unmount.ConsequenceNoSyncfs:
		return "no syncfs; written data may not be on disk"
	case unmount.ConsequenceUnsynced:
		return "written data may not be on disk"
	case unmount.ConsequenceRelease:
		return "it goes on in the kernel (swapoff reads every swapped page back: from a server that does not answer, never); not tried again"
	}
	return ""
}

// cutCause says why the run cuts the filesystem off its server.
func cutCause(c unmount.CutCause) string {
	switch c.Kind {
	case unmount.CauseStopped:
		return "the server stopped answering"
	case unmount.CauseDState:
		return Plural(c.Count, "holder") + " in D state"
	case unmount.CauseRevokeHung:
		return who(c.Who) + " could not be revoked in time"
	}
	return "the server is not answering"
}

// outcomeText renders how a run ended (Result.Outcome).
func outcomeText(n unmount.Note) (string, bool) {
	switch n := n.(type) {
	case unmount.NothingChanged:
		return "nothing changed" + abortedNote(n.Aborted), true
	case unmount.NothingDone:
		return "nothing done", true
	case unmount.CouldNotFence:
		return "could not fence" + abortedNote(n.Aborted), true
	case unmount.Failed:
		return NoteText(n.Step) + ": " + n.ErrText, true
	case unmount.CancelledEarly:
		return "cancelled before anything changed", true
	case unmount.PlainGone:
		s := termsafe.Quote(n.Mountpoint) + " is unmounted"
		if n.Lazy && n.Holders > 0 {
			s += " (detached: the filesystem lives on until its " + Plural(n.Holders, "holder") + " let go)"
		}
		return s, true
	case unmount.Expired:
		return expiredText(n), true
	case unmount.ForcedGone:
		return termsafe.Quote(n.Mountpoint) + " is unmounted (verified): umount2(MNT_FORCE) cut it off its dead server, and nothing held it", true
	case unmount.RolledBack:
		if n.Failed != nil {
			return rollbackWhy(n.Why) + "; rolling back the fence failed: " + fenceState(n.Failed.Fence) + abortedNote(n.Failed.Aborted), true
		}
		if n.Done != nil {
			return rollbackWhy(n.Why) + "; " + rolledBackText(*n.Done), true
		}
		return rollbackWhy(n.Why), true
	case unmount.FenceStays:
		return "unmounted; the fence is left at " + termsafe.Quote(n.Target), true
	case unmount.StagedGone:
		return stagedGoneText(n), true
	case unmount.DetachedEnd:
		return detachedEndText(n), true
	}
	return "", false
}

func expiredText(n unmount.Expired) string {
	at := termsafe.Quote(n.Mountpoint)
	switch n.How {
	case unmount.ExpiredElsewhere:
		return at + " is no longer mounted"
	case unmount.ExpiredMarked:
		return at + " is marked for expiry: the same command again unmounts it if nothing touches it meanwhile"
	case unmount.ExpiredNotIdle:
		return fmt.Sprintf("%s did not become idle within %v", at, n.Timeout)
	case unmount.ExpiredCancelled:
		return "cancelled; the mount is still there"
	}
	return at + " expired and is unmounted"
}

// rollbackWhy says why a staged run rolled its fence back.
func rollbackWhy(w unmount.RollbackWhy) string {
	switch {
	case w.Cancelled && w.Drain:
		return "cancelled during the drain"
	case w.Cancelled:
		return "cancelled before revoke"
	case w.Timeout != nil:
		t := w.Timeout
		if t.Busy != nil {
			return fmt.Sprintf("the mount was still busy after %v: %s%s", t.Timeout, busyWhy(*t.Busy), releasesLeft(t.NotReleased))
		}
		return fmt.Sprintf("%s still held the mount after %v: %s%s", Plural(len(t.Left), "holder"), t.Timeout, whyLeft(t.Left), releasesLeft(t.NotReleased))
	}
	return "the unmount failed: " + w.UnmountText
}

func stagedGoneText(n unmount.StagedGone) string {
	s := fmt.Sprintf("%s is unmounted (verified): %s revoked, %d signalled", termsafe.Quote(n.Mountpoint), Plural(n.Revoked, "holder"), n.Signalled)
	s += unsettled(n.Unsettled)
	if n.CutOff {
		s += "; the server was not answering: the connection was cut, data not yet written is lost"
	}
	if n.Released > 0 {
		s += ", " + Plural(n.Released, "release")
	}
	if len(n.NotReleased) > 0 {
		s = "NOT released" + strings.TrimPrefix(releasesLeft(n.NotReleased), "; not released") + "; " + s
	}
	return s
}

func detachedEndText(n unmount.DetachedEnd) string {
	switch {
	case n.Gone:
		return fmt.Sprintf("detached mount %d is gone (no holder left, verified): %s revoked, %d signalled", n.MountID, Plural(n.Revoked, "holder"), n.Signalled)
	case n.TimedOut:
		return fmt.Sprintf("%s still held detached mount %d after %v: %s", Plural(len(n.Left), "holder"), n.MountID, n.Timeout, whyLeft(n.Left))
	case n.Revoked+n.Signalled > 0:
		return fmt.Sprintf("cancelled; %d holders were revoked and %d signalled and stay so; the detached mount lives on while the rest hold it", n.Revoked, n.Signalled) + unsettled(n.Unsettled)
	case len(n.Unsettled) > 0:
		return "cancelled" + unsettled(n.Unsettled)
	}
	return "cancelled; nothing changed"
}

// ResultSummary is a run's result line for the operator (the progress
// pane, `umount`'s last line and exit message, the JSON "summary"): how it
// ended (Result.Outcome) and, once the mount is gone, whether the
// filesystem is. A result without an Outcome (a view's own) says its
// Summary.
func ResultSummary(r unmount.Result) string {
	if r.Outcome == nil {
		return r.Summary
	}
	s := NoteText(r.Outcome)
	if r.Gone && r.Filesystem != nil {
		s += "; " + FilesystemText(r.Filesystem)
	}
	return s
}

// RevokedText says what a revoke did to one process: "put a placeholder on
// fd 3; moved the cwd of 1 thread into an empty read-only directory (2
// threads stopped for 1.2ms)"; the part in brackets only where threads
// were stopped.
func RevokedText(d *unmount.Revoked) string {
	if d == nil {
		return "nothing left to revoke"
	}
	var parts []string
	if len(d.Closed) > 0 {
		fds := make([]string, len(d.Closed))
		for i, fd := range d.Closed {
			fds[i] = strconv.Itoa(fd)
		}
		verb := "closed fd "
		if d.Placeholder {
			verb = "put a placeholder on fd "
		}
		parts = append(parts, verb+strings.Join(fds, ", "))
	}
	if d.Unmapped > 0 {
		parts = append(parts, "unmapped "+Plural(d.Unmapped, "mapping")+" (PROT_NONE)")
	}
	if d.Chdir > 0 {
		parts = append(parts, "moved the cwd of "+Plural(d.Chdir, "thread")+" into an empty read-only directory")
	}
	if len(d.FailedText) > 0 {
		parts = append(parts, "failed: "+strings.Join(d.FailedText, "; "))
	}
	parts = append(parts, d.NotesText...)
	if len(parts) == 0 {
		return "nothing left to revoke"
	}
	if d.Threads == 0 { // no thread was stopped: no figures to give
		return strings.Join(parts, "; ")
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (%s stopped for %v)", Plural(d.Threads, "thread"), d.Stopped.Round(10*time.Microsecond))
}

// restoreText says how a revoke left inside an injected syscall ended:
// the process came out of it, was restored and released.
func restoreText(r unmount.Restore) string {
	s := fmt.Sprintf("process %d came out of %s(%s) and was restored and released", r.PID, r.Syscall, r.Arg)
	if r.ErrText != "" {
		s += ": " + r.ErrText
	}
	return s + ": " + RevokedText(r.Did)
}

// PendingText says what mounttop has not finished (Unmounter.Pending),
// one line: what a second signal or a view quit while a run goes on
// leaves behind.
func PendingText(p unmount.Pending) string {
	since := p.For.Round(time.Second)
	switch p.Kind {
	case unmount.PendingRevoke:
		return fmt.Sprintf("revoke of %s: in progress for %v (ptrace: seizing its threads or injecting into them)", who(p.Who), since)
	case unmount.PendingHeld:
		what := "a revoke under way"
		if p.InsideText != "" {
			what = "left inside " + p.InsideText
		}
		return fmt.Sprintf("the tracer process (pid %d) holds pid %d: %s for %v; it finishes the revoke or restores the process and releases it on its own",
			p.Tracer, p.Who.PID, what, since)
	}
	return fmt.Sprintf("%s: blocked in the kernel for %v (abandoned)", p.CallText, since)
}

// PendingLines is PendingText of each.
func PendingLines(ps []unmount.Pending) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = PendingText(p)
	}
	return out
}
