package inspect

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// nsTable is another mount namespace's table, read once per scan from the
// first of its processes met (/proc/PID/mountinfo, proc(5)). Mounts there
// are keyed by their reusable ID: mount IDs come from one system-wide
// allocator, so within one scan an ID names one mount.
type nsTable struct {
	once   sync.Once
	ino    uint64
	mounts []Mount
	byOld  map[int]int
	byDev  map[uint64]bool
	err    error
}

func (tbl *scanTable) namespace(ino uint64, procRoot string, pid int) *nsTable {
	v, _ := tbl.foreign.LoadOrStore(ino, &nsTable{ino: ino})
	ns := v.(*nsTable)
	ns.once.Do(func() {
		f, err := os.Open(procRoot + "/" + itoa(pid) + "/mountinfo")
		if err != nil {
			ns.err = err
			return
		}
		defer f.Close()
		infos, err := mountinfo.GetMountsFromReader(f, nil)
		if err != nil {
			ns.err = err
			return
		}
		ns.byOld = map[int]int{}
		ns.byDev = map[uint64]bool{}
		for _, info := range infos {
			m := Mount{OldID: info.ID, OldParentID: info.Parent, Major: info.Major, Minor: info.Minor,
				Root: info.Root, Mountpoint: info.Mountpoint, FSType: info.FSType, Source: info.Source,
				Options: info.Options, SuperOptions: info.VFSOptions, Propagation: parsePropagation(info.Optional)}
			m.ID = standIn(&m)
			ns.byOld[m.OldID] = len(ns.mounts)
			ns.byDev[unix.Mkdev(uint32(m.Major), uint32(m.Minor))] = true
			ns.mounts = append(ns.mounts, m)
		}
	})
	return ns
}

// probeInternalDevices learns the devices of the kernel's internal
// filesystems (pipefs, sockfs, anon_inodefs, the shmem mount behind memfd,
// nsfs, pidfs) by making one object of each: an fd on them is never a
// detached mount.
func probeInternalDevices() (internal map[uint64]bool, anon uint64) {
	internal = map[uint64]bool{}
	add := func(fd int, err error) uint64 {
		if err != nil {
			return 0
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			return 0
		}
		internal[st.Dev] = true
		return st.Dev
	}
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC) == nil {
		add(p[0], nil)
		unix.Close(p[1])
	}
	add(unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0))
	anon = add(unix.Eventfd(0, unix.EFD_CLOEXEC))
	add(unix.MemfdCreate("mounttop-probe", unix.MFD_CLOEXEC))
	add(unix.Open("/proc/self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0))
	add(unix.PidfdOpen(os.Getpid(), 0))
	return internal, anon
}

// internalPath reports paths the kernel gives files of internal mounts.
func internalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return true // pipe:[N], socket:[N], anon_inode:[...]
	}
	for _, prefix := range []string{"/memfd:", "/SYSV", "/[aio]", "/dmabuf:", "/secretmem", "/dev/zero"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// unknownMount collects uses of a mount in no table we read: a detached
// (lazily unmounted) mount, until proven otherwise.
type unknownMount struct {
	dev  uint64
	old  int // reusable ID, to find it in another namespace's table
	uses []Use
}

// other attributes a use whose mount is not in our table: to the copy in
// the process's own namespace (by its reusable ID), or to an unknown mount
// (detached). dirfd/name is the magic link.
func (p *proc) other(dirfd int, name string, u Use, t target) {
	if p.ns != nil && p.ns.byDev[t.dev] {
		// A count-only scan (list) shows copies in other namespaces by
		// their tables alone: their holders, and the second statx, are
		// not needed.
		if p.in.detail == DetailCounts && p.in.focus == nil {
			return
		}
		var stx unix.Statx_t
		if unix.Statx(dirfd, name, statxFlags, unix.STATX_MNT_ID, &stx) == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
			if _, ok := p.ns.byOld[int(stx.Mnt_id)]; ok {
				if u.Path == "" {
					u.Path = strings.TrimSuffix(p.readlink(dirfd, name), " (deleted)")
				}
				if p.res.foreignUses == nil {
					p.res.foreignUses = map[int][]Use{}
				}
				p.res.foreignUses[int(stx.Mnt_id)] = append(p.res.foreignUses[int(stx.Mnt_id)], u)
				return
			}
		}
	}
	if p.tbl.internal[t.dev] || !p.tbl.uniqueOK || t.mount == 0 {
		return
	}
	if u.Path == "" {
		u.Path = p.readlink(dirfd, name)
	}
	if internalPath(u.Path) {
		return
	}
	u.Path = strings.TrimSuffix(u.Path, " (deleted)")
	if p.res.unknown == nil {
		p.res.unknown = map[MountID]*unknownMount{}
	}
	um := p.res.unknown[t.mount]
	if um == nil {
		um = &unknownMount{dev: t.dev}
		var stx unix.Statx_t
		if unix.Statx(dirfd, name, statxFlags, unix.STATX_MNT_ID, &stx) == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
			um.old = int(stx.Mnt_id)
		}
		p.res.unknown[t.mount] = um
	}
	um.uses = append(um.uses, u)
}

