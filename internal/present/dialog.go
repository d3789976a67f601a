package present

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
	"mounttop/unmount/release"
)

// What each action does, in the operator's words. The confirm dialog, the
// dry-run preview and the progress pane all say it the same way.

// ModeName is how a plan's mode is called in titles and the status bar.
func ModeName(p unmount.Plan) string {
	switch p.Mode {
	case unmount.ModeLazy:
		return "lazy unmount"
	case unmount.ModeExpire:
		if p.ExpireWhenIdle {
			return "expire when idle"
		}
		return "expire"
	case unmount.ModeForce:
		return "forced unmount"
	case unmount.ModeStaged:
		if p.Release {
			return "staged unmount (" + p.Policy.String() + ", releasing)"
		}
		return "staged unmount (" + p.Policy.String() + ")"
	}
	return p.Mode.String()
}

// MountName is how a mount is called in titles, dialogs and the status
// bar: its mount point, or, for a mount that was lazily unmounted and is
// still held (it has no mount point in any table), its unique ID.
func MountName(m inspect.Mount) string {
	if m.Detached {
		return fmt.Sprintf("the detached mount (unique ID %d)", uint64(m.ID))
	}
	return termsafe.Text(m.Mountpoint)
}

// HolderBrief is "pid 1234 cat (fd×2 cwd)".
func HolderBrief(h inspect.Holder) string {
	s := fmt.Sprintf("pid %d %s", h.PID, termsafe.Text(h.Comm))
	if u := UseSummary(h.Uses); u != "" {
		s += " (" + u + ")"
	}
	return s
}

// PlanLines states exactly what will happen to the mount and to which
// processes. max bounds the per-process lines (the rest are counted);
// cancelKey is the key that cancels a staged run, as the keymap names it.
func PlanLines(snap *inspect.Snapshot, plan unmount.Plan, max int, cancelKey string) []string {
	t := planText{snap: snap, plan: plan, max: max, cancelKey: cancelKey, mp: MountName(plan.Target), holders: planHolders(snap, plan)}
	switch plan.Mode {
	case unmount.ModeLazy:
		t.lazy()
	case unmount.ModeForce:
		t.force()
	case unmount.ModeExpire:
		t.expire()
	case unmount.ModeStaged:
		t.staged()
	}
	t.submounts()
	t.stacked()
	t.filesystem()
	t.warnings()
	return t.out
}

// planText is PlanLines at work: the plan, the holders it names, the
// lines so far.
type planText struct {
	snap      *inspect.Snapshot
	plan      unmount.Plan
	max       int // per-process lines at most (the rest are counted)
	cancelKey string
	mp        string // the target's name, escaped
	holders   []inspect.Holder
	out       []string
}

// planHolders are the holders a plan acts on: the engine's, or else the
// scan's.
func planHolders(snap *inspect.Snapshot, plan unmount.Plan) []inspect.Holder {
	var holders []inspect.Holder
	if snap != nil {
		holders = snap.HoldersOf(plan.Target.ID)
	}
	if len(plan.Holders) > 0 {
		holders = holders[:0:0]
		for _, a := range plan.Holders {
			holders = append(holders, a.Holder)
		}
	}
	return holders
}

func (t *planText) add(lines ...string) { t.out = append(t.out, lines...) }

// listHolders adds a line per holder, f's, after prefix; past max the
// rest are counted.
func (t *planText) listHolders(prefix string, f func(h inspect.Holder) string) {
	for i, h := range t.holders {
		if i == t.max && len(t.holders) > t.max+1 {
			t.add(fmt.Sprintf("%s… and %d more (see the holders pane)", prefix, len(t.holders)-t.max))
			break
		}
		t.add(prefix + f(h))
	}
}

// lazy: umount2(MNT_DETACH), and the holders it leaves alone.
func (t *planText) lazy() {
	t.add("Detach " + t.mp + " from the tree now (umount2 MNT_DETACH).")
	if len(t.holders) == 0 {
		t.add("Nobody holds it.")
		return
	}
	t.add("These processes are NOT touched and keep using it, unseen:")
	t.listHolders("  ", HolderBrief)
	t.add("The filesystem lives on until the last of them lets go,",
		"and errors on it will no longer be reported.")
}

