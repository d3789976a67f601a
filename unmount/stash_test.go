package unmount

// StashIn makes the beneath-swap fence's private directory under dir
// (default: the first of /run, $TMPDIR, / that is not on the target), so
// that tests keep their stashes in their own namespace's tmpfs.
func StashIn(dir string) SystemOption { return func(k *kernel) { k.stashRoot = dir } }
