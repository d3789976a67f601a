package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"os/user"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/taskfiles"
)

// scratch is one worker's reusable buffers.
type scratch struct {
	dents []byte
	file  []byte
	link  []byte
}

func newScratch() *scratch {
	return &scratch{dents: make([]byte, 32<<10), file: make([]byte, 64<<10), link: make([]byte, unix.PathMax)}
}

// statxFlags: answer from the inode cache (a dead FUSE/NFS server is never
// asked, statx(2) AT_STATX_DONT_SYNC) and never trigger an automount.
const statxFlags = unix.AT_STATX_DONT_SYNC | unix.AT_NO_AUTOMOUNT

const pfKthread = 0x00200000 // PF_KTHREAD in /proc/PID/stat flags

// target is what statx of a magic link says about the file behind it.
type target struct {
	mount MountID
	known bool // the mount is in our table
	dev   uint64
	ino   uint64
	nlink uint32
}

// proc is the per-process state of one scan.
type proc struct {
	in      *Inspector
	tbl     *scanTable
	sc      *scratch
	pid     int
	dirfd   int
	res     procResult
	foreign bool     // in another mount namespace: device matches are not exact
	ns      *nsTable // that namespace's table
	// detailed: some use was recorded in full detail
	detailed bool
	lastUses int       // index in res.uses of the mount last added to
	last     lastMount // the mount ID statAtZ resolved last
	job      *job      // what the watchdog sees of this read
	// kernel: the fd tables the task_file iterator saw of this process
	// (kernelTasks); nil: procfs.
	kernel []*taskfiles.Task
	skip   map[read]bool // reads left out: an earlier one is stuck
	// startTicks is the start time in clock ticks (proc(5) stat field
	// 22): with the pid, it names the process across scans.
	startTicks uint64
	// via is the thread whose /proc/PID/task/TID stands for the process
	// when its leader has exited (state Z) while other threads run: the
	// leader's fd table, fs_struct and mm are gone with it (do_exit), so
	// /proc/PID/fd, cwd and maps show nothing, while the threads hold
	// what the process holds. 0 when the leader is alive.
	via int
}

// scanProcess reads one process. j tracks which read is under way, for the
// watchdog; the reads of this process that an earlier scan abandoned and
// that are still out (in.stuck) are left out, with a warning, so that the
// process is reported with what the other reads show.
func (in *Inspector) scanProcess(j *job, tbl *scanTable, sc *scratch) procResult {
	pid := j.pid
	p := &proc{in: in, tbl: tbl, sc: sc, job: j, pid: pid, res: procResult{pid: pid}}
	if stuck := in.stuck.of(pid, 0); len(stuck) > 0 {
		// Stuck before its start time was known: this pid cannot be
		// told from a new process of the same number; leave it.
		p.res.warnings = append(p.res.warnings, stuckWarning(pid, stuck, skipFor(stuck), time.Now()))
		return p.res
	}
	j.reading(readStat, 0)
	fd, err := unix.Open(fmt.Sprintf("%s/%d", in.procRoot, pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if !gone(err) {
			p.warn("opening /proc entry", err)
		}
		return p.res
	}
	p.dirfd = fd
	defer unix.Close(fd)
	if !p.readStat() {
		return p.res
	}
	j.procStart.Store(p.startTicks)
	p.kernel = p.kernelTasks()
	if stuck := in.stuck.of(pid, p.startTicks); len(stuck) > 0 {
		p.skip = skipFor(stuck)
		p.res.warnings = append(p.res.warnings, stuckWarning(pid, stuck, p.skip, time.Now()))
	}
	if p.may(readNS, 0) {
		var nsSt unix.Stat_t
		err = unix.Fstatat(fd, "ns/mnt", &nsSt, 0)
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			tbl.hiddenNS.Store(true)
		}
		if err == nil && tbl.ourNS != 0 && nsSt.Ino != tbl.ourNS {
			p.foreign = true
			if p.may(readMountinfo, 0) {
				p.ns = tbl.namespace(nsSt.Ino, in.procRoot, pid)
				p.res.ns = nsSt.Ino
			}
		}
	}
	if p.res.holder.State == 'Z' && p.may(readTask, 0) {
		if tid, tfd := p.liveThread(); tfd >= 0 {
			defer unix.Close(tfd)
			p.via, p.dirfd = tid, tfd
		}
	}
	p.scanLinks()
	p.scanFDs(p.dirfd, p.via)
	p.scanMaps()
	// Identity (argv, user, cgroup) costs three more reads: only for
	// holders whose uses are shown in detail.
	if p.detailed || p.in.detail == DetailFull && (len(p.res.foreignUses) > 0 || len(p.res.unknown) > 0 || len(p.res.uring) > 0) {
		p.readIdentity()
		p.readCgroup()
	}
	return p.res
}