// force: umount2(MNT_FORCE), what it does per filesystem type.
func (t *planText) force() {
	t.add(fmt.Sprintf("umount2(MNT_FORCE) on %s (%s). No process is touched.", t.mp, termsafe.Text(t.plan.Target.FSType)))
	t.add("nfs, cifs, fuse, 9p, ceph: in-flight requests are aborted (EIO).",
		"tmpfs, ext4 and most others: a busy mount still fails with EBUSY.")
	if len(t.holders) > 0 {
		t.add("Held by:")
		t.listHolders("  ", HolderBrief)
	}
}

// expire: umount2(MNT_EXPIRE), now or when idle.
func (t *planText) expire() {
	t.add("umount2(MNT_EXPIRE) on "+t.mp+": no process is touched.",
		"Now: mark it, then unmount it if nothing touched it in between.",
		fmt.Sprintf("When idle: mark it and try again every %s until it stays idle.", t.plan.Interval))
	if len(t.holders) > 0 {
		t.add("It is busy now (the attempt fails with EBUSY while these hold it):")
		t.listHolders("  ", HolderBrief)
	}
}

// staged: the server's state, then the numbered steps fence, revoke,
// drain, unmount, and the releases.
func (t *planText) staged() {
	dead := t.plan.Server.Probed && !t.plan.Server.Answering
	t.server(dead)
	step := t.fence(dead)
	t.revoke(step)
	t.drain(step + 1)
	t.finish(step + 2)
	t.add(ReleaseListLines(t.plan, t.snap, t.max)...)
}

// server warns when the filesystem's server did not answer the probe.
func (t *planText) server(dead bool) {
	switch {
	case dead && t.plan.Server.Aborted:
		t.add("! The connection to the filesystem's server is aborted already:",
			"  nothing can be synced; I/O on the mount fails (ENOTCONN).")
	case dead:
		t.add("! The filesystem's server is not answering:", "  "+termsafe.Message(t.plan.Server.How),
			"  Data not yet written cannot be synced (no syncfs). Instead, first:",
			"  "+termsafe.Message(t.plan.Server.Abort.What),
			"  Holders keep running; their I/O on the mount fails.")
	}
}

// fence is step 1 (none on a detached mount); it returns the next step's
// number.
func (t *planText) fence(dead bool) (next int) {
	switch {
	case t.plan.Target.Detached:
		// No path reaches a detached mount: there is nothing to fence
		// and nothing left to unmount; it goes with its last holder.
		t.add("Revoke every holder of "+t.mp,
			"until nothing holds it. It is in no mount table: no fence, no unmount;",
			"it goes with its last holder.")
		return 1
	case dead:
		t.add("1. Fence " + t.mp + ": new opens by path fail.")
	default:
		t.add("1. Fence " + t.mp + ": new opens by path fail, written data is synced.")
	}
	return 2
}

// revoke is the step that revokes each holder, with what the engine plans
// for it (or its refusal).
func (t *planText) revoke(step int) {
	if len(t.holders) == 0 {
		t.add(fmt.Sprintf("%d. Revoke: nobody holds it.", step))
		return
	}
	verb := "by ptrace: close fds, unmap files, chdir / (processes keep running)"
	if t.plan.Policy == unmount.PolicySignal {
		verb = "SIGTERM, then SIGKILL"
		if t.plan.Grace > 0 {
			verb += fmt.Sprintf(" after %s", t.plan.Grace)
		}
	}
	t.add(fmt.Sprintf("%d. Revoke %s:", step, verb))
	byPID := map[int]unmount.HolderAction{}
	for _, a := range t.plan.Holders {
		byPID[a.Holder.PID] = a
	}
	t.listHolders("   ", func(h inspect.Holder) string {
		if a, ok := byPID[h.PID]; ok && a.Kind != 0 {
			return fmt.Sprintf("pid %d %s: %s", h.PID, termsafe.Text(h.Comm), termsafe.Message(HolderPlanText(a, "REFUSED, ")))
		}
		return HolderBrief(h)
	})
}

// drain is the step that rescans and revokes stragglers.
func (t *planText) drain(step int) {
	drain := fmt.Sprintf("%d. Drain: rescan", step)
	if t.plan.Interval > 0 {
		drain += " every " + t.plan.Interval.String()
	}
	drain += ", revoke stragglers"
	if t.plan.Target.Detached {
		drain += " until nothing holds it"
	}
	if t.plan.Timeout > 0 {
		drain += ", give up after " + t.plan.Timeout.String()
	}
	t.add(drain + ".")
}

