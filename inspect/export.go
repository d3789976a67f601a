package inspect

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// The parsers of /proc files that the revoker (unmount/revoke) reads again
// once a holder is stopped: one parser per file format for the scan and
// the revoke alike.

// MapsLine is one line of /proc/PID/maps (proc(5)).
type MapsLine struct {
	Start, End uint64
	Perms      string // "r-xp": read, write, execute, private (p) or shared (s)
	Dev        uint64 // the device (unix.Mkdev of MAJ:MIN), 0 for anonymous memory
	Inode      uint64 // 0 for anonymous memory and pseudo-paths
	// Path is the rest of the line after the padding, as the kernel wrote
	// it: a file's path (spaces and tabs kept; a newline shows as \012;
	// " (deleted)" appended to a deleted file's), a pseudo-path ("[vdso]",
	// "[stack]"), or "" for anonymous memory.
	Path string
}

// ParseMapsLine parses one line of /proc/PID/maps, "START-END PERMS OFFSET
// MAJ:MIN INODE" and, padded with spaces, the path to the end of the line
// (fs/proc/task_mmu.c show_map_vma). Anonymous mappings are lines too
// (Inode 0); ok is false only for a line that is not in this format.
func ParseMapsLine(line []byte) (MapsLine, bool) {
	m, path, ok := splitMapsLine(line)
	m.Path = string(path)
	return m, ok
}

// splitMapsLine is ParseMapsLine with the path left as bytes, so that the
// scan allocates a string only for the file mappings it keeps.
func splitMapsLine(line []byte) (MapsLine, []byte, bool) {
	var m MapsLine
	field := func() []byte {
		line = bytes.TrimLeft(line, " ")
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			f := line
			line = nil
			return f
		}
		f := line[:i]
		line = line[i+1:]
		return f
	}
	rng, perms, _, dev, inode := field(), field(), field(), field(), field()
	ino, ok := parseUint(inode, 10)
	if !ok {
		return m, nil, false
	}
	lo, hi, ok := bytes.Cut(rng, []byte("-"))
	if !ok {
		return m, nil, false
	}
	m.Start, _ = parseUint(lo, 16)
	m.End, _ = parseUint(hi, 16)
	maj, min, ok := bytes.Cut(dev, []byte(":"))
	if !ok {
		return m, nil, false
	}
	ma, _ := parseUint(maj, 16)
	mi, _ := parseUint(min, 16)
	m.Dev = unix.Mkdev(uint32(ma), uint32(mi))
	m.Inode = ino
	m.Perms = string(perms)
	return m, bytes.TrimLeft(line, " "), true
}

// FDInfo is what /proc/PID/fdinfo/N says of an open file (proc(5)),
// read without touching the file.
type FDInfo struct {
	MntID int    // "mnt_id:", the reusable mount ID (mountinfo field 1)
	Ino   uint64 // "ino:"
	Flags uint64 // "flags:", the open(2) flags (octal in the file), O_CLOEXEC included
	Locks []Lock // "lock:" lines
}

// ParseFDInfo parses the "key:\tvalue" lines of an fdinfo file.
func ParseFDInfo(b []byte) FDInfo {
	fi := parseFDInfo(b)
	return FDInfo{MntID: fi.mntID, Ino: fi.ino, Flags: fi.flags, Locks: fi.locks}
}
