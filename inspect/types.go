// Package inspect answers "who holds this mount, and how": it reads the mount
// tree of the caller's mount namespace and attributes every process's uses
// (open fds, cwd/root, executable, memory mappings, file locks) to the exact
// mount they pin, in one scan of the whole system.
//
// The scan is built so that it never disturbs or waits on what it looks at:
//   - it never walks a mount point (stat, statfs or open of it would clear an
//     MNT_EXPIRE mark, umount2(2); DESIGN.md), reading mountinfo(5) and
//     statmount(2) instead;
//   - every look at a process's file goes through its /proc magic link with
//     statx(AT_STATX_DONT_SYNC|AT_NO_AUTOMOUNT), which answers from the
//     inode cache and so does not block on a dead FUSE or network server;
//   - a process that does block (stuck in the kernel on a hung filesystem)
//     is abandoned after a per-process deadline; the Inspector remembers the
//     read that did not return (by pid and start time) and, until it does,
//     every scan reads that process only where it cannot block, reports it
//     with what those reads show, and says which read is stuck since when.
//
// Mounts are keyed by their 64-bit unique mount ID (statx STATX_MNT_ID_UNIQUE,
// Linux 6.8+): the 32-bit ID in mountinfo is reused within seconds.
package inspect

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// MountID is a mount's 64-bit unique ID (statmount(2) mnt_id,
// STATX_MNT_ID_UNIQUE). On kernels without it, Snapshot.UniqueIDs is false
// and MountID is a stand-in made from the reusable 32-bit ID, the device and
// the root, with the top bit set so it can never equal a real unique ID.
type MountID uint64

// Propagation is a mount's propagation state, from the optional fields of
// mountinfo(5) (shared:N, master:N, propagate_from:N, unbindable).
type Propagation struct {
	Shared        int  // peer group ID, 0 if not shared
	Master        int  // peer group this mount receives from, 0 if none
	PropagateFrom int  // nearest dominant peer group visible here
	Unbindable    bool // MS_UNBINDABLE
}

// String renders the propagation the way findmnt -o PROPAGATION does.
func (p Propagation) String() string {
	var parts []string
	if p.Shared != 0 {
		parts = append(parts, "shared")
	}
	if p.Master != 0 {
		parts = append(parts, "slave")
	}
	if p.Unbindable {
		parts = append(parts, "unbindable")
	}
	if len(parts) == 0 {
		return "private"
	}
	return strings.Join(parts, ",")
}

// Mount is one entry of the mount table (proc(5) mountinfo), with its
// unique ID.
type Mount struct {
	ID           MountID // unique ID; the key everything else uses
	OldID        int     // reusable 32-bit ID (mountinfo field 1, fdinfo mnt_id)
	ParentID     MountID // unique ID of the parent (== ID for the namespace root)
	OldParentID  int
	Major, Minor int    // st_dev of the filesystem (mountinfo field 3)
	Root         string // root of the mount within its filesystem
	Mountpoint   string // where it is mounted, relative to our root
	FSType       string
	Source       string
	Options      string // per-mount options (rw,nosuid,...)
	SuperOptions string // per-superblock options
	Propagation  Propagation
	Children     []MountID // mounts whose parent is this one, in table order
	// Detached: lazily unmounted (MNT_DETACH) and still alive because
	// something holds it; it is in no namespace's table. Only ID, device
	// and the holders' paths (relative to the detached root) are known.
	Detached bool
	// Hidden: no path leads to this mount (shadowed by a mount over it or
	// over a directory on the way to it); reachable by its ID only. Set by
	// the table (markHidden), never by walking the path.
	Hidden bool
	// Automount: what mounts it again on access and expires it by itself
	// (autofs, a systemd automount unit, the kernel); nil when nothing
	// is known to.
	Automount *Automount
}