// may reports whether r may be read (it is not left out because an earlier
// read of this process is stuck) and, if so, tells the watchdog that it is
// read now.
func (p *proc) may(r read, arg int) bool {
	if p.skip[r] {
		return false
	}
	p.job.reading(r, arg)
	return true
}

// liveThread opens /proc/PID/task/TID of a thread other than the leader
// (O_PATH): -1 when there is none.
func (p *proc) liveThread() (tid, fd int) {
	tasks, err := unix.Openat(p.dirfd, "task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, -1
	}
	defer unix.Close(tasks)
	fd = -1
	p.eachEntry(tasks, func(name string) {
		t, err := strconv.Atoi(name)
		if err != nil || t == p.pid || fd >= 0 {
			return
		}
		if f, err := unix.Openat(tasks, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			tid, fd = t, f
		}
	})
	return tid, fd
}

func (p *proc) warn(what string, err error) {
	p.res.warnings = append(p.res.warnings, Warning{PID: p.pid, What: what, Err: err})
}

func (p *proc) add(id MountID, u Use) {
	list := p.usesOf(id)
	if !p.in.wantDetail(id) {
		// Count-only: collapse uses of one kind into one entry.
		for i := range *list {
			if (*list)[i].Kind == u.Kind {
				(*list)[i].Count++
				return
			}
		}
		*list = append(*list, Use{Kind: u.Kind, FD: -1, Count: 1})
		return
	}
	u.Count = 1
	p.detailed = true
	*list = append(*list, u)
}

// usesOf returns the list of uses of mount id in the result, adding it
// if new. Consecutive uses are mostly of one mount (a process's fds on
// its own filesystems, its libraries on /): the last one found is looked
// at first. The pointer is good until the next call.
func (p *proc) usesOf(id MountID) *[]Use {
	us := p.res.uses
	if p.lastUses < len(us) && us[p.lastUses].id == id {
		return &us[p.lastUses].uses
	}
	for i := range us {
		if us[i].id == id {
			p.lastUses = i
			return &us[i].uses
		}
	}
	p.res.uses = append(us, mountUses{id: id})
	p.lastUses = len(p.res.uses) - 1
	return &p.res.uses[p.lastUses].uses
}

// errLeftOut is the error of a read left out because an earlier read of the
// same process is stuck in the kernel.
var errLeftOut = errors.New("left out: an earlier read of this process is stuck")

// readFile reads a small /proc/PID file into the scratch buffer (growing it
// for large maps files).
func (p *proc) readFile(r read, arg int) ([]byte, error) {
	return p.readFileAt(p.dirfd, r, arg)
}

// readFileAt is readFile under dirfd, /proc/PID or /proc/PID/task/TID.
func (p *proc) readFileAt(dirfd int, r read, arg int) ([]byte, error) {
	if !p.may(r, arg) {
		return nil, errLeftOut
	}
	fd, err := unix.Openat(dirfd, r.name(arg), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(p.sc.file) {
			p.sc.file = append(p.sc.file, make([]byte, len(p.sc.file))...)
		}
		m, err := unix.Read(fd, p.sc.file[n:])
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return nil, err
		}
		if m == 0 {
			return p.sc.file[:n], nil
		}
		n += m
	}
}

