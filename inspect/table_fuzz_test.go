package inspect

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// mangle escapes s as the kernel does for mountinfo and the other seq_file
// tables (fs/seq_file.c mangle_path, seq_escape): each of esc as \ooo.
func mangle(s, esc string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(esc, s[i]) >= 0 {
			fmt.Fprintf(&b, "\\%03o", s[i])
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountinfoLine formats one line of /proc/PID/mountinfo as
// fs/proc_namespace.c show_mountinfo does.
func mountinfoLine(id, parent, major, minor int, root, mp, opts, optional, fstype, source, super string) string {
	const esc = " \t\n\\"
	line := fmt.Sprintf("%d %d %d:%d %s %s %s", id, parent, major, minor, mangle(root, esc), mangle(mp, esc), opts)
	if optional != "" {
		line += " " + optional
	}
	return line + " - " + mangle(fstype, esc) + " " + mangle(source, esc) + " " + super + "\n"
}

// checkTable checks what must hold of any table built from mountinfo: one
// Mount per entry with its fields, every parent in the table or the mount
// itself, and the tree walks (Roots, Descendants, MountAt, MountContaining)
// ending, whatever the text (a --proc fixture can hold cycles and
// duplicate IDs the kernel never writes).
func checkTable(t *testing.T, infos []*mountinfo.Info, mounts []Mount) {
	t.Helper()
	if len(mounts) != len(infos) {
		t.Fatalf("%d mounts from %d entries", len(mounts), len(infos))
	}
	s := &Snapshot{Mounts: mounts}
	s.buildIndex()
	for i, m := range s.Mounts {
		in := infos[i]
		if m.Mountpoint != in.Mountpoint || m.Root != in.Root || m.FSType != in.FSType || m.Source != in.Source || m.OldID != in.ID || m.OldParentID != in.Parent {
			t.Fatalf("mount %d = %+v, entry %+v", i, m, in)
		}
		if _, ok := s.Mount(m.ParentID); !ok && m.ParentID != m.ID {
			t.Fatalf("mount %d's parent %x is neither in the table nor itself", i, m.ParentID)
		}
		if m.ID&standInBit == 0 {
			t.Fatalf("mount %d without unique IDs has no stand-in ID: %x", i, m.ID)
		}
		if i >= 64 {
			continue // the walks below cost O(n) to O(n²) each: a sample is enough
		}
		seen := map[MountID]bool{}
		for _, d := range s.Descendants(m.ID) {
			if seen[d] || d == m.ID {
				t.Fatalf("Descendants(%x) repeats %x or holds the mount itself", m.ID, d)
			}
			seen[d] = true
		}
		// A shadowed (Hidden) mount's path may lead to no mount at that
		// place at all; any other's leads to itself.
		if top, ok := s.MountAt(m.Mountpoint); ok && (top.Hidden || top.Mountpoint != m.Mountpoint) || !ok && !m.Hidden {
			t.Fatalf("MountAt(%q) = %v", m.Mountpoint, top)
		}
		if strings.HasPrefix(m.Mountpoint, "/") && !m.Hidden {
			if c, ok := s.MountContaining(m.Mountpoint); !ok || !isUnder(m.Mountpoint, c.Mountpoint) {
				t.Fatalf("MountContaining(%q) = %v", m.Mountpoint, c)
			}
		}
	}
	s.Roots()
}

// FuzzMountinfo: any text parses (or is refused) without a panic or an
// endless walk, into a table that keeps checkTable's rules.
func FuzzMountinfo(f *testing.F) {
	for _, seed := range []string{
		"22 27 0:21 / /proc rw,relatime - proc proc rw\n27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n",
		"30 27 0:27 / /mnt/with\\040space rw,nosuid shared:5 - tmpfs tm\\134pfs rw,size=1024k\n31 30 0:28 / /mnt/with\\040space/sub ro master:5 - tmpfs sub rw\n",
		// a cycle, and a duplicate ID: only a fixture can hold them
		"1 2 0:1 / /a rw - tmpfs a rw\n2 1 0:2 / /b rw - tmpfs b rw\n",
		"1 2 0:1 / /a rw - tmpfs a rw\n2 1 0:2 / /b rw - tmpfs b rw\n2 2 0:3 / /b rw - tmpfs c rw\n",
		// the same ID twice, one a root's child, one in a cycle with a
		// third: the hidden marks' walk must end
		"9 9 0:9 / / rw - ext4 r rw\n5 9 0:5 / /x rw - tmpfs x rw\n6 5 0:6 / /x/y rw - tmpfs y rw\n5 6 0:5 / /x rw - tmpfs x rw\n",
		"40 27 0:30 / /m\x1b[31m\xc2\x9b\xe2\x80\xae rw - fuse.bindfs src\\011x rw,user_id=0\n",
	} {
		f.Add([]byte(seed))
	}
	fixture, err := os.ReadFile("testdata/proc/self/mountinfo") // the table test's dump, escapes and all
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Fuzz(func(t *testing.T, data []byte) {
		infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
		if err != nil {
			return
		}
		mounts, missing := buildTable(infos, nil)
		if missing != 0 {
			t.Fatalf("missing %d without unique IDs", missing)
		}
		checkTable(t, infos, mounts)
	})
}

// FuzzMountinfoRoundTrip: a line written as the kernel writes it reads back
// to the same mount: octal escapes undone, propagation understood.
func FuzzMountinfoRoundTrip(f *testing.F) {
	f.Add(uint32(30), uint32(27), uint16(0), uint32(27), "/", "/mnt/with space", "tmpfs", "tm\\pfs", uint16(5), uint16(0), uint16(0), false)
	f.Add(uint32(41), uint32(30), uint16(8), uint32(1), "/dir\nx", "/srv/\x1b]0;x\x07\tb", "fuse.sshfs", "user@host:/a b", uint16(0), uint16(5), uint16(5), true)
	f.Add(uint32(1), uint32(1), uint16(0), uint32(0), "/\xff\xfe", "/\u202e\u0085", "ext4", "/dev/vda1", uint16(1), uint16(2), uint16(3), false)
	f.Fuzz(func(t *testing.T, id, parent uint32, major uint16, minor uint32, root, mp, fstype, source string, shared, master, from uint16, unbindable bool) {
		for _, s := range []*string{&root, &mp, &fstype, &source} {
			if *s == "" {
				*s = "x" // the kernel writes none of these empty
			}
		}
		minor &= 0xfffff
		var optional []string
		p := Propagation{Shared: int(shared), Master: int(master), Unbindable: unbindable}
		if shared != 0 {
			optional = append(optional, fmt.Sprintf("shared:%d", shared))
		}
		if master != 0 {
			optional = append(optional, fmt.Sprintf("master:%d", master))
			if from != 0 {
				optional = append(optional, fmt.Sprintf("propagate_from:%d", from))
				p.PropagateFrom = int(from)
			}
		}
		if unbindable {
			optional = append(optional, "unbindable")
		}
		line := mountinfoLine(int(id), int(parent), int(major), int(minor), root, mp, "rw,nosuid", strings.Join(optional, " "), fstype, source, "rw,size=1024k")
		infos, err := mountinfo.GetMountsFromReader(strings.NewReader(line), nil)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		mounts, _ := buildTable(infos, nil)
		if len(mounts) != 1 {
			t.Fatalf("%q: %d mounts", line, len(mounts))
		}
		m := mounts[0]
		if m.OldID != int(id) || m.OldParentID != int(parent) || m.Major != int(major) || m.Minor != int(minor) ||
			m.Root != root || m.Mountpoint != mp || m.FSType != fstype || m.Source != source ||
			m.Options != "rw,nosuid" || m.SuperOptions != "rw,size=1024k" || m.Propagation != p {
			t.Fatalf("%q read back as %+v", line, m)
		}
		checkTable(t, infos, mounts)
	})
}