// ReadOnly reports whether the mount itself is read-only.
func (m *Mount) ReadOnly() bool {
	for _, o := range strings.Split(m.Options, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

// Device is the filesystem's device as "major:minor".
func (m *Mount) Device() string { return fmt.Sprintf("%d:%d", m.Major, m.Minor) }

// UseKind is how a process uses a mount.
type UseKind uint8

const (
	UseFD   UseKind = iota + 1 // an open file descriptor
	UseCwd                     // current working directory (process or thread)
	UseRoot                    // root directory (chroot)
	UseExe                     // the executable
	UseMmap                    // a memory mapping of a file
	UseLock                    // a file lock (flock, POSIX, OFD)
)

var useKindNames = [...]string{UseFD: "fd", UseCwd: "cwd", UseRoot: "root", UseExe: "exe", UseMmap: "mmap", UseLock: "lock"}

func (k UseKind) String() string {
	if int(k) < len(useKindNames) && useKindNames[k] != "" {
		return useKindNames[k]
	}
	return fmt.Sprintf("UseKind(%d)", int(k))
}

// MarshalText makes UseKind a JSON string ("fd", "cwd", ...).
func (k UseKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Access is an fd's access mode (O_RDONLY, O_WRONLY, O_RDWR).
type Access uint8

const (
	AccessUnknown Access = iota
	AccessRead
	AccessWrite
	AccessReadWrite
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "r"
	case AccessWrite:
		return "w"
	case AccessReadWrite:
		return "rw"
	}
	return ""
}

// LockType is a lock's type as /proc/locks names it (proc(5), locks).
type LockType string

const (
	LockFlock LockType = "FLOCK"  // flock(2)
	LockPOSIX LockType = "POSIX"  // fcntl(2) F_SETLK, lockf(3)
	LockOFD   LockType = "OFDLCK" // fcntl(2) F_OFD_SETLK: open file description lock
	LockLease LockType = "LEASE"  // fcntl(2) F_SETLEASE
)

func (t LockType) String() string { return string(t) }

// LockMode is a lock's mode as /proc/locks names it.
type LockMode string

const (
	LockRead  LockMode = "READ"
	LockWrite LockMode = "WRITE"
)

func (m LockMode) String() string { return string(m) }

// Lock describes a file lock from /proc/locks or fdinfo (proc(5), locks).
type Lock struct {
	Type   LockType
	Mode   LockMode
	Start  string // byte range start, "0"
	End    string // byte range end, "EOF" for the whole file
	Waiter bool   // a blocked request ("->" in /proc/locks), not a held lock
}

// Use is one way a process pins a mount.
type Use struct {
	Kind    UseKind
	FD      int    // fd number for UseFD and UseLock, else -1
	TID     int    // thread whose own cwd/root (unshare CLONE_FS) or fd table (CLONE_FILES) holds this, or through which a process whose leader exited holds it; else 0
	Path    string // as the process sees it (readlink of the magic link); may be empty in count-only scans
	Access  Access // for UseFD
	Deleted bool   // the file is unlinked (nlink 0)
	Inode   uint64
	Start   uint64 // mapping range for UseMmap
	End     uint64
	Lock    *Lock // for UseLock
	Count   int   // uses this entry stands for: 1, or more in a count-only scan (DetailCounts)
}

// Holder is a process that holds a mount, with its uses of that mount only.
type Holder struct {
	PID       int
	Comm      string   // /proc/PID/comm (may be set by the process: untrusted text)
	Cmdline   []string // argv (untrusted text)
	UID       int
	User      string    // user name, or the UID as text when unknown
	State     byte      // R, S, D, Z, T, ... from /proc/PID/stat
	Started   time.Time // process start time
	Threads   int
	Cgroup    string // the process's cgroup (v2 path, or the systemd controller's)
	Unit      string // systemd unit from the cgroup path, e.g. "nginx.service"
	Container string // container ID found in the cgroup path (docker, containerd, podman, kubepods)
	Uses      []Use

	// StartTicks is the start time as the kernel gives it (/proc/PID/stat
	// field 22, clock ticks since boot, proc(5)): exact where Started is
	// rounded, so with PID it names one process even once the pid is reused.
	StartTicks uint64
}

// Snapshot is the immutable result of one Scan.
type Snapshot struct {
	Taken     time.Time
	Duration  time.Duration
	UniqueIDs bool // false: MountIDs are stand-ins (kernel before 6.8)
	Mounts    []Mount
	Holders   map[MountID][]Holder // by mount, each holder listing only its uses of that mount
	Warnings  []Warning
	Processes int // processes scanned
	// FilesBy says how the open files were read; FilesWhy, for
	// FilesProcfs, why not through the task_file iterator.
	FilesBy  FilesSource
	FilesWhy error

	// Namespaces are the other mount namespaces that processes live in,
	// each with its own table and the holders of its mounts.
	Namespaces []Namespace
	// Kernel lists holders that are not processes: loop devices, swap
	// files, nfsd exports, io_uring registered files, binfmt_misc
	// interpreters, device-mapper/md holders, by mount.
	Kernel map[MountID][]KernelHolder

	// MountNS is our mount namespace's inode (mnt:[MountNS]); HostNS is
	// the initial mount namespace's, as far as this /proc shows it: pid
	// 1's (/proc/1/ns/mnt). Either is 0 when it could not be read (then
	// whether a namespace is the host's is unknown).
	MountNS, HostNS uint64

	index map[MountID]int
}

// Mount returns the mount with the given ID.
func (s *Snapshot) Mount(id MountID) (*Mount, bool) {
	i, ok := s.index[id]
	if !ok {
		return nil, false
	}
	return &s.Mounts[i], true
}

// Roots returns the mounts whose parent is not in the table (normally just
// the namespace root, "/").
func (s *Snapshot) Roots() []MountID {
	var roots []MountID
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if _, ok := s.index[m.ParentID]; !ok || m.ParentID == m.ID {
			roots = append(roots, m.ID)
		}
	}
	return roots
}

// HoldersOf returns the holders of one mount, ordered by pid.
func (s *Snapshot) HoldersOf(id MountID) []Holder { return s.Holders[id] }

// SameFilesystem returns the other mounts of the same filesystem (same
// device) in this namespace: bind mounts and other views of one superblock.
// Their holders keep the filesystem alive even when this mount goes.
func (s *Snapshot) SameFilesystem(id MountID) []*Mount {
	m, ok := s.Mount(id)
	if !ok {
		return nil
	}
	var out []*Mount
	for i := range s.Mounts {
		o := &s.Mounts[i]
		if o.ID != id && o.Major == m.Major && o.Minor == m.Minor {
			out = append(out, o)
		}
	}
	return out
}

// MountAt returns the mount a path walk of exactly path leads to (the
// top of a stack of mounts there, and never a shadowed one: Hidden), by
// the table alone: no path walk.
func (s *Snapshot) MountAt(path string) (*Mount, bool) {
	for i := range s.Mounts {
		if m := &s.Mounts[i]; m.Mountpoint == path && !m.Hidden && !m.Detached {
			return m, true
		}
	}
	return nil, false
}

// MountContaining returns the mount a path lies on: the reachable mount
// (not Hidden) with the longest mount point prefix in the table (the path
// must already be absolute and clean).
func (s *Snapshot) MountContaining(path string) (*Mount, bool) {
	var found *Mount
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Hidden || m.Detached || !isUnder(path, m.Mountpoint) || (found != nil && len(m.Mountpoint) <= len(found.Mountpoint)) {
			continue
		}
		found = m
	}
	return found, found != nil
}

