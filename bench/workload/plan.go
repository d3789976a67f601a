// Package workload builds the benchmark's busy machine: inside a private
// mount namespace it mounts M tmpfs file systems and starts P holder
// processes that together hold F open fds on them, plus current
// directories, memory mappings, file locks (flock, POSIX and OFD) and
// executables, in fixed proportions. Everything it makes is torn down
// exactly: each holder is killed by pid and reaped, each mount unmounted
// and checked gone.
//
// The holders are re-executions of the calling binary in a holder role
// (RunHolderIfAsked must be the first thing its main or TestMain does), so
// no other program or language is needed. What each holder holds is a pure
// function of its index (PlanFor), so the benchmark knows the exact answer
// a scanner must give for any mount.
package workload

import (
	"fmt"
	"path/filepath"
)

// Size is one benchmark workload: Procs holder processes holding FDs open
// fds in total, spread over Mounts tmpfs mounts, made of holders of one
// Shape.
type Size struct {
	Name   string
	Procs  int
	FDs    int
	Mounts int
	Shape  Shape
}

// Shape is what kind of processes the holders are.
type Shape int

const (
	// Uniform: every holder is the generator binary in its holder role
	// (issue 2's benchmark).
	Uniform Shape = iota
	// Mixed: a machine's mix (issue 12): a quarter of the holders exec
	// sleep and a quarter bash after taking their fds, cwds and locks
	// (which survive execve(2)); one in 20 execs python3, which imports
	// modules with shared libraries on / and maps every map file of its
	// home mount; one in 8 chroots into its home mount; the rest stay
	// the Go holder (mappings, executables on mount 0).
	Mixed
	// Thin: every holder is /bin/sleep started directly by the
	// generator with its few fds handed over (ExtraFiles) and one in 4
	// with its cwd on its home mount: very many small processes.
	Thin
)

func (s Shape) String() string { return [...]string{"uniform", "mixed", "thin"}[s] }

// The sizes. small and large are issue 2's (Uniform); the others are
// issue 12's three shapes at half and full size, so that growth can be
// read off: mixed (2,000 processes / 200,000 fds / 50 mounts), fat (10
// processes x 19,000 fds) and thin (20,000 processes x 5 fds).
var (
	Small     = Size{Name: "small", Procs: 500, FDs: 50_000, Mounts: 20}
	Large     = Size{Name: "large", Procs: 2_000, FDs: 200_000, Mounts: 50}
	MixedHalf = Size{Name: "mixed-half", Procs: 1_000, FDs: 100_000, Mounts: 50, Shape: Mixed}
	MixedFull = Size{Name: "mixed", Procs: 2_000, FDs: 200_000, Mounts: 50, Shape: Mixed}
	FatHalf   = Size{Name: "fat-half", Procs: 10, FDs: 95_000, Mounts: 10}
	FatFull   = Size{Name: "fat", Procs: 10, FDs: 190_000, Mounts: 10}
	ThinHalf  = Size{Name: "thin-half", Procs: 10_000, FDs: 50_000, Mounts: 50, Shape: Thin}
	ThinFull  = Size{Name: "thin", Procs: 20_000, FDs: 100_000, Mounts: 50, Shape: Thin}
)

// Sizes lists the named sizes, smallest first within each shape.
var Sizes = []Size{Small, Large, MixedHalf, MixedFull, FatHalf, FatFull, ThinHalf, ThinFull}

// SizeByName finds a size by its name.
func SizeByName(name string) (Size, bool) {
	for _, s := range Sizes {
		if s.Name == name {
			return s, true
		}
	}
	return Size{}, false
}

func (s Size) String() string {
	return fmt.Sprintf("%s: %d %s processes, %d fds, %d mounts", s.Name, s.Procs, s.Shape, s.FDs, s.Mounts)
}

// Proportions of the workload. A holder's fds lie on its home mount and the
// next ones (span), so each mount has about span*Procs/Mounts holders
// rather than all of them; the other kinds of use are rarer than fds, as on
// a real machine.
const (
	span          = 3   // mounts each holder's fds are spread over
	filesPerMount = 200 // regular files f000..f199 on each mount
	mapFiles      = 16  // one-page files map/00..map/15 on each mount
	dirEvery      = 20  // one fd in 20 is a directory fd
	cwdEvery      = 4   // one holder in 4 has its cwd on its home mount
	mmapEvery     = 5   // one holder in 5 maps a file of its home mount
	lockEvery     = 10  // one holder in 10 holds a lock (flock, POSIX, OFD in turn)
	deletedEvery  = 50  // one holder in 50 holds an fd on a deleted file
	exeEvery      = 100 // one holder in 100 runs from a copy of the binary on mount 0
	pythonEvery   = 20  // Mixed: one holder in 20 is python3
	chrootEvery   = 8   // Mixed: one holder in 8 chroots into its home mount
)

// Role is the program a holder runs once it holds its fds.
type Role int

// Roles (Mixed and Thin shapes; Uniform holders are all RoleGo).
const (
	RoleGo     Role = iota // the generator binary, idle in pause(2)
	RoleSleep              // execs /bin/sleep infinity
	RoleBash               // execs bash, blocked in read on a pipe of its own
	RolePython             // execs python3 (or, without one, the Go holder maps the files itself)
)

// Comm is the command name (/proc/PID/comm) the role's process shows
// once it runs, "" for RoleGo and RolePython (which report ready
// themselves).
func (r Role) Comm() string { return [...]string{"", "sleep", "bash", ""}[r] }

