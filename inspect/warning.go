package inspect

import (
	"mounttop/internal/kindname"
	"sort"
	"time"
)

// Warning is a partial failure of a scan: a process it could not read, one
// that vanished or hung, a fallback taken. Partial results are normal.
//
// A Warning is data: its Kind says what happened and the fields say to
// whom and with what; the sentence the operator reads is written by
// internal/present (present.WarningText), which escapes the names in it
// once. Names here (paths, comm) are raw, as the kernel gave them.
type Warning struct {
	Kind WarningKind
	// PID is the one process a per-process warning is about (as a reader
	// makes it); 0 when it is about none, or about PIDs.
	PID int
	// PIDs are the processes it is about, in order: those sharing one
	// per-process cause (the scan groups them into one warning, PID 0),
	// those given up on (WarnGaveUp), those holding an unreadable mount
	// (WarnUnreadableMount).
	PIDs []int
	// What is, for WarnRead, what was attempted, in a few words
	// ("reading stat", "cannot read open files").
	What string
	Err  error
	// Count is how many: mounts that changed under the read
	// (WarnTableChanged), processes not reached (WarnNotScanned).
	Count int
	// Limit is the per-process deadline given up after (WarnGaveUp).
	Limit time.Duration
	// Path is the mount point of the mount held (WarnUnreadableMount) or
	// of the overlay (WarnRelativeLayer); Device and FSType that mount's.
	Path, Device, FSType string
	// Namespace is the overlay's mount namespace (WarnRelativeLayer),
	// 0 for ours.
	Namespace uint64
	// Layer is the layer named by a relative path (WarnRelativeLayer).
	Layer Layer
	// Stuck are the reads of PID that have not returned, oldest first,
	// and LeftOut the files the scan no longer reads because of them
	// (WarnStuck).
	Stuck   []StuckRead
	LeftOut []string
	// Advice is what would let the scan tell (WarnUnreadableMount).
	Advice Advice
}

// WarningKind is what a Warning reports.
type WarningKind uint8

const (
	// WarnRead: a read of a process failed or was refused (What, Err);
	// the zero kind, so a Warning{What, Err} says just that.
	WarnRead WarningKind = iota
	// WarnMapsByPath: map_files could not be read (it needs
	// CAP_SYS_ADMIN, proc(5)), so mappings were attributed by path,
	// which cannot tell bind mounts of one filesystem apart.
	WarnMapsByPath
	// WarnLocks: /proc/locks could not be read (Err): no locks shown.
	WarnLocks
	// WarnListPIDs: the /proc directory could not be listed (Err).
	WarnListPIDs
	// WarnCutShort: the scan's context ended first (Err).
	WarnCutShort
	// WarnStuck: reads of PID did not return (Stuck) and are not asked
	// again until they do (LeftOut).
	WarnStuck
	// WarnGaveUp: PIDs did not answer within Limit, twice.
	WarnGaveUp
	// WarnNotScanned: Count processes were not reached before the
	// deadline.
	WarnNotScanned
	// WarnUniqueIDs: listmount/statmount failed (Err): the reusable
	// 32-bit IDs stand in for the unique ones.
	WarnUniqueIDs
	// WarnTableChanged: Count mounts changed while the table was read;
	// their IDs are stand-ins until the next scan.
	WarnTableChanged
	// WarnUnreadableMount: PIDs hold a mount of Device (FSType, as at
	// Path) that is in no table the scan could read (Advice).
	WarnUnreadableMount
	// WarnRelativeLayer: the overlay at Path (in Namespace) names Layer
	// by a path relative to the mounter's cwd at mount time.
	WarnRelativeLayer
)

var warningKindNames = [...]string{
	WarnRead: "read", WarnMapsByPath: "maps-by-path", WarnLocks: "locks", WarnListPIDs: "list-processes",
	WarnCutShort: "cut-short", WarnStuck: "stuck", WarnGaveUp: "gave-up", WarnNotScanned: "not-scanned",
	WarnUniqueIDs: "unique-ids", WarnTableChanged: "table-changed", WarnUnreadableMount: "unreadable-mount",
	WarnRelativeLayer: "relative-layer",
}

func (k WarningKind) String() string {
	return kindname.Of("WarningKind", warningKindNames[:], int(k), 0)
}

// PerProcess reports whether warnings of this kind are made by one
// process's read (and so grouped by cause across processes, PIDs).
func (k WarningKind) PerProcess() bool {
	return k == WarnRead || k == WarnMapsByPath || k == WarnStuck
}

// StuckRead is one read of a process that has not returned: the file
// (/proc/PID/cmdline), since when, and for how long at the scan.
type StuckRead struct {
	File  string
	Since time.Time
	For   time.Duration
}

// Advice is what would let a scan read the mount namespaces it could not
// (WarnUnreadableMount).
type Advice uint8

const (
	// AdviceRoot: an ordinary user may not read other users' namespaces.
	AdviceRoot Advice = iota + 1
	// AdviceSecurityModule: even root in the initial user namespace was
	// refused (a security module?).
	AdviceSecurityModule
	// AdviceInitialUserNS: root only inside a user namespace, which may
	// not look at its parent's processes' namespaces (ptrace_may_access,
	// user_namespaces(7)).
	AdviceInitialUserNS
)

// groupKey is a per-process warning's cause without its process: the
// warnings many processes share (EACCES on their fds as an ordinary user)
// become one. A stuck read names its process's files, so it stays alone.
type groupKey struct {
	kind WarningKind
	what string
	err  string
	pid  int
}

func (w Warning) groupKey() groupKey {
	k := groupKey{kind: w.Kind, what: w.What}
	if w.Err != nil {
		k.err = w.Err.Error()
	}
	if w.Kind == WarnStuck {
		k.pid = w.PID
	}
	return k
}

// grouped is the one warning for a per-process cause shared by pids: w,
// with its processes in PIDs (ordered) instead of PID.
func grouped(w Warning, pids []int) Warning {
	sort.Ints(pids)
	w.PID, w.PIDs = 0, pids
	return w
}

// adviceNames are the Advice values' names, for logs and tests (String).
var adviceNames = [...]string{AdviceRoot - 1: "root", AdviceSecurityModule - 1: "security-module", AdviceInitialUserNS - 1: "initial-user-ns"}

// String names the Advice (kindname.Of).
func (a Advice) String() string { return kindname.Of("Advice", adviceNames[:], int(a), 1) }
