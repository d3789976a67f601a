package inspect

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is one file-backed line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	dev, ino   uint64
	// path is the mapped path, within the line read: a scan makes a
	// string of it only where it is shown or needed (a python process
	// maps hundreds of libraries on /, which a count-only scan never
	// names).
	path []byte
}

// parseMapsLine parses "START-END PERMS OFFSET MAJ:MIN INODE   PATH"
// (proc(5)); ok is false for anonymous mappings. It allocates nothing.
func parseMapsLine(line []byte) (mapping, bool) {
	l, path, ok := splitMapsLine(line)
	if !ok || l.Inode == 0 {
		return mapping{}, false
	}
	return mapping{start: l.Start, end: l.End, dev: l.Dev, ino: l.Inode, path: path}, true
}

// parseUint is strconv.ParseUint(string(b), base, 64) for base 10 or 16
// without the string: 0 and false for an empty, malformed or overflowing
// number.
func parseUint(b []byte, base uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if v > (^uint64(0)-d)/base {
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}

// scanMaps attributes file mappings. The device in maps names a
// filesystem, not a mount: where only one mount in our table has that
// device (and the process shares our mount namespace) it is exact;
// otherwise (bind mounts) statx of /proc/PID/map_files/START-END gives the
// mount, which needs CAP_SYS_ADMIN (proc(5)); without it the mount is
// chosen by the mapped path, and a warning says so.
func (p *proc) scanMaps() {
	b, err := p.readFile(readMaps, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			p.warn("cannot read memory maps", unix.EACCES)
		}
		return
	}
	noMapFiles := false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		m, ok := parseMapsLine(line)
		if !ok {
			continue
		}
		cands := p.tbl.byDev[m.dev]
		if len(cands) == 0 {
			// Not a filesystem of our table: a copy in the process's own
			// namespace, or a detached mount. Only map_files can say.
			if noMapFiles || p.tbl.internal[m.dev] {
				continue
			}
			if !p.may(readMapFiles, 0) {
				continue
			}
			name := "map_files/" + strconv.FormatUint(m.start, 16) + "-" + strconv.FormatUint(m.end, 16)
			t, err := p.statLink(name)
			if err != nil {
				noMapFiles = errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
				continue
			}
			path, deleted := strings.CutSuffix(string(m.path), " (deleted)")
			p.other(p.dirfd, name, Use{Kind: UseMmap, FD: -1, Inode: m.ino, Start: m.start, End: m.end, Path: path, Deleted: deleted}, t)
			continue
		}
		id := cands[0]
		if len(cands) > 1 || p.foreign {
			exact := false
			if !noMapFiles && p.may(readMapFiles, 0) {
				name := "map_files/" + strconv.FormatUint(m.start, 16) + "-" + strconv.FormatUint(m.end, 16)
				t, err := p.statLink(name)
				switch {
				case err == nil:
					if !t.known {
						continue
					}
					id, exact = t.mount, true
				case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
					noMapFiles = true
				}
			}
			if !exact {
				if p.foreign {
					continue // another namespace's paths mean nothing in ours
				}
				id = p.byPath(cands, string(m.path))
			}
		}
		path, deleted := bytes.CutSuffix(m.path, []byte(" (deleted)"))
		u := Use{Kind: UseMmap, FD: -1, Inode: m.ino, Start: m.start, End: m.end, Deleted: deleted}
		if p.in.wantDetail(id) {
			u.Path = string(path)
		}
		p.add(id, u)
	}
	if noMapFiles {
		p.res.warnings = append(p.res.warnings, Warning{Kind: WarnMapsByPath, PID: p.pid})
	}
}

// byPath picks, among mounts of one device, the one whose mount point is
// the longest prefix of the mapped path.
func (p *proc) byPath(cands []MountID, path string) MountID {
	best, bestLen := cands[0], -1
	for _, id := range cands {
		m := p.tbl.byID[id]
		if m != nil && isUnder(path, m.Mountpoint) && len(m.Mountpoint) > bestLen {
			best, bestLen = id, len(m.Mountpoint)
		}
	}
	return best
}
