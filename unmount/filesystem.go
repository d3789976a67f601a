package unmount

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/bounded"
	"mounttop/internal/present/scantext"
	// termsafe only for errors and the call names bounded puts in its
	// errors (an error is text: its names are escaped as it is built).
	"mounttop/internal/termsafe"
)

// Filesystem says whether the filesystem itself (its superblock) is gone,
// not only the mount: an unmount frees a disk, an image or a server only
// when nothing else uses the filesystem. Bind mounts and copies in other
// mount namespaces share the superblock (DESIGN.md "Identifying a mount");
// a lazily unmounted mount lives on detached while held; an overlay keeps
// private clones of its layers' mounts, so T's superblock lives on
// invisibly after `umount T` succeeds (DESIGN.md "Dead servers, overlays");
// a loop device or a swap file keeps its backing file open.
type Filesystem struct {
	// Checked: the uses were looked for (a scan could be made).
	Checked bool
	// Released: nothing mounttop can see uses the filesystem any more
	// and, for a block device, it opened exclusively (false, with Doubt,
	// when that open could not be tried or failed otherwise than EBUSY).
	Released bool
	// InUseBy is what still uses it, each named once.
	InUseBy []FilesystemUse
	// Device is the filesystem's device, "major:minor" (st_dev).
	Device string
	// Exclusive: the block device (DeviceName) opened with O_EXCL
	// (open(2): EBUSY while a filesystem or another claimer holds it),
	// so it can be detached, checked or mounted again.
	Exclusive  bool
	DeviceName string
	// Doubt says why the check is incomplete (its Kind DoubtNone when it
	// is not); present.DoubtText words it.
	Doubt Doubt

	// newest is the highest unique mount ID the plan's scan saw (0: not
	// known, or IDs were stand-ins): a mount with a higher ID was made
	// after the plan (unique IDs only grow, statmount(2)), so it cannot be
	// one the plan counted (see checkFilesystem).
	newest inspect.MountID
}

// FilesystemUse is one thing that keeps a filesystem in use.
type FilesystemUse struct {
	// Kind: "mount" (another mount of it: a bind mount, a copy in another
	// namespace), "detached" (lazily unmounted, still held), a stacking
	// filesystem's type ("overlay"), "loop", "swap", "nfsd-export",
	// "io_uring", "binfmt_misc", "block-holder", or "device" (the block
	// device is claimed by something mounttop cannot name).
	Kind string
	// Where: the mount point, the loop device, the swap file, the device.
	Where string
	// Namespace is the mount namespace's inode (mnt:[N]) when it is not
	// ours; Host marks the host's (pid 1's).
	Namespace uint64
	Host      bool
	// PIDs hold a detached mount (the first few).
	PIDs []int
	// mount is the use's mount in our table (a mount, an overlay of
	// ours), 0 when there is none: how the plan's list is told apart from
	// what the target takes along.
	mount inspect.MountID
}