// readStat parses /proc/PID/stat (proc(5)); false for kernel threads and
// processes that are gone.
func (p *proc) readStat() bool {
	b, err := p.readFile(readStat, 0)
	if err != nil {
		if !gone(err) {
			p.warn("reading stat", err)
		}
		return false
	}
	st, err := parseStat(b)
	if err != nil {
		p.warn("parsing stat", err)
		return false
	}
	if st.flags&pfKthread != 0 {
		return false
	}
	h := &p.res.holder
	h.PID = p.pid
	h.Comm, h.State, h.Threads = st.comm, st.state, st.threads
	p.startTicks = st.start
	h.StartTicks = st.start
	h.Started = p.in.boot.Add(time.Duration(st.start) * time.Second / clockTicks)
	h.UID = -1 // read with the identity, for holders shown in detail
	return true
}

// procStat is what a scan takes from /proc/PID/stat (proc(5)).
type procStat struct {
	comm    string // field 2, without its parentheses
	state   byte   // field 3
	flags   uint64 // field 9 (PF_*)
	threads int    // field 20
	start   uint64 // field 22: start time, clock ticks after boot
}

// parseStat parses /proc/PID/stat. The command name (field 2) is in
// parentheses and is chosen by the process (prctl PR_SET_NAME): it may hold
// spaces, parentheses and newlines, so it runs from the first '(' to the
// last ')', and the fields after it are counted from there.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return procStat{}, errors.New("malformed")
	}
	// The fields after the name, split at whitespace as strings.Fields
	// does for this ASCII text, without making a string of each: field N
	// is f[N-3], and only fields 3 to 22 are wanted.
	var f [20][]byte
	n := 0
	for rest := b[close+1:]; n < len(f); n++ {
		i := 0
		for i < len(rest) && asciiSpace(rest[i]) {
			i++
		}
		j := i
		for j < len(rest) && !asciiSpace(rest[j]) {
			j++
		}
		if i == j {
			break
		}
		f[n], rest = rest[i:j], rest[j:]
	}
	if n < len(f) {
		return procStat{}, errors.New("short")
	}
	st := procStat{comm: string(b[open+1 : close]), state: f[0][0]}
	st.flags, _ = parseUint(f[9-3], 10)
	threads, _ := parseUint(f[20-3], 10)
	st.threads = int(min(threads, 1<<31))
	st.start, _ = parseUint(f[22-3], 10)
	return st, nil
}

// asciiSpace is unicode.IsSpace for the ASCII bytes a stat file holds.
func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// clockTicks is USER_HZ, fixed at 100 on Linux for /proc's clock-tick units.
const clockTicks = 100

// readBootTime reads the boot time (the "btime" line of procRoot/stat,
// proc(5)): the zero time when it cannot be read. Each Inspector reads its
// own /proc's, once, in New: a fixture tree or another pid namespace's
// /proc has its own.
func readBootTime(procRoot string) time.Time {
	b, err := readAll(procRoot + "/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(s, 0)
			}
		}
	}
	return time.Time{}
}

// readIdentity fills in what only holders need: command line and user
// (the owner of /proc/PID is the process's effective uid, proc(5)).
func (p *proc) readIdentity() {
	h := &p.res.holder
	var dir unix.Stat_t
	if err := unix.Fstat(p.dirfd, &dir); err == nil {
		h.UID = int(dir.Uid)
	}
	if b, err := p.readFile(readCmdline, 0); err == nil {
		b = bytes.TrimRight(b, "\x00")
		if len(b) > 0 {
			h.Cmdline = strings.Split(string(b), "\x00")
		}
	}
	h.User = p.in.userName(h.UID)
}

