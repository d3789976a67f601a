package inspect

// markHidden sets Mount.Hidden on every mount of the table that no path
// leads to: the kernel's path walk (path_resolution(7)) crosses into the
// mount on top of each mount point it meets, so a mount is reachable by
// path only when its parent is, when no sibling (another mount on the same
// parent) sits on the way to it or on top of it at the same place, and when
// nothing is mounted over it. Shadowed mounts appear in mountinfo like any
// other (proc(5) lists every mount of the namespace, reachable or not):
// X/y mounted, X over-mounted, X/y mounted again lists two mounts at X/y,
// and only the second is what X/y leads to.
//
// It works from the table alone (parent IDs and mount points), never by
// walking the paths, which could wait on a dead server or clear an
// MNT_EXPIRE mark (DESIGN.md). Detached mounts are in no tree and are
// never hidden.
func (s *Snapshot) markHidden() {
	// reached: the path walk to m's mount point arrives at m's place in
	// the tree (m, or a mount stacked on it). seen ends the walk on a
	// table only a --proc fixture can hold (an ID twice, a cycle).
	seen := make(map[MountID]bool, len(s.Mounts))
	var visit func(m *Mount, reached bool)
	visit = func(m *Mount, reached bool) {
		if seen[m.ID] {
			return
		}
		seen[m.ID] = true
		covered := s.covered(m)
		m.Hidden = !reached || covered
		for _, c := range m.Children {
			cm, ok := s.Mount(c)
			if !ok || c == m.ID {
				continue
			}
			on := reached && !s.shadowed(m, cm)
			if cm.Mountpoint != m.Mountpoint {
				on = on && !covered // below m's root: the walk is in the mount over m
			}
			visit(cm, on)
		}
	}
	for _, id := range s.Roots() {
		if m, ok := s.Mount(id); ok && !m.Detached {
			visit(m, true)
		}
	}
}

// covered reports whether a mount is mounted over m (a stack: the one on
// top has m as its parent and the same mount point).
func (s *Snapshot) covered(m *Mount) bool {
	for _, o := range m.Children {
		if om, ok := s.Mount(o); ok && o != m.ID && om.Mountpoint == m.Mountpoint {
			return true
		}
	}
	return false
}

// shadowed reports whether another child of p lies on the way to child c's
// mount point: at a directory above it, or at the same place and mounted
// later (children are in table order, the order they were mounted in).
func (s *Snapshot) shadowed(p, c *Mount) bool {
	later := false
	for _, o := range p.Children {
		if o == c.ID {
			later = true
			continue
		}
		om, ok := s.Mount(o)
		if !ok || o == p.ID {
			continue
		}
		if om.Mountpoint == c.Mountpoint {
			if later {
				return true
			}
			continue
		}
		if isUnder(c.Mountpoint, om.Mountpoint) {
			return true
		}
	}
	return false
}