// filesystemUses lists what, in snap, uses the filesystem of device
// major:minor besides the mounts in skip: other mounts of it here
// (detached ones with their holders), its mounts in the other namespaces
// read (those in skipCopies excepted), and the kernel holders (overlays
// with a layer on it, loop devices, swap files, ...) of any mount of it.
// A loop device is found by its backing file's device as well, so it is
// named even once no mount of the filesystem is left in our table.
func filesystemUses(snap *inspect.Snapshot, major, minor int, skip map[inspect.MountID]bool, skipCopies map[uint64]map[int]bool) []FilesystemUse {
	var out []FilesystemUse
	seen := map[string]bool{}
	add := func(u FilesystemUse) {
		key := fmt.Sprintf("%s\x00%s\x00%d\x00%v", u.Kind, u.Where, u.Namespace, u.PIDs)
		if !seen[key] {
			seen[key] = true
			out = append(out, u)
		}
	}
	same := func(m *inspect.Mount) bool { return m.Major == major && m.Minor == minor }
	var ours []inspect.MountID
	for i := range snap.Mounts {
		m := &snap.Mounts[i]
		if !same(m) {
			continue
		}
		ours = append(ours, m.ID)
		if skip[m.ID] {
			continue
		}
		if m.Detached {
			add(FilesystemUse{Kind: "detached", PIDs: holderPIDs(snap.HoldersOf(m.ID), 3), mount: m.ID})
			continue
		}
		add(FilesystemUse{Kind: "mount", Where: m.Mountpoint, mount: m.ID})
	}
	for i := range snap.Namespaces {
		ns := &snap.Namespaces[i]
		for j := range ns.Mounts {
			c := &ns.Mounts[j]
			if same(c) && !skipCopies[ns.Inode][c.OldID] {
				add(FilesystemUse{Kind: "mount", Where: c.Mountpoint, Namespace: ns.Inode, Host: ns.Host})
			}
		}
	}
	dev := unix.Mkdev(uint32(major), uint32(minor))
	var ids []inspect.MountID
	for id := range snap.Kernel {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	onIt := map[inspect.MountID]bool{}
	for _, id := range ours {
		onIt[id] = true
	}
	for _, id := range ids {
		for _, k := range snap.Kernel[id] {
			switch {
			case k.Kind.Mounted():
				continue
			case onIt[id]:
			case k.Kind == inspect.KernelLoop && k.Dev == dev:
			default:
				continue
			}
			add(FilesystemUse{Kind: k.Kind.String(), Where: scantext.KernelName(k), Namespace: k.Namespace, Host: k.Namespace != 0 && k.Namespace == snap.HostNS, mount: k.Mount})
		}
	}
	return out
}

// holderPIDs is the pids of the first n holders.
func holderPIDs(hs []inspect.Holder, n int) []int {
	var out []int
	for i, h := range hs {
		if i == n {
			break
		}
		out = append(out, h.PID)
	}
	return out
}

// planFilesystem is the plan's forecast for p: what keeps the target's
// filesystem in use once the target and its submounts are gone. The copies
// umount2 propagates to go along with ours; a lazy unmount leaves the
// target detached while its holders hold it; a staged run revokes them,
// and with Release also frees what Releases lists (a loop device, a swap
// file, a copy elsewhere), unless refused.
func planFilesystem(snap *inspect.Snapshot, p *Plan) Filesystem {
	m := &p.Target
	skip := map[inspect.MountID]bool{m.ID: true}
	for _, s := range p.Submounts {
		skip[s.ID] = true
	}
	for _, s := range p.Stacked {
		skip[s.ID] = true
	}
	skipCopies := map[uint64]map[int]bool{}
	if !m.Detached {
		for _, c := range snap.Copies(m.ID) {
			if c.Propagates {
				if skipCopies[c.Namespace.Inode] == nil {
					skipCopies[c.Namespace.Inode] = map[int]bool{}
				}
				skipCopies[c.Namespace.Inode][c.Mount.OldID] = true
			}
		}
	}
	f := Filesystem{Checked: true, Device: m.Device()}
	if snap.UniqueIDs {
		for i := range snap.Mounts {
			f.newest = max(f.newest, snap.Mounts[i].ID)
		}
	}
	if hs := snap.HoldersOf(m.ID); p.Mode == ModeLazy && len(hs) > 0 {
		f.InUseBy = append(f.InUseBy, FilesystemUse{Kind: "detached", PIDs: holderPIDs(hs, 3), mount: m.ID})
	}
	released := map[string]bool{} // what a staged run with Release frees
	if p.Release && p.Mode == ModeStaged {
		for _, r := range p.Releases {
			if r.Refused() {
				continue
			}
			switch r.Kind {
			case ReleaseCopy:
				released[fmt.Sprintf("mount\x00%s\x00%d", r.Mountpoint, r.Namespace)] = true
			default:
				released[r.Kind.String()+"\x00"+r.Name+"\x000"] = true
			}
		}
	}
	for _, u := range filesystemUses(snap, m.Major, m.Minor, skip, skipCopies) {
		switch {
		case u.mount != 0 && skip[u.mount]:
			continue // an overlay among the submounts goes first
		case released[fmt.Sprintf("%s\x00%s\x00%d", u.Kind, u.Where, u.Namespace)]:
			continue
		}
		f.InUseBy = append(f.InUseBy, u)
	}
	f.Released = len(f.InUseBy) == 0
	return f
}

// watchWait bounds how long checkFilesystem waits for IN_UNMOUNT once the
// target is gone. The superblock goes with the last mntput, which umount2
// leaves to task_work run as the calling thread returns to user space
// (mntput_no_expire -> cleanup_mnt -> deactivate_super), so the event is
// normally queued before umount2 returns; a release run on another thread
// (a copy unmounted from its namespace, a revoked holder's last close)
// may come a moment later.
const watchWait = 200 * time.Millisecond

// filesystemWatch is a run's watch on the target's root (System.WatchRoot),
// set before the final umount2 so that the check after it knows whether
// the superblock really died: device numbers cannot tell, since an
// anonymous device number (0:N, get_anon_bdev) freed with a superblock is
// handed to the next filesystem that asks (another tmpfs), at once.
type filesystemWatch struct {
	w   RootWatch // nil when none could be set
	why WatchLoss // why there is none
}

// Close lets go of the watch (nil-safe).
func (fw *filesystemWatch) Close() {
	if fw != nil && fw.w != nil {
		fw.w.Close()
	}
}

// watchFilesystem sets the run's watch on the target's root, bounded by
// the plan's CallTimeout (the lookup may reach a dead server; a watch
// set after all by an abandoned call is closed). None on the expire path
// (the lookup would clear the expiry mark: mntput) or for a detached
// target (no path leads to it).
func (u *Unmounter) watchFilesystem(ctx context.Context, p *Plan) *filesystemWatch {
	m := p.Target
	switch {
	case p.Mode == ModeExpire:
		return &filesystemWatch{why: WatchLoss{Kind: WatchExpire}}
	case m.Detached:
		return &filesystemWatch{why: WatchLoss{Kind: WatchDetached}}
	}
	w, err := bounded.Value(ctx, u.calls, p.CallTimeout, "inotify watch on the root of "+termsafe.Quote(m.Mountpoint), bounded.AnyThread, func() (RootWatch, error) {
		return u.sys.WatchRoot(&m)
	}, func(w RootWatch) { w.Close() })
	if err != nil {
		return &filesystemWatch{why: WatchLoss{Kind: WatchFailed, ErrText: oneLine(err.Error())}}
	}
	return &filesystemWatch{w: w}
}

// checkFilesystem looks, after the target went, for what still uses its
// filesystem. With the run's watch (fw): IN_UNMOUNT means the superblock
// is gone, so the filesystem is released whatever mount now has its device
// number; no IN_UNMOUNT means it lives, so the device number still names
// it and the uses found by it are real. Then: a fresh scan
// (filesystemUses; the target itself counts now if it lives on detached),
// the overlays the plan saw using it as a layer that are still mounted
// (once the target is gone, their layer paths lead elsewhere, so only the
// plan could tell), and for a block device whether it now opens
// exclusively (System.ClaimDevice, bounded: it should not wait on
// anything, but nothing is trusted not to). Without a watch, a mount of
// that device number made after the plan (unique ID above every one the
// plan saw) may be another filesystem given the freed number: it is not
// counted, and when it was the only match the answer is called uncertain.
func (u *Unmounter) checkFilesystem(ctx context.Context, p *Plan, fw *filesystemWatch) *Filesystem {
	m := &p.Target
	f := &Filesystem{Device: m.Device()}
	gone, lost := false, true
	why := WatchLoss{Kind: WatchNone}
	if fw != nil {
		why = fw.why
		if fw.w != nil {
			gone, lost = fw.w.Unmounted(watchWait)
			why = WatchLoss{Kind: WatchDropped}
		}
	}
	if gone {
		f.Checked = true
		u.claimDevice(ctx, p, f)
		f.Released = len(f.InUseBy) == 0 && f.Doubt.Kind == DoubtNone
		return f
	}
	snap, err := u.sys.Scan(ctx)
	if err != nil {
		f.Doubt = Doubt{Kind: DoubtScan, Device: f.Device, ErrText: oneLine(err.Error())}
		return f
	}
	f.Checked = true
	skip := map[inspect.MountID]bool{}
	for _, s := range p.Submounts {
		skip[s.ID] = true
	}
	var newer []string
	if lost && p.Filesystem.newest != 0 && snap.UniqueIDs {
		// The superblock may be gone and its number reused: a mount made
		// since the plan cannot be told from a new filesystem's.
		for i := range snap.Mounts {
			if n := &snap.Mounts[i]; n.ID > p.Filesystem.newest && n.Major == m.Major && n.Minor == m.Minor && !skip[n.ID] {
				skip[n.ID] = true
				newer = append(newer, n.Mountpoint)
			}
		}
	}
	f.InUseBy = filesystemUses(snap, m.Major, m.Minor, skip, nil)
	have := map[string]bool{}
	for _, use := range f.InUseBy {
		have[use.Kind+"\x00"+use.Where] = true
	}
	for _, use := range p.Filesystem.InUseBy {
		if !stacking(use.Kind) || have[use.Kind+"\x00"+use.Where] || !stillMounted(snap, use) {
			continue
		}
		f.InUseBy = append(f.InUseBy, use)
	}
	if len(f.InUseBy) == 0 && len(newer) > 0 {
		f.Doubt = Doubt{Kind: DoubtReused, Device: m.Device(), Newer: newer, Watch: why}
	}
	if len(f.InUseBy) == 0 && f.Doubt.Kind == DoubtNone {
		u.claimDevice(ctx, p, f)
	}
	f.Released = len(f.InUseBy) == 0 && f.Doubt.Kind == DoubtNone
	return f
}

// claimDevice tries, for a block device, whether it now opens exclusively
// (System.ClaimDevice, bounded), and records the answer in f.
func (u *Unmounter) claimDevice(ctx context.Context, p *Plan, f *Filesystem) {
	m := &p.Target
	if m.Major == 0 {
		return
	}
	name, err := bounded.Value(ctx, u.calls, p.CallTimeout, "open O_EXCL of block device "+m.Device(), bounded.AnyThread, func() (string, error) {
		return u.sys.ClaimDevice(m.Major, m.Minor)
	}, nil)
	f.DeviceName = name
	switch {
	case err == nil:
		f.Exclusive = true
	case errors.Is(err, ErrNotBlockDevice):
	case errors.Is(err, unix.EBUSY):
		f.InUseBy = append(f.InUseBy, FilesystemUse{Kind: "device", Where: name})
	default:
		f.Doubt = Doubt{Kind: DoubtClaim, Device: m.Device(), ErrText: oneLine(err.Error())}
	}
}

// stacking reports a use that is a stacking filesystem (not a mount, a
// device or a file).
func stacking(kind string) bool {
	switch kind {
	case "mount", "detached", "loop", "swap", "device", "nfsd-export", "io_uring", "binfmt_misc", "block-holder":
		return false
	}
	return true
}

// stillMounted reports whether a stacking filesystem the plan named is
// still mounted: by unique ID in our table, or at the same mount point
// with the same type in its namespace.
func stillMounted(snap *inspect.Snapshot, use FilesystemUse) bool {
	if use.Namespace == 0 {
		_, ok := snap.Mount(use.mount)
		return ok && use.mount != 0
	}
	for i := range snap.Namespaces {
		ns := &snap.Namespaces[i]
		if ns.Inode != use.Namespace {
			continue
		}
		for j := range ns.Mounts {
			if c := &ns.Mounts[j]; c.Mountpoint == use.Where && c.FSType == use.Kind {
				return true
			}
		}
	}
	return false
}

// ErrNotBlockDevice: the filesystem's device is no block device (tmpfs,
// proc, an overlay: an anonymous device), so there is nothing to claim.
var ErrNotBlockDevice = errors.New("not a block device")

// stackedOn returns the stacking filesystems of our namespace (overlays,
// inspect.KernelHolder with Layers) with a layer on one of ids, each
// preceded by its own submounts, deepest first, each mount once: the
// order in which they can be unmounted.
func stackedOn(snap *inspect.Snapshot, ids []inspect.MountID) []inspect.Mount {
	in := map[inspect.MountID]bool{}
	for _, id := range ids {
		in[id] = true
	}
	var out []inspect.Mount
	seen := map[inspect.MountID]bool{}
	for _, id := range ids {
		for _, k := range snap.Kernel[id] {
			if len(k.Layers) == 0 || k.Namespace != 0 || k.Mount == 0 || in[k.Mount] || seen[k.Mount] {
				continue
			}
			for _, sid := range append(snap.Descendants(k.Mount), k.Mount) {
				if s, ok := snap.Mount(sid); ok && !seen[sid] && !in[sid] {
					seen[sid] = true
					out = append(out, *s)
				}
			}
		}
	}
	return out
}

// WatchRoot (System): the mount point's directory anchored (openat2, no
// symbolic links), its last component opened O_PATH from there (the
// lookup crosses into the top mount, to that mount's root), checked by
// statx(STATX_MNT_ID_UNIQUE) to be the mount m.ID, and the watch added
// through /proc/self/fd/N of that fd: no path is walked again between
// the check and the watch. The O_PATH fd is closed before returning: it
// would pin the mount (umount2: EBUSY); the watch itself holds only the
// inode (fsnotify marks take no reference on a vfsmount).
func (k *kernel) WatchRoot(m *inspect.Mount) (RootWatch, error) {
	a, err := k.Anchor(nil, m.Mountpoint)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if a.fd < 0 {
		return nil, errors.New("the anchor is closed")
	}
	fd, err := unix.Openat2(a.fd, a.Name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", termsafe.Quote(a.Path()), err)
	}
	defer unix.Close(fd)
	id, err := fdMount(fd)
	if err != nil {
		return nil, err
	}
	if id != m.ID {
		return nil, fmt.Errorf("%w: the mount at %s is another mount now", ErrChanged, termsafe.Quote(a.Path()))
	}
	ifd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// IN_UNMOUNT and IN_IGNORED are sent whatever the mask; the mask asks
	// for nothing else, so no event of the directory's use is queued.
	if _, err := unix.InotifyAddWatch(ifd, fmt.Sprintf("/proc/self/fd/%d", fd), unix.IN_UNMOUNT); err != nil {
		unix.Close(ifd)
		return nil, fmt.Errorf("inotify_add_watch on the root of %s: %w", termsafe.Quote(a.Path()), err)
	}
	return &inotifyWatch{fd: ifd}, nil
}

// inotifyWatch is the kernel's RootWatch: an inotify fd (IN_NONBLOCK) with
// one watch. What was read is remembered, since a read consumes it.
type inotifyWatch struct {
	mu        sync.Mutex
	fd        int
	unmounted bool
	lost      bool
}

func (w *inotifyWatch) Unmounted(wait time.Duration) (unmounted, lost bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 4096)
	for !w.unmounted && !w.lost && w.fd >= 0 {
		n, err := unix.Read(w.fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return w.unmounted, w.lost
			}
			ms := int(left.Milliseconds()) + 1
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}, ms); err != nil && err != unix.EINTR {
				w.lost = true
			}
			continue
		case err != nil || n < unix.SizeofInotifyEvent:
			w.lost = true
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			switch {
			case ev.Mask&unix.IN_UNMOUNT != 0:
				w.unmounted = true
			case ev.Mask&(unix.IN_IGNORED|unix.IN_Q_OVERFLOW) != 0:
				w.lost = true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		if w.unmounted {
			// IN_IGNORED follows IN_UNMOUNT (the watch is dropped as
			// the superblock goes): not a loss.
			w.lost = false
		}
	}
	return w.unmounted, w.lost
}

func (w *inotifyWatch) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
