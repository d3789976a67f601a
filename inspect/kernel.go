package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sysRoot is where sysfs is read from; a field would be needed only for
// fixture tests of these readers, which take their input as text instead.
const sysRoot = "/sys"

// kernelHolders finds what pins a mount without being a process's use
// (DESIGN.md "Holders /proc does not show per process"): loop devices
// backed by a file on it, swap files on it, nfsd exports of it,
// binfmt_misc interpreters opened at registration (flag F), the block
// device's holders (device-mapper, md), submounts and over-mounts, and
// stacking filesystems (overlays) with a layer on it, in any namespace read.
func (in *Inspector) kernelHolders(s *Snapshot) {
	s.stackingHolders()
	for _, k := range loopHolders(s) {
		s.addKernel(k.id, k.KernelHolder)
	}
	if b, err := os.ReadFile(in.procRoot + "/swaps"); err == nil {
		for _, f := range parseSwaps(string(b)) {
			if m, ok := s.MountContaining(f); ok {
				k := KernelHolder{Kind: KernelSwap, Name: f, Path: f}
				k.Dev, k.Ino = swapFileID(f)
				s.addKernel(m.ID, k)
			}
		}
	}
	if b, err := os.ReadFile(in.procRoot + "/fs/nfsd/exports"); err == nil {
		for _, e := range parseExports(string(b)) {
			if m, ok := s.MountContaining(e); ok {
				s.addKernel(m.ID, KernelHolder{Kind: KernelNFSExport, Name: e, Path: e})
			}
		}
	}
	dir := in.procRoot + "/sys/fs/binfmt_misc"
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if e.Name() == "register" || e.Name() == "status" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			if interp, ok := binfmtFixed(string(b)); ok {
				if m, ok := s.MountContaining(interp); ok {
					s.addKernel(m.ID, KernelHolder{Kind: KernelBinfmt, Name: e.Name(), Path: interp,
						Entry: filepath.Join(dir, e.Name())})
				}
			}
		}
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Detached {
			continue
		}
		if m.Major != 0 {
			hdir := fmt.Sprintf("%s/dev/block/%d:%d/holders", sysRoot, m.Major, m.Minor)
			if ents, err := os.ReadDir(hdir); err == nil {
				for _, e := range ents {
					s.addKernel(m.ID, KernelHolder{Kind: KernelBlockHolder, Name: e.Name()})
				}
			}
		}
		for _, c := range m.Children {
			cm, ok := s.Mount(c)
			if !ok || c == m.ID {
				continue
			}
			kind := KernelSubmount
			if cm.Mountpoint == m.Mountpoint {
				kind = KernelOverMount
			}
			s.addKernel(m.ID, KernelHolder{Kind: kind, Name: cm.Mountpoint, Path: cm.Mountpoint})
		}
	}
}

type loopHolder struct {
	KernelHolder
	id MountID
}

// loopHolders reads /sys/block/loop*/loop/backing_file and attributes each
// loop device to the mount its backing file lies on. The backing file's
// device (LOOP_GET_STATUS64, loop(4)) picks among mounts when the path is
// ambiguous. MountedAt names where the loop device itself is mounted, if it
// is: then it is unmounted before it can be detached.
func loopHolders(s *Snapshot) []loopHolder {
	var out []loopHolder
	ents, _ := filepath.Glob(sysRoot + "/block/loop*/loop/backing_file")
	for _, bf := range ents {
		b, err := os.ReadFile(bf)
		if err != nil {
			continue
		}
		path := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), " (deleted)")
		name := filepath.Base(filepath.Dir(filepath.Dir(bf)))
		dev := "/dev/" + name
		m, ok := s.MountContaining(path)
		if !ok {
			continue
		}
		var backDev, backIno uint64
		if fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
			if st, err := unix.IoctlLoopGetStatus64(fd); err == nil {
				backDev, backIno = st.Device, st.Inode
				maj, min := int(unix.Major(st.Device)), int(unix.Minor(st.Device))
				if m.Major != maj || m.Minor != min {
					for i := range s.Mounts {
						if o := &s.Mounts[i]; o.Major == maj && o.Minor == min {
							m = o
							break
						}
					}
				}
			}
			unix.Close(fd)
		}
		var mountedAt string
		var lst unix.Stat_t
		if unix.Stat(dev, &lst) == nil {
			for _, o := range s.Mounts {
				if o.Major == int(unix.Major(lst.Rdev)) && o.Minor == int(unix.Minor(lst.Rdev)) {
					mountedAt = o.Mountpoint
					break
				}
			}
		}
		out = append(out, loopHolder{KernelHolder{Kind: KernelLoop, Name: dev, Path: path, MountedAt: mountedAt, Dev: backDev, Ino: backIno}, m.ID})
	}
	return out
}

// swapFileID is the device and inode of the swap file at p (0, 0 if it
// cannot be told): statx without following a last link, answered from the
// cache (AT_STATX_DONT_SYNC; the swap file is held open by the kernel, so
// its dentries are cached) and triggering no automount.
func swapFileID(p string) (dev, ino uint64) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT|unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &stx); err != nil {
		return 0, 0
	}
	return unix.Mkdev(stx.Dev_major, stx.Dev_minor), stx.Ino
}

// seqFields splits a line of a seq_file table into its fields at spaces
// and tabs only: the kernel escapes those (and newline and backslash) in
// the names it writes, and nothing else, so a name may hold any other
// white space (\v, \r, U+0085, U+00A0), which strings.Fields would split.
func seqFields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
}

// parseSwaps returns the swap files of /proc/swaps (proc(5)); names are
// octal-escaped there like mountinfo's.
func parseSwaps(text string) []string {
	var out []string
	for i, line := range strings.Split(text, "\n") {
		f := seqFields(line)
		if i == 0 || len(f) < 2 || f[1] != "file" {
			continue
		}
		out = append(out, UnescapeSeqPath(f[0]))
	}
	return out
}

// parseExports returns the exported paths of /proc/fs/nfsd/exports.
func parseExports(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := seqFields(line)
		if len(f) > 0 {
			out = append(out, UnescapeSeqPath(f[0]))
		}
	}
	return out
}

// binfmtFixed returns the interpreter of a binfmt_misc entry registered
// with the F flag (the kernel opened it at registration and holds it open).
func binfmtFixed(text string) (string, bool) {
	var interp string
	fixed := false
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "interpreter "); ok {
			interp = v
		}
		if v, ok := strings.CutPrefix(line, "flags: "); ok && strings.Contains(v, "F") {
			fixed = true
		}
	}
	return interp, fixed && interp != ""
}