// userName returns the name of uid (user.LookupId: /etc/passwd or NSS),
// or the uid as text; names are kept for the Inspector's life (users), so
// each uid is looked up once however many scans there are.
func (in *Inspector) userName(uid int) string {
	if v, ok := in.users.Load(uid); ok {
		return v.(string)
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	in.users.Store(uid, name)
	return name
}

// statLink statx()es a magic link under /proc/PID (cwd, root, exe, fd/N,
// map_files/A-B) without touching the filesystem behind it.
func (p *proc) statLink(name string) (target, error) {
	return p.statAt(p.dirfd, name)
}

func (p *proc) statAt(dirfd int, name string) (target, error) {
	path, err := unix.BytePtrFromString(name)
	if err != nil {
		return target{}, err
	}
	return p.statAtZ(dirfd, path)
}

// statAtZ is statAt of a NUL-terminated name already in memory (a
// getdents64 entry's d_name is one): the hundreds of thousands of fd links
// of a big machine are statx()ed without a string or a copy each (x/sys's
// Statx copies its path to add the NUL). Consecutive links mostly lie on
// the same mount, so the last mount ID looked up is remembered.
func (p *proc) statAtZ(dirfd int, path *byte) (target, error) {
	var stx unix.Statx_t
	mask := unix.STATX_INO | unix.STATX_NLINK | unix.STATX_MNT_ID_UNIQUE
	if !p.tbl.uniqueOK {
		mask = unix.STATX_INO | unix.STATX_NLINK | unix.STATX_MNT_ID
	}
	_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(path)), statxFlags, uintptr(mask), uintptr(unsafe.Pointer(&stx)), 0)
	if e != 0 {
		return target{}, e
	}
	t := target{dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), ino: stx.Ino, nlink: stx.Nlink}
	if p.last.valid && p.last.id == stx.Mnt_id && p.last.mask == stx.Mask&(unix.STATX_MNT_ID_UNIQUE|unix.STATX_MNT_ID) {
		t.mount, t.known = p.last.mount, p.last.known
		return t, nil
	}
	t.mount, t.known = p.tbl.resolve(stx.Mnt_id, stx.Mask)
	p.last = lastMount{valid: true, id: stx.Mnt_id, mask: stx.Mask & (unix.STATX_MNT_ID_UNIQUE | unix.STATX_MNT_ID), mount: t.mount, known: t.known}
	return t, nil
}

// lastMount is the last mount ID statAtZ resolved (proc.last).
type lastMount struct {
	valid bool
	id    uint64
	mask  uint32
	mount MountID
	known bool
}

// resolve maps the mount ID statx returned to a mount of our table.
func (tbl *scanTable) resolve(id uint64, mask uint32) (MountID, bool) {
	if mask&unix.STATX_MNT_ID_UNIQUE != 0 {
		_, ok := tbl.byID[MountID(id)]
		return MountID(id), ok
	}
	if mask&unix.STATX_MNT_ID != 0 {
		m, ok := tbl.byOld[int(id)]
		return m, ok
	}
	return 0, false
}

func (p *proc) readlink(dirfd int, name string) string {
	n, err := unix.Readlinkat(dirfd, name, p.sc.link)
	if err != nil {
		return ""
	}
	return string(p.sc.link[:n])
}

// scanLinks attributes cwd, root and exe, and per-thread cwd/root where a
// thread's differ from the process's (a thread that unshare(CLONE_FS)ed).
func (p *proc) scanLinks() {
	var cwd, root target
	for _, l := range []struct {
		what read
		kind UseKind
		t    *target
	}{{readCwd, UseCwd, &cwd}, {readRoot, UseRoot, &root}, {readExe, UseExe, nil}} {
		if !p.may(l.what, 0) {
			continue
		}
		t, err := p.statLink(l.what.file())
		if err != nil {
			if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				p.warn("cannot read cwd, root or exe", unix.EACCES)
				return
			}
			continue // gone, or a zombie/kernel thread without one
		}
		if l.t != nil {
			*l.t = t
		}
		p.addLink(p.dirfd, l.what.file(), l.kind, p.via, t)
	}
	if (p.res.holder.Threads > 1 || p.via != 0) && p.may(readTask, 0) {
		p.scanThreads(cwd, root)
	}
}

func (p *proc) addLink(dirfd int, name string, kind UseKind, tid int, t target) {
	u := Use{Kind: kind, FD: -1, TID: tid, Inode: t.ino, Deleted: t.nlink == 0}
	if !t.known {
		p.other(dirfd, name, u, t)
		return
	}
	if p.in.wantDetail(t.mount) {
		u.Path = strings.TrimSuffix(p.readlink(dirfd, name), " (deleted)")
	}
	p.add(t.mount, u)
}

// kcmp(2) types, include/uapi/linux/kcmp.h.
const (
	kcmpFiles = 2 // KCMP_FILES: the fd table
	kcmpFS    = 3 // KCMP_FS: cwd and root
)

// sameAs reports whether kcmp(2) says threads a and b share the resource
// of type kind; any error counts as not shared (look).
func sameAs(a, b, kind int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), uintptr(kind), 0, 0, 0)
	return errno == 0 && r == 0
}