// Descendants returns every mount below id (submounts), deepest first: the
// order in which they must be unmounted. Each mount is visited once, so a
// table with a cycle of parents (which the kernel never writes, but a
// --proc fixture can hold) ends the walk instead of the stack.
func (s *Snapshot) Descendants(id MountID) []MountID {
	var out []MountID
	var walk func(MountID, int)
	depth := map[MountID]int{id: 0}
	walk = func(p MountID, d int) {
		m, ok := s.Mount(p)
		if !ok {
			return
		}
		for _, c := range m.Children {
			if _, seen := depth[c]; seen {
				continue
			}
			depth[c] = d + 1
			out = append(out, c)
			walk(c, d+1)
		}
	}
	walk(id, 0)
	sort.SliceStable(out, func(i, j int) bool { return depth[out[i]] > depth[out[j]] })
	return out
}

func isUnder(path, mp string) bool {
	if mp == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == mp || strings.HasPrefix(path, mp+"/")
}

// Namespace is another mount namespace seen through its processes.
type Namespace struct {
	Inode   uint64           // mnt:[Inode], as /proc/PID/ns/mnt shows it
	PIDs    []int            // processes living there
	Mounts  []Mount          // its table (from /proc/PID/mountinfo of one of them)
	Holders map[int][]Holder // by the mount's reusable ID in that table
	Err     error            // its table could not be read
	Host    bool             // it is the initial mount namespace (pid 1's): Snapshot.HostNS
}

// Copy is a mount of the same filesystem in another mount namespace.
type Copy struct {
	Namespace *Namespace
	Mount     *Mount   // in that namespace's table
	Holders   []Holder // holders of that copy
	// Propagates: our mount's parent is shared and the copy sits at the
	// same place under a peer or slave of it, so umount2 of ours
	// propagates there and a busy copy makes it fail with EBUSY
	// (propagate_mount_busy in fs/pnode.c). Otherwise the copy is independent: our umount succeeds
	// but the filesystem (and its device) stays alive while the copy is
	// mounted.
	Propagates bool
}