// finish is the unmount step (none on a detached mount) and what cancel
// does.
func (t *planText) finish(step int) {
	if t.plan.Target.Detached {
		t.add(t.cancelKey + " cancels; holders already revoked stay revoked.")
		return
	}
	t.add(fmt.Sprintf("%d. Unmount it for real and check that it is gone.", step),
		t.cancelKey+" cancels; before revoke starts, the fence is rolled back.")
}

// submounts says what happens to the mounts below the target.
func (t *planText) submounts() {
	n := len(t.plan.Submounts)
	if n == 0 || t.plan.Mode == unmount.ModeExpire {
		return
	}
	switch {
	case t.plan.Mode == unmount.ModeLazy:
		t.add(pluralWords(n, "submount goes", "submounts go") + " with it.")
	case n == 1:
		t.add("The submount below it goes first: " + termsafe.Text(t.plan.Submounts[0].Mountpoint))
	default:
		t.add(fmt.Sprintf("The %d submounts below it go first, deepest first.", n))
	}
}

// stacked names the mounts that use the target as a layer
// (Plan.Stacked: taken like a submount, before the mount).
func (t *planText) stacked() {
	for _, s := range t.plan.Stacked {
		t.add(fmt.Sprintf("First the %s at %s, which uses it as a layer, is unmounted (its holders are revoked too).", termsafe.Text(s.FSType), termsafe.Text(s.Mountpoint)))
	}
}

// filesystem says whether the filesystem itself goes, not only the mount
// (unmount.Filesystem): already escaped by the engine.
func (t *planText) filesystem() {
	if s := t.plan.Filesystem.PlanText(); s != "" {
		t.add(strings.ToUpper(s[:1]) + s[1:] + ".")
	}
}

// warnings are the engine's warnings about the plan.
func (t *planText) warnings() {
	for _, w := range t.plan.Warnings {
		t.add("! " + termsafe.Message(w))
	}
}

// HintFor says what to do about an error, chosen by errors.Is, naming the
// holders when the mount is busy and the keys (k) that act on it.
func HintFor(err error, holders []inspect.Holder, k Keys) string {
	if err == nil {
		return ""
	}
	if s := engineHint(err, k); s != "" {
		return s
	}
	var ue *unmount.Error
	switch {
	case errors.As(err, &ue) && ue.Hint != "" && !errors.Is(err, unix.EBUSY):
		return termsafe.Message(ue.Hint)
	case errors.Is(err, unix.EBUSY):
		return busyHint(holders, k)
	}
	return errnoHint(err, k)
}

// engineHint is HintFor's hint for the engine's own errors: the mount
// went or changed, or holders outlasted the drain.
func engineHint(err error, k Keys) string {
	switch {
	case errors.Is(err, unmount.ErrGone):
		return "it is already gone; " + k.Refresh + " refreshes"
	case errors.Is(err, unmount.ErrChanged):
		return "the path now names another mount: nothing was done; " + k.Refresh + " refreshes, then look again"
	case errors.Is(err, unmount.ErrTimeout):
		return "holders remain (see the log): " + k.Staged + " again, or choose the signal policy (" + k.SignalInstead + ") in its dialog"
	}
	return ""
}

// errnoHint is HintFor's hint for the errnos of umount2(2) other than
// EBUSY.
func errnoHint(err error, k Keys) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return "not permitted: unmounting needs root (CAP_SYS_ADMIN); run sudo mounttop, or try mounttop demo"
	case errors.Is(err, unix.EINVAL):
		return "not a mount point any more (already gone?); " + k.Refresh + " refreshes"
	case errors.Is(err, unix.EAGAIN):
		return "marked for expiry: " + k.Expire + " again unmounts it if nothing touches it first"
	case errors.Is(err, unix.ENOENT):
		return "the mount point is gone; " + k.Refresh + " refreshes"
	}
	return ""
}

// busyHint names who holds a busy mount (EBUSY) and the keys that take
// it anyway.
func busyHint(holders []inspect.Holder, k Keys) string {
	if len(holders) == 0 {
		return "busy: a submount, another namespace or the kernel holds it; try " + k.Staged + " (staged) or " + k.Lazy + " (lazy)"
	}
	names := make([]string, 0, 3)
	for i, h := range holders {
		if i == 3 {
			names = append(names, "…")
			break
		}
		names = append(names, fmt.Sprintf("%d %s", h.PID, termsafe.Text(h.Comm)))
	}
	return fmt.Sprintf("held by %s: %s · %s revokes them, %s detaches lazily",
		processes(len(holders)), strings.Join(names, ", "), k.Staged, k.Lazy)
}