// scanThreads reads what a thread holds beside the process: its cwd and
// root where it did unshare(CLONE_FS), and its fd table where it did
// unshare(CLONE_FILES) (unshare(2)): such a table is only in
// /proc/PID/task/TID/fd, and its uses carry the thread's id. Threads are
// compared with the thread that stands for the process (the leader, or
// via) and with the tables already read, by kcmp(2), so a table shared
// by several threads is read once.
func (p *proc) scanThreads(cwd, root target) {
	tasks, err := unix.Openat(p.dirfd, "task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if p.via != 0 {
		// p.dirfd is the thread's own directory, which has no task/.
		tasks, err = unix.Openat(p.dirfd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return
	}
	defer unix.Close(tasks)
	ref := p.pid
	if p.via != 0 {
		ref = p.via
	}
	tables := []int{ref}
	// The names first: scanFDs below reuses the worker's getdents buffer.
	var names []string
	p.eachEntry(tasks, func(name string) { names = append(names, name) })
	for _, name := range names {
		p.scanThread(tasks, name, ref, cwd, root, &tables)
	}
}

// scanThread is scanThreads for the thread name in /proc/PID/task
// (tasks); tables lists the threads whose fd table was read.
func (p *proc) scanThread(tasks int, name string, ref int, cwd, root target, tables *[]int) {
	{
		tid, err := strconv.Atoi(name)
		if err != nil || tid == p.pid || tid == p.via {
			return
		}
		p.job.reading(readTask, tid)
		// Threads share the process's fs_struct (cwd and root) unless one
		// did unshare(CLONE_FS): kcmp(2) KCMP_FS says so in one call,
		// where looking costs two statx.
		if !sameAs(ref, tid, kcmpFS) {
			for _, l := range []struct {
				name string
				kind UseKind
				proc target
			}{{name + "/cwd", UseCwd, cwd}, {name + "/root", UseRoot, root}} {
				t, err := p.statAt(tasks, l.name)
				if err != nil || (t.mount == l.proc.mount && t.ino == l.proc.ino && t.dev == l.proc.dev) {
					continue
				}
				p.addLink(tasks, l.name, l.kind, tid, t)
			}
		}
		if p.sharesTable(tid, *tables) {
			return
		}
		*tables = append(*tables, tid)
		dir, err := unix.Openat(tasks, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer unix.Close(dir)
		p.scanFDs(dir, tid)
	}
}

// eachEntry calls fn for each name in an open directory (getdents64), with
// the worker's buffer: no allocation per entry beyond the name.
func (p *proc) eachEntry(dirfd int, fn func(name string)) {
	p.eachEntryZ(dirfd, func(name []byte) { fn(string(name)) })
}

// eachEntryZ is eachEntry without the string: name is the entry's d_name
// in the worker's getdents buffer, NUL-terminated (name[:len(name)+1]
// ends in the NUL), valid only during the call, and fn must not read
// another directory (the buffer is the worker's).
func (p *proc) eachEntryZ(dirfd int, fn func(name []byte)) {
	for {
		n, err := unix.Getdents(dirfd, p.sc.dents)
		if err != nil || n <= 0 {
			return
		}
		buf := p.sc.dents[:n]
		for len(buf) > 0 {
			reclen := int(buf[16]) | int(buf[17])<<8
			name := buf[19:reclen]
			i := bytes.IndexByte(name, 0)
			if i < 0 {
				// Never from the kernel (d_name is NUL-terminated
				// within d_reclen); skipped rather than trusted.
				buf = buf[reclen:]
				continue
			}
			name = name[:i]
			if len(name) > 0 && name[0] != '.' {
				fn(name)
			}
			buf = buf[reclen:]
		}
	}
}

// atoiBytes parses a decimal fd number (a /proc/PID/fd entry) without a
// string; ok is false for anything else.
func atoiBytes(b []byte) (n int, ok bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// scanFDs attributes each open fd by statx of /proc/PID/fd/N (mount ID,
// device, inode); for fds on a mount in focus it adds the path (readlink)
// and the access mode, which the kernel shows as the magic link's own
// permission bits (proc(5): S_IRUSR for read, S_IWUSR for write).
// dir is /proc/PID, or /proc/PID/task/TID for the fd table of thread tid
// (0 for the process's own), whose uses then carry tid. Where the
// task_file iterator saw this table, its files are used instead of the
// statx of each link (useKernelFiles): the same uses, a fraction of the
// cost.
func (p *proc) scanFDs(dir, tid int) {
	if !p.may(readFD, -1) {
		return
	}
	if t := p.kernelTask(tid); t != nil {
		p.useKernelFiles(dir, tid, t)
		return
	}
	fdDir, err := unix.Openat(dir, "fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			p.warn("cannot read open files", unix.EACCES)
		}
		return
	}
	defer unix.Close(fdDir)
	fds := lazyDir{fd: fdDir, opened: true}
	p.eachEntryZ(fdDir, func(nameZ []byte) {
		fd, ok := atoiBytes(nameZ)
		if !ok {
			return
		}
		p.job.reading(readFD, fd)
		t, err := p.statAtZ(fdDir, &nameZ[:len(nameZ)+1][0])
		if err != nil {
			if gone(err) {
				return
			}
			// FUSE refuses getattr to other users (no allow_other):
			// fdinfo's mnt_id attributes the fd without asking it.
			if t, err = p.fdinfoTarget(dir, fd); err != nil {
				return
			}
		}
		p.useFD(dir, &fds, fd, tid, t, AccessUnknown)
	})
}

// useFD records fd (open on target t) as a use of its mount: in detail,
// with its path and access mode, where the mount is shown in detail; an
// io_uring's registered files; a file on a mount in another namespace's
// table or in none (p.other). acc is the access mode where the caller
// knows it (the iterator's f_mode), else AccessUnknown: it is read from
// the link's permission bits, and only for a use shown in detail.
func (p *proc) useFD(dir int, fds *lazyDir, fd, tid int, t target, acc Access) {
	if !t.known {
		if t.dev == p.tbl.anon && p.tbl.anon != 0 {
			if fdDir, ok := fds.get(); ok {
				p.ioUring(dir, fdDir, strconv.Itoa(fd), fd)
			}
			return
		}
		if p.tbl.internal[t.dev] && (p.ns == nil || !p.ns.byDev[t.dev]) {
			return // a pipe, a socket: p.other would keep none of these
		}
		if fdDir, ok := fds.get(); ok {
			p.other(fdDir, strconv.Itoa(fd), Use{Kind: UseFD, FD: fd, TID: tid, Inode: t.ino, Deleted: t.nlink == 0}, t)
		}
		return
	}
	u := Use{Kind: UseFD, FD: fd, TID: tid, Inode: t.ino, Deleted: t.nlink == 0}
	if p.in.wantDetail(t.mount) {
		u.Access = acc
		if fdDir, ok := fds.get(); ok {
			// The name as a string only here and for the rare kinds above.
			name := strconv.Itoa(fd)
			u.Path = strings.TrimSuffix(p.readlink(fdDir, name), " (deleted)")
			var st unix.Stat_t
			if acc == AccessUnknown && unix.Fstatat(fdDir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				switch st.Mode & (unix.S_IRUSR | unix.S_IWUSR) {
				case unix.S_IRUSR:
					u.Access = AccessRead
				case unix.S_IWUSR:
					u.Access = AccessWrite
				case unix.S_IRUSR | unix.S_IWUSR:
					u.Access = AccessReadWrite
				}
			}
		}
	}
	p.add(t.mount, u)
	if p.tbl.locks[devIno{t.dev, t.ino}] {
		p.addLocks(dir, fd, tid, t.mount, u.Path)
	}
}

// lazyDir is a directory under parent (an fd directory) opened at its
// first use and closed by whoever opened it.
type lazyDir struct {
	parent int
	name   string
	fd     int
	opened bool // fd is open (or was given open)
	failed bool
	own    bool // close() closes fd
}

func (d *lazyDir) get() (int, bool) {
	if d.opened {
		return d.fd, true
	}
	if d.failed {
		return -1, false
	}
	fd, err := unix.Openat(d.parent, d.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		d.failed = true
		return -1, false
	}
	d.fd, d.opened, d.own = fd, true, true
	return fd, true
}

func (d *lazyDir) close() {
	if d.own {
		unix.Close(d.fd)
		d.own, d.opened = false, false
	}
}

// fdinfoTarget reads mnt_id and ino from /proc/PID/fdinfo/N, which never
// touches the file.
func (p *proc) fdinfoTarget(dir, fd int) (target, error) {
	b, err := p.readFileAt(dir, readFDInfo, fd)
	if err != nil {
		return target{}, err
	}
	fi := parseFDInfo(b)
	t := target{ino: fi.ino, nlink: 1}
	t.mount, t.known = p.tbl.byOld[fi.mntID]
	return t, nil
}

// fdInfo is what a scan takes from /proc/PID/fdinfo/N (proc(5)).
type fdInfo struct {
	mntID int    // "mnt_id:", the reusable mount ID
	ino   uint64 // "ino:"
	flags uint64 // "flags:", octal (ParseFDInfo)
	locks []Lock // "lock:" lines, the locks this open file holds for the process
}

// parseFDInfo parses the "key:\tvalue" lines of an fdinfo file; other
// lines (an io_uring's or an epoll's own sections) are skipped.
func parseFDInfo(b []byte) fdInfo {
	var fi fdInfo
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "mnt_id":
			fi.mntID, _ = strconv.Atoi(strings.TrimSpace(v))
		case "ino":
			fi.ino, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		case "flags":
			fi.flags, _ = strconv.ParseUint(strings.TrimSpace(v), 8, 64)
		case "lock":
			if l, ok := parseLockLine(v); ok {
				fi.locks = append(fi.locks, l)
			}
		}
	}
	return fi
}