// Copies returns the mounts of the same filesystem (same device) in other
// mount namespaces: containers, services with a private /tmp, unshare'd
// shells. fuser and lsof show such holders with no hint of why.
func (s *Snapshot) Copies(id MountID) []Copy {
	m, ok := s.Mount(id)
	if !ok {
		return nil
	}
	var out []Copy
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		for j := range ns.Mounts {
			c := &ns.Mounts[j]
			if c.Major != m.Major || c.Minor != m.Minor {
				continue
			}
			out = append(out, Copy{Namespace: ns, Mount: c, Holders: ns.Holders[c.OldID], Propagates: s.propagates(m, ns, c)})
		}
	}
	return out
}

// KernelKind is what kind of kernel object holds a mount (KernelHolder).
// Its text is the JSON value of `holders --json`'s kernel_holders[].kind.
type KernelKind string

const (
	// KernelLoop: a loop device whose backing file is on the mount
	// (/sys/block/loopN/loop/backing_file, loop(4)).
	KernelLoop KernelKind = "loop"
	// KernelSwap: a swap file on the mount (/proc/swaps, swapon(2)).
	KernelSwap KernelKind = "swap"
	// KernelNFSExport: a directory on the mount exported by the kernel's
	// NFS server (/proc/fs/nfsd/exports, exportfs(8)).
	KernelNFSExport KernelKind = "nfsd-export"
	// KernelIOURing: a file registered with an io_uring (the UserFiles:
	// section of the ring's fdinfo, io_uring_register(2)).
	KernelIOURing KernelKind = "io_uring"
	// KernelBinfmt: a binfmt_misc interpreter opened at registration
	// (flag F, Documentation/admin-guide/binfmt-misc.rst).
	KernelBinfmt KernelKind = "binfmt_misc"
	// KernelBlockHolder: a device stacked on the mount's block device
	// (/sys/dev/block/M:N/holders: device-mapper, md).
	KernelBlockHolder KernelKind = "block-holder"
	// KernelSubmount: a mount below this one; umount2(2) gives EBUSY
	// until it is gone.
	KernelSubmount KernelKind = "submount"
	// KernelOverMount: a mount on the same mount point, over this one.
	KernelOverMount KernelKind = "over-mount"
	// KernelOverlay is the usual stacking filesystem; a stacking holder's
	// kind is its filesystem type, whatever it is (Layers is set).
	KernelOverlay KernelKind = "overlay"
)

func (k KernelKind) String() string { return string(k) }

// Mounted reports whether the holder is another mount (a submount or an
// over-mount), which the tree shows already.
func (k KernelKind) Mounted() bool { return k == KernelSubmount || k == KernelOverMount }

// KernelHolder is a holder that is not a process's use: the kernel itself
// pins the mount on someone's behalf.
type KernelHolder struct {
	Kind KernelKind
	Name string // /dev/loop3, the swap file, the binfmt entry, dm-0, the submount's path, the overlay's mount point; "" for io_uring
	Path string // the file on the mount that is held
	PID  int    // io_uring: the owning process
	// FD and Index name an io_uring's registered file: the ring's fd in
	// PID and the file's index in its table (the "N:" of the fdinfo's
	// UserFiles:, io_uring/fdinfo.c). scantext.KernelName words them.
	FD, Index int
	// MountedAt is, for a loop device, where the device itself is
	// mounted ("" when it is not): that mount goes before the device
	// can be detached. What releases a holder is said by
	// present.KernelHolderAction, from Kind and these fields.
	MountedAt string
	// Entry is, for a binfmt_misc interpreter, the entry's file under
	// the scan's /proc (/proc/sys/fs/binfmt_misc/NAME): writing -1 to it
	// removes the entry and closes the interpreter.
	Entry string
	// Dev and Ino identify the held file (loop: the backing file, from
	// LOOP_GET_STATUS64 on the device; swap: the swap file, by statx with
	// AT_STATX_DONT_SYNC), so a release can check it acts on the same
	// file; Ino is 0 when the scan could not tell.
	Dev, Ino uint64
	// For a stacking filesystem (overlay): its layers on this mount, the
	// mount namespace it is mounted in (0: ours, where Mount is its ID).
	Layers    []Layer
	Namespace uint64
	Mount     MountID
}

func (s *Snapshot) propagates(m *Mount, ns *Namespace, c *Mount) bool {
	parent, ok := s.Mount(m.ParentID)
	if !ok || parent.ID == m.ID || parent.Propagation.Shared == 0 || c.Mountpoint != m.Mountpoint {
		return false
	}
	for i := range ns.Mounts {
		if p := &ns.Mounts[i]; p.OldID == c.OldParentID {
			return p.Propagation.Shared == parent.Propagation.Shared || p.Propagation.Master == parent.Propagation.Shared
		}
	}
	return false
}