// ReleaseWhat says what one release does, in the operator's words:
// "detach /dev/loop3 (backed by /mnt/x/img)", "swapoff /mnt/x/swapfile",
// "unmount the copy at /x in mount namespace mnt:[N] (pid P) lazily". The
// loop's backing file and the copy's namespace come from the snapshot the
// plan was made from.
func ReleaseWhat(r unmount.Release, snap *inspect.Snapshot) string {
	return describeRelease(r, snap, "mount namespace ")
}

// ReleaseBrief is ReleaseWhat for a list: "... in mnt:[N] (pid P) ...".
func ReleaseBrief(r unmount.Release, snap *inspect.Snapshot) string {
	return describeRelease(r, snap, "")
}

// ReleaseTitle is the title of a release's dialog: "Detach /dev/loop3?",
// "Swapoff /x/swapfile?", "Unmount the copy at /x in mnt:[N]?".
func ReleaseTitle(r unmount.Release, snap *inspect.Snapshot) string {
	switch r.Kind {
	case "loop":
		return "Detach " + termsafe.Text(r.Name) + "?"
	case "swap":
		return "Swapoff " + termsafe.Text(r.Name) + "?"
	case "copy":
		s := "Unmount the copy at " + termsafe.Text(r.Mountpoint)
		if ns := copyNamespace(r, snap); ns != 0 {
			s += fmt.Sprintf(" in mnt:[%d]", ns)
		}
		return s + "?"
	}
	return "Release " + r.Kind.String() + " " + termsafe.Text(r.Name) + "?"
}

func describeRelease(r unmount.Release, snap *inspect.Snapshot, nsWord string) string {
	switch r.Kind {
	case "loop":
		s := "detach " + termsafe.Text(r.Name)
		if k, ok := kernelHolderNamed(snap, "loop", r.Name); ok && k.Path != "" {
			s += " (backed by " + termsafe.Text(k.Path) + ")"
		}
		return s
	case "swap":
		return "swapoff " + termsafe.Text(r.Name)
	case "copy":
		s := "unmount the copy at " + termsafe.Text(r.Mountpoint) + " in "
		if ns := copyNamespace(r, snap); ns != 0 {
			s += fmt.Sprintf("%smnt:[%d] ", nsWord, ns)
		} else {
			s += "the mount namespace of "
		}
		s += fmt.Sprintf("(pid %d)", r.PID)
		if r.Lazy {
			s += " lazily"
		}
		return s
	}
	if r.What != "" {
		return termsafe.Message(r.What)
	}
	return r.Kind.String() + " " + termsafe.Text(r.Name)
}

// ReleaseLines state exactly what a release does and to whom, for its
// dialog.
func ReleaseLines(r unmount.Release, snap *inspect.Snapshot, wrap func(s string) []string) []string {
	what := ReleaseWhat(r, snap)
	out := wrap(strings.ToUpper(what[:1]) + what[1:] + ".")
	switch r.Kind {
	case "loop":
		// The engine refuses a loop device that is mounted or claimed;
		// one a process merely has open goes on its last close (loop(4)
		// autoclear).
		out = append(out, "The kernel lets go of the backing file: no process is touched.",
			"If something still has it open, it goes when the last user closes it.")
	case "swap":
		out = append(out, "Every page swapped out to it is read back into memory first:",
			"this can take a while, and fails (ENOMEM) if the pages do not fit.")
	case "copy":
		var holders []inspect.Holder
		if ns, ok := namespaceOf(snap, r.PID); ok {
			holders = ns.Holders[r.OldID]
		}
		switch {
		case len(holders) == 0:
			out = append(out, "Nothing holds it there; processes in that namespace no longer see it.")
		case r.Lazy:
			out = append(out, "It leaves that namespace's tree now. Its holders there are NOT touched;",
				"they keep the filesystem alive until they let go:")
		default:
			out = append(out, "These processes there hold it (EBUSY while they do):")
		}
		for i, h := range holders {
			if i == 3 {
				out = append(out, fmt.Sprintf("  … and %d more", len(holders)-i))
				break
			}
			out = append(out, "  "+HolderBrief(h))
		}
		if r.Propagates {
			out = append(out, "Our own unmount propagates to this copy: while it is held, ours fails (EBUSY).")
		}
		out = append(out, "Nothing changes in this namespace.")
	}
	return out
}

