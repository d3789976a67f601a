package unmount

import "mounttop/internal/kindname"

// Doubt says why the check of a filesystem after an unmount is incomplete
// (Filesystem.Doubt), as data: present.DoubtText words it. The zero value
// is no doubt: the check is complete.
type Doubt struct {
	Kind DoubtKind
	// Device is the filesystem's device number, "major:minor".
	Device string
	// Newer (DoubtReused) are the mount points, raw, of the mounts made
	// after the plan that now carry the device number.
	Newer []string
	// Watch (DoubtReused) is why the run had no inotify watch on the
	// target's root, or lost it, which would have told.
	Watch WatchLoss
	// ErrText is the failure, one line, as its error wrote it (its names
	// escaped already): the scan's (DoubtScan), the open's (DoubtClaim).
	ErrText string
}

// DoubtKind is what left the check incomplete.
type DoubtKind int

const (
	DoubtNone DoubtKind = iota
	// DoubtScan: the scan after the unmount failed; nothing was checked.
	DoubtScan
	// DoubtReused: without the watch, the device number now names only
	// mounts made after the plan (Newer), which may be another
	// filesystem given the freed number (get_anon_bdev hands a freed
	// anonymous number to the next superblock at once).
	DoubtReused
	// DoubtClaim: the block device Device could not be opened
	// exclusively (open(2) O_EXCL failed otherwise than EBUSY).
	DoubtClaim
)

// WatchLoss is why a run had no inotify watch on the target's root to
// tell whether its superblock died (filesystemWatch).
type WatchLoss struct {
	Kind WatchLossKind
	// ErrText (WatchFailed): inotify_add_watch's error, one line.
	ErrText string
}

// WatchLossKind is why there was no watch, or it said nothing.
type WatchLossKind int

const (
	// WatchNone: the run set no watch (no filesystemWatch).
	WatchNone WatchLossKind = iota
	// WatchExpire: none on the expire path: the lookup would clear the
	// expiry mark (mntput).
	WatchExpire
	// WatchDetached: none on a detached mount: no path leads to it.
	WatchDetached
	// WatchFailed: setting it failed (ErrText).
	WatchFailed
	// WatchDropped: the watch was dropped without IN_UNMOUNT (inotify(7):
	// IN_IGNORED alone).
	WatchDropped
)

// doubtKindNames are the DoubtKind values' names, for logs and tests (String).
var doubtKindNames = [...]string{DoubtNone: "none", DoubtScan: "scan", DoubtReused: "reused", DoubtClaim: "claim"}

// String names the DoubtKind (kindname.Of).
func (d DoubtKind) String() string { return kindname.Of("DoubtKind", doubtKindNames[:], int(d), 0) }

// watchLossKindNames are the WatchLossKind values' names, for logs and tests (String).
var watchLossKindNames = [...]string{WatchNone: "none", WatchExpire: "expire", WatchDetached: "detached", WatchFailed: "failed", WatchDropped: "dropped"}

// String names the WatchLossKind (kindname.Of).
func (w WatchLossKind) String() string {
	return kindname.Of("WatchLossKind", watchLossKindNames[:], int(w), 0)
}