// addLocks reads the "lock:" lines of /proc/PID/fdinfo/N (proc(5)): the
// kernel lists exactly the locks this open file holds for this process
// (POSIX locks owned by its file table, flock and OFD locks of this open
// file description), so attribution is exact where /proc/locks' pid is not
// (OFD locks show pid -1 there, and an inherited flock shows its creator).
func (p *proc) addLocks(dir, fd, tid int, id MountID, path string) {
	b, err := p.readFileAt(dir, readFDInfo, fd)
	if err != nil {
		return
	}
	for _, l := range parseFDInfo(b).locks {
		p.add(id, Use{Kind: UseLock, FD: fd, TID: tid, Path: path, Lock: &l})
	}
}

// ioUring reads the registered files of an io_uring instance from its
// fdinfo ("UserFiles:" then "   N: PATH" lines, io_uring/fdinfo.c): the
// ring holds those files, and so their mounts, for as long as it lives,
// with no fd of their own to show.
func (p *proc) ioUring(dir, fdDir int, name string, fd int) {
	if p.readlink(fdDir, name) != "anon_inode:[io_uring]" {
		return
	}
	b, err := p.readFileAt(dir, readFDInfo, fd)
	if err != nil {
		return
	}
	for _, f := range parseUserFiles(b) {
		p.res.uring = append(p.res.uring, KernelHolder{Kind: KernelIOURing, FD: fd, Index: f.index,
			Path: f.path, PID: p.pid})
	}
}

// userFile is one registered file of an io_uring instance.
type userFile struct {
	index int
	path  string
}

// parseUserFiles reads the "UserFiles:" section of an io_uring fdinfo
// (io_uring/fdinfo.c: "%5u: " then seq_file_path with " \t\n\\" escaped,
// one line per file; an index of five digits or more is not indented),
// which ends at the next line that is neither indented nor such a line.
func parseUserFiles(b []byte) []userFile {
	var out []userFile
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "UserFiles:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		num, path, ok := strings.Cut(strings.TrimLeft(line, " "), ": ")
		index, err := strconv.Atoi(num)
		if !ok || err != nil || index < 0 || num[0] < '0' || num[0] > '9' {
			in = strings.HasPrefix(line, " ")
			continue
		}
		out = append(out, userFile{index: index, path: UnescapeSeqPath(path)})
	}
	return out
}

// UnescapeSeqPath undoes the octal escapes (\040 for a space) that
// seq_file_path and mountinfo (proc(5)) put in the names they write.
func UnescapeSeqPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