// ReleaseListLines list a plan's releases for the staged dialog and the
// preview: what each does, or why it cannot be done.
func ReleaseListLines(plan unmount.Plan, snap *inspect.Snapshot, max int) []string {
	if len(plan.Releases) == 0 {
		return nil
	}
	head := fmt.Sprintf("Kernel holders and copies elsewhere (%d), released only with (a):", len(plan.Releases))
	if plan.Release {
		head = fmt.Sprintf("During the run, also release the kernel holders and copies elsewhere (%d):", len(plan.Releases))
	}
	out := []string{head}
	for i, r := range plan.Releases {
		if i == max && len(plan.Releases) > max+1 {
			out = append(out, fmt.Sprintf("   … and %d more", len(plan.Releases)-i))
			break
		}
		line := "   " + ReleaseBrief(r, snap)
		if r.Kind == "copy" && r.Propagates && r.Refused == "" {
			// The run does not unmount such a copy: umount2 of ours
			// takes it along once its holders there are revoked.
			line = "   revoke the holders of the copy at " + termsafe.Text(r.Mountpoint)
			if ns := copyNamespace(r, snap); ns != 0 {
				line += fmt.Sprintf(" in mnt:[%d]", ns)
			}
			line += "; our unmount takes it along"
		}
		if r.Refused != "" {
			line += ": REFUSED, " + termsafe.Message(r.Refused)
		}
		out = append(out, line)
	}
	return out
}

// Releasable counts the releases that are not refused.
func Releasable(rs []unmount.Release) int {
	n := 0
	for _, r := range rs {
		if r.Refused == "" {
			n++
		}
	}
	return n
}

// kernelHolderNamed finds a kernel holder of any mount by kind and name.
func kernelHolderNamed(snap *inspect.Snapshot, kind, name string) (inspect.KernelHolder, bool) {
	if snap == nil {
		return inspect.KernelHolder{}, false
	}
	for _, ks := range snap.Kernel {
		for _, k := range ks {
			if k.Kind.String() == kind && k.Name == name {
				return k, true
			}
		}
	}
	return inspect.KernelHolder{}, false
}

// copyNamespace is the inode of a copy's mount namespace, as the engine
// names it or else as the snapshot has it (0: unknown).
func copyNamespace(r unmount.Release, snap *inspect.Snapshot) uint64 {
	if r.Namespace != 0 {
		return r.Namespace
	}
	if ns, ok := namespaceOf(snap, r.PID); ok {
		return ns.Inode
	}
	return 0
}

// namespaceOf is the other mount namespace process pid lives in.
func namespaceOf(snap *inspect.Snapshot, pid int) (*inspect.Namespace, bool) {
	if snap == nil {
		return nil, false
	}
	for i := range snap.Namespaces {
		for _, p := range snap.Namespaces[i].PIDs {
			if p == pid {
				return &snap.Namespaces[i], true
			}
		}
	}
	return nil, false
}

// ReleaseHint says what to do about a failed release, chosen by errors.Is;
// k names the keys.
func ReleaseHint(err error, r unmount.Release, snap *inspect.Snapshot, k Keys) string {
	switch {
	case errors.Is(err, release.ErrChanged), errors.Is(err, unmount.ErrChanged):
		return "the mount there is no longer the one inspected: nothing was done; " + k.Refresh + " refreshes"
	case errors.Is(err, unix.EBUSY) && r.Kind == "copy":
		var names []string
		if ns, ok := namespaceOf(snap, r.PID); ok {
			for i, h := range ns.Holders[r.OldID] {
				if i == 3 {
					names = append(names, "…")
					break
				}
				names = append(names, fmt.Sprintf("%d %s", h.PID, termsafe.Text(h.Comm)))
			}
		}
		if len(names) == 0 {
			return "the copy is busy in its namespace (a submount, or a holder the scan did not see)"
		}
		return "the copy is held in its namespace by " + strings.Join(names, ", ") + ": they must let go first"
	case errors.Is(err, unix.EBUSY) && r.Kind == "loop":
		return "the loop device is busy: unmount what is mounted from it first"
	case errors.Is(err, unix.ENOMEM) && r.Kind == "swap":
		return "not enough memory to take the swapped pages back: free some first"
	case errors.Is(err, unix.ESRCH), errors.Is(err, unix.ENOENT) && r.Kind == "copy":
		return "that namespace's process is gone (the namespace may be too); " + k.Refresh + " refreshes"
	}
	return HintFor(err, nil, k)
}

// processes is "1 process", "3 processes".
func processes(n int) string { return pluralWords(n, "process", "processes") }

// pluralWords is "1 one" or "n many".
func pluralWords(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