// LockKind is the kind of file lock a holder takes.
type LockKind int

// Lock kinds (fcntl(2), flock(2)).
const (
	NoLock LockKind = iota
	Flock
	POSIX
	OFD
)

func (k LockKind) String() string {
	return [...]string{"none", "flock", "posix", "ofd"}[k]
}

// Open is one fd a holder opens.
type Open struct {
	Mount int    // mount index
	Name  string // path within the mount
	Flags int    // O_RDONLY, O_WRONLY, O_RDWR, maybe O_DIRECTORY
}

// Plan is everything one holder holds. Paths are relative to the mount
// directories; Layout turns them into absolute ones.
type Plan struct {
	Index   int
	Home    int    // the mount most of its uses are on
	Opens   []Open // fds, in order (lock and deleted fds not included)
	Cwd     string // directory on Home to chdir into, or ""
	Mmap    string // file on Home to map (the fd is closed after), or ""
	Lock    LockKind
	Deleted bool // holds an fd on a file of Home it has unlinked
	Exe     bool // runs from the copy of the binary on mount 0
	Role    Role
	Maps    []string // RolePython: files on Home it maps (fds closed after)
	Chroot  string   // directory on Home to chroot into, or ""
}

// fdCount is how many fds holder i holds in all (F/P, the remainder going
// to the first holders).
func (s Size) fdCount(i int) int {
	n := s.FDs / s.Procs
	if i < s.FDs%s.Procs {
		n++
	}
	return n
}

// Open flags by fd number: half read-only, a quarter write-only, a quarter
// read-write, one in dirEvery a directory.
const (
	oRDONLY    = 0x0
	oWRONLY    = 0x1
	oRDWR      = 0x2
	oDIRECTORY = 0x10000
)

// PlanFor returns what holder i of size s holds: a pure function, so the
// generator and the holder agree without talking, and the expected answer
// for any mount can be computed (Expected).
func PlanFor(s Size, i int) Plan {
	p := Plan{Index: i, Home: i % s.Mounts}
	n := s.fdCount(i)
	if s.Shape == Thin {
		p.Role = RoleSleep
		p.Opens = opens(s, i, p.Home, n)
		if i%cwdEvery == 0 {
			p.Cwd = "dir/sub"
		}
		return p
	}
	if s.Shape == Mixed {
		switch {
		case i%pythonEvery == 7:
			p.Role = RolePython
		case i%4 == 1:
			p.Role = RoleSleep
		case i%4 == 3:
			p.Role = RoleBash
		}
	}
	if i%lockEvery == 0 {
		p.Lock = LockKind(1 + (i/lockEvery)%3)
		n--
	}
	if i%deletedEvery == 1 {
		p.Deleted = true
		n--
	}
	p.Opens = opens(s, i, p.Home, n)
	if i%cwdEvery == 0 {
		p.Cwd = "dir/sub"
	}
	switch p.Role {
	case RoleGo:
		if i%mmapEvery == 0 {
			p.Mmap = fmt.Sprintf("map/%02d", i%mapFiles)
		}
		p.Exe = i%exeEvery == 0
		if s.Shape == Mixed && i%chrootEvery == 2 {
			p.Chroot = "dir"
		}
	case RolePython:
		for f := 0; f < mapFiles; f++ {
			p.Maps = append(p.Maps, fmt.Sprintf("map/%02d", f))
		}
	}
	return p
}

// opens is holder i's n fds, over its home mount and the next span-1.
func opens(s Size, i, home, n int) []Open {
	out := make([]Open, 0, n)
	for k := 0; k < n; k++ {
		o := Open{Mount: (home + k%span) % s.Mounts}
		switch {
		case k%dirEvery == dirEvery-1:
			o.Name, o.Flags = "dir", oRDONLY|oDIRECTORY
		default:
			o.Name = fmt.Sprintf("f%03d", (i*31+k*7)%filesPerMount)
			o.Flags = [...]int{oRDONLY, oRDONLY, oWRONLY, oRDWR}[k%4]
		}
		out = append(out, o)
	}
	return out
}

// Mounts returns the mounts holder i uses in any way.
func (p Plan) Mounts() map[int]bool {
	m := map[int]bool{p.Home: true}
	for _, o := range p.Opens {
		m[o.Mount] = true
	}
	if p.Exe {
		m[0] = true
	}
	return m
}

// FDs is how many fds the holder keeps open on the mounts.
func (p Plan) FDs() int {
	n := len(p.Opens)
	if p.Lock != NoLock {
		n++
	}
	if p.Deleted {
		n++
	}
	return n
}

// Expected returns the indexes of the holders that use mount m: what a
// correct scanner reports for it.
func Expected(s Size, m int) []int {
	var out []int
	for i := 0; i < s.Procs; i++ {
		if PlanFor(s, i).Mounts()[m] {
			out = append(out, i)
		}
	}
	return out
}

// Layout is where a workload's mounts live.
type Layout struct {
	Base string // a tmpfs holding the mount directories
}

// Mount returns the directory of mount m.
func (l Layout) Mount(m int) string { return filepath.Join(l.Base, fmt.Sprintf("m%02d", m)) }

// Path returns the absolute path of name on mount m.
func (l Layout) Path(m int, name string) string { return filepath.Join(l.Mount(m), name) }

// Exe is the copy of the binary on mount 0 that some holders run from.
func (l Layout) Exe() string { return l.Path(0, "holder.exe") }
