package present

import (
	"fmt"
	"sort"
	"strings"

	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// HolderActionText is what the plan does to one holder process, in the
// operator's words: "put a placeholder on fd 3; unmap 1 mapping", "SIGTERM,
// SIGKILL after 5s", "nothing: it keeps the mount busy"; for a holder of a
// copy in another mount namespace, prefixed with where ("in mount
// namespace mnt:[N], holding its copy at /x: "). The copy's mount point is
// escaped here, once (termsafe.Quote).
func HolderActionText(a unmount.HolderAction) string { return copyPrefix(a) + actionText(a) }

func actionText(a unmount.HolderAction) string {
	switch a.Kind {
	case unmount.ActionKeepDetached:
		return "nothing: it keeps using the detached filesystem until it lets go"
	case unmount.ActionKeepBusy:
		return "nothing: it keeps the mount busy"
	case unmount.ActionSignal:
		return fmt.Sprintf("SIGTERM, SIGKILL after %v", a.Grace)
	case unmount.ActionRevoke:
		what := TargetsText(a.Targets)
		if a.Holder.State == 'D' {
			what += " (in D state: it may not stop for ptrace)"
		}
		return what
	}
	return ""
}

// HolderRefusalText is why the holder cannot be revoked (empty when it
// can), with where for a holder of a copy, as HolderActionText.
func HolderRefusalText(a unmount.HolderAction) string {
	if !a.Refused() {
		return ""
	}
	return copyPrefix(a) + RefusalText(a.Refusal)
}

// HolderPlanText is the plan's word on one holder: its action, or
// refusedPrefix and why it cannot be revoked ("REFUSED: " in the umount
// command's plan, "REFUSED, " in the view's dialogs).
func HolderPlanText(a unmount.HolderAction, refusedPrefix string) string {
	if a.Refused() {
		return refusedPrefix + HolderRefusalText(a)
	}
	return HolderActionText(a)
}

// HolderPlanBrief is HolderPlanText without where a holder of a copy
// holds it, for a view that names its namespace itself ("pid 900 app in
// mnt:[N]: close fd 4").
func HolderPlanBrief(a unmount.HolderAction, refusedPrefix string) string {
	if a.Refused() {
		return refusedPrefix + RefusalText(a.Refusal)
	}
	return actionText(a)
}

// HolderReason is the reason of one holder's state during a run (the
// "reason" of `umount --json` and the journal): what happened to it
// (HolderState.Why, or a view's own Reason), or while it is as planned,
// the plan's action or refusal (HolderPlanText).
func HolderReason(st unmount.HolderState) string {
	if st.Why != nil {
		return holderWhy(st.Why)
	}
	if st.Reason != "" || st.Planned == nil {
		return st.Reason
	}
	return HolderPlanText(*st.Planned, "")
}

// HolderReasonBrief is HolderReason with the plan's word as
// HolderPlanBrief: the progress pane's ACTION / REASON, which names a
// copy's namespace itself.
func HolderReasonBrief(st unmount.HolderState) string {
	if st.Why != nil {
		return holderWhy(st.Why)
	}
	if st.Reason != "" || st.Planned == nil {
		return st.Reason
	}
	return HolderPlanBrief(*st.Planned, "")
}

// copyPrefix says where a holder of a copy in another mount namespace
// holds it.
func copyPrefix(a unmount.HolderAction) string {
	if a.Namespace == 0 {
		return ""
	}
	return "in mount namespace " + NamespaceID(a.Namespace) + ", holding its copy at " + termsafe.Quote(a.CopyAt) + ": "
}

// TargetsText renders what a revoke takes away: "close fd 3, 4; unmap 1
// mapping; cwd into an empty directory (1 thread)", with "put a
// placeholder on" for close when the fds keep their numbers
// (RevokeTargets.Placeholder), and the fds of a thread's own table
// (unshare(2) CLONE_FILES) named with the thread.
func TargetsText(t unmount.RevokeTargets) string {
	verb := "close"
	if t.Placeholder {
		verb = "put a placeholder on"
	}
	var parts []string
	if len(t.FDs) > 0 {
		parts = append(parts, fmt.Sprintf("%s fd %s", verb, intList(t.FDs)))
	}
	tids := make([]int, 0, len(t.ThreadFDs))
	for tid := range t.ThreadFDs {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	for _, tid := range tids {
		parts = append(parts, fmt.Sprintf("%s fd %s of thread %d", verb, intList(t.ThreadFDs[tid]), tid))
	}
	if n := len(t.Maps); n > 0 {
		parts = append(parts, "unmap "+Plural(n, "mapping"))
	}
	if n := len(t.CwdTIDs); n > 0 {
		parts = append(parts, fmt.Sprintf("cwd into an empty directory (%s)", Plural(n, "thread")))
	}
	if len(parts) == 0 {
		return "nothing to revoke"
	}
	return strings.Join(parts, "; ")
}

// intList is "3, 4, 9".
func intList(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