// nameNamespaces tells which mount namespace is the host's: the initial
// one, which pid 1 lives in (/proc/1/ns/mnt, namespaces(7)), as far as
// this /proc shows it (in a container with its own /proc, pid 1 is the
// container's init).
//
// The ns link needs ptrace read access to pid 1 (proc(5)), which a
// security module can deny even to root while /proc/1/mountinfo stays
// readable: then the namespace is found by the ID of pid 1's root mount,
// since a mount ID names one mount, in one namespace, system-wide, while
// that mount lives. Otherwise the answer is unknown (HostNS 0).
func (in *Inspector) nameNamespaces(s *Snapshot) {
	var st unix.Stat_t
	if unix.Stat(in.procRoot+"/self/ns/mnt", &st) == nil {
		s.MountNS = st.Ino
	}
	if unix.Stat(in.procRoot+"/1/ns/mnt", &st) == nil {
		s.HostNS = st.Ino
	} else if root, ok := rootMountID(in.procRoot + "/1/mountinfo"); ok {
		for i := range s.Mounts {
			if m := &s.Mounts[i]; m.OldID == root && !m.Detached {
				s.HostNS = s.MountNS
			}
		}
		for i := range s.Namespaces {
			for _, m := range s.Namespaces[i].Mounts {
				if m.OldID == root {
					s.HostNS = s.Namespaces[i].Inode
				}
			}
		}
	}
	for i := range s.Namespaces {
		s.Namespaces[i].Host = s.HostNS != 0 && s.Namespaces[i].Inode == s.HostNS
	}
}

// rootMountID is the mount ID of the first line of a mountinfo file: the
// root of that process's namespace as it sees it (proc(5)).
func rootMountID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	id, _, _ := strings.Cut(line, " ")
	n, err := strconv.Atoi(id)
	return n, err == nil && n > 0
}

// IsHost says whether mount namespace ino is the host's (pid 1's), and
// whether that could be told at all.
func (s *Snapshot) IsHost(ino uint64) (host, known bool) {
	return s.HostNS != 0 && ino == s.HostNS, s.HostNS != 0 && ino != 0
}

// unreadableAdvice is what would let the scan read the mount namespaces it
// could not: as an ordinary user, root; as root inside a user namespace
// (uid_map not the whole range), the initial user namespace, since a user
// namespace may not look at its parent's processes' namespaces
// (ptrace_may_access, user_namespaces(7)).
func unreadableAdvice() Advice {
	if os.Geteuid() != 0 {
		return AdviceRoot
	}
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil && len(strings.Fields(string(b))) == 3 &&
		strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295" {
		return AdviceSecurityModule
	}
	return AdviceInitialUserNS
}

var containerID = regexp.MustCompile(`[0-9a-f]{64}`)

// readCgroup fills the holder's cgroup, systemd unit and container ID from
// /proc/PID/cgroup (cgroups(7)): the v2 line "0::PATH", else the v1 line
// of the systemd hierarchy.
func (p *proc) readCgroup() {
	b, err := p.readFile(readCgroup, 0)
	if err != nil {
		return
	}
	h := &p.res.holder
	h.Cgroup = parseCgroup(b)
	h.Unit, h.Container = unitOf(h.Cgroup)
}

// parseCgroup returns the process's cgroup from /proc/PID/cgroup
// ("ID:CONTROLLERS:PATH" lines, cgroups(7)): the v2 line "0::PATH", else
// the path in the v1 hierarchy named systemd.
func parseCgroup(b []byte) string {
	var path string
	for _, line := range bytes.Split(b, []byte("\n")) {
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			return parts[2]
		}
		if parts[1] == "name=systemd" {
			path = parts[2]
		}
	}
	return path
}

// unitOf finds the innermost systemd unit (service, scope, socket, mount,
// swap) and a container ID in a cgroup path.
func unitOf(path string) (unit, container string) {
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		c := parts[i]
		if unit == "" {
			for _, suf := range []string{".service", ".scope", ".socket", ".mount", ".swap"} {
				if strings.HasSuffix(c, suf) {
					unit = c
				}
			}
		}
		if container == "" {
			container = containerID.FindString(c)
		}
	}
	return unit, container
}
