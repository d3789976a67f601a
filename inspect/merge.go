package inspect

import (
	"errors"
	"sort"

	"golang.org/x/sys/unix"

	"mounttop/internal/mountapi"
)

// merger folds process results into a snapshot: our mounts' holders, other
// namespaces with theirs, detached mounts, io_uring holders.
type merger struct {
	snap    *Snapshot
	tbl     *scanTable
	nsIndex map[uint64]int  // namespace inode -> index in snap.Namespaces
	unknown map[MountID]int // detached candidate -> index in snap.Mounts
	oldIDs  map[MountID]int // detached candidate -> its reusable ID
	uring   []KernelHolder
}

func (m *merger) add(r *procResult) {
	for _, mu := range r.uses {
		h := r.holder
		h.Uses = mu.uses
		m.snap.Holders[mu.id] = append(m.snap.Holders[mu.id], h)
	}
	if r.ns != 0 {
		i, ok := m.nsIndex[r.ns]
		if !ok {
			v, _ := m.tbl.foreign.Load(r.ns)
			t := v.(*nsTable)
			i = len(m.snap.Namespaces)
			m.nsIndex[r.ns] = i
			m.snap.Namespaces = append(m.snap.Namespaces, Namespace{Inode: r.ns, Mounts: t.mounts, Holders: map[int][]Holder{}, Err: t.err})
		}
		ns := &m.snap.Namespaces[i]
		ns.PIDs = append(ns.PIDs, r.pid)
		for old, uses := range r.foreignUses {
			h := r.holder
			h.Uses = uses
			ns.Holders[old] = append(ns.Holders[old], h)
		}
	}
	for id, um := range r.unknown {
		if _, ok := m.unknown[id]; !ok {
			m.unknown[id] = len(m.snap.Mounts)
			if m.oldIDs == nil {
				m.oldIDs = map[MountID]int{}
			}
			m.oldIDs[id] = um.old
			m.snap.Mounts = append(m.snap.Mounts, Mount{ID: id, ParentID: id, Detached: true,
				Major: int(unix.Major(um.dev)), Minor: int(unix.Minor(um.dev))})
		}
		h := r.holder
		h.Uses = um.uses
		m.snap.Holders[id] = append(m.snap.Holders[id], h)
	}
	m.uring = append(m.uring, r.uring...)
}

// finish confirms detached mounts (statmount(2) cannot find a detached
// mount; one it finds was mounted here after the table was read), fills in
// what is known of them, and sorts.
//
// A mount in no table of ours may still be in another namespace's table: a
// process here can hold an fd opened before it moved (an unshare'd shell's
// inherited stdin on the old /dev). Those uses belong to that copy, found by
// reusable ID and device once every namespace's table is known.
func (m *merger) finish() {
	s := m.snap
	type key struct{ old, major, minor int }
	copies := map[key]*Namespace{}
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		for _, mt := range ns.Mounts {
			copies[key{mt.OldID, mt.Major, mt.Minor}] = ns
		}
	}
	drop := map[MountID]bool{}
	for id, i := range m.unknown {
		mt, old := &s.Mounts[i], m.oldIDs[id]
		if ns := copies[key{old, mt.Major, mt.Minor}]; ns != nil && old != 0 {
			ns.Holders[old] = append(ns.Holders[old], s.Holders[id]...)
			drop[id] = true
			continue
		}
		if _, err := mountapi.StatMount(uint64(id)); err == nil || !errors.Is(err, unix.ENOENT) {
			drop[id] = true
			continue
		}
		if here := m.visibleHere(mt); here != nil && m.tbl.hiddenNS.Load() {
			// Its filesystem is mounted here too, and some namespaces
			// could not be read: most likely a copy in one of them (an fd
			// inherited from outside a user namespace), not a detached
			// mount. Say so rather than guess.
			drop[id] = true
			var pids []int
			for _, h := range s.Holders[id] {
				pids = append(pids, h.PID)
			}
			s.Warnings = append(s.Warnings, Warning{Kind: WarnUnreadableMount, PIDs: pids,
				Device: mt.Device(), FSType: here.FSType, Path: here.Mountpoint, Advice: unreadableAdvice()})
		}
	}
	if len(drop) > 0 {
		kept := s.Mounts[:0]
		for _, mt := range s.Mounts {
			if drop[mt.ID] {
				delete(s.Holders, mt.ID)
				continue
			}
			kept = append(kept, mt)
		}
		s.Mounts = kept
	}
	for i := range s.Mounts {
		mt := &s.Mounts[i]
		if !mt.Detached {
			continue
		}
		mt.Mountpoint = "(detached)"
		mt.Source = "?"
		for _, o := range s.Mounts {
			if !o.Detached && o.Major == mt.Major && o.Minor == mt.Minor {
				mt.FSType, mt.Source = o.FSType, o.Source // same superblock still mounted here
				break
			}
		}
	}
	s.buildIndex()
	for i := range s.Namespaces {
		sort.Ints(s.Namespaces[i].PIDs)
	}
	sort.Slice(s.Namespaces, func(i, j int) bool { return s.Namespaces[i].Inode < s.Namespaces[j].Inode })
	for _, k := range m.uring {
		if mt, ok := s.MountContaining(k.Path); ok {
			s.addKernel(mt.ID, k)
		}
	}
}

func (s *Snapshot) addKernel(id MountID, k KernelHolder) {
	if s.Kernel == nil {
		s.Kernel = map[MountID][]KernelHolder{}
	}
	s.Kernel[id] = append(s.Kernel[id], k)
}

// visibleHere returns a mount of mt's filesystem (same device) in our
// table, if there is one.
func (m *merger) visibleHere(mt *Mount) *Mount {
	for i := range m.snap.Mounts {
		if o := &m.snap.Mounts[i]; !o.Detached && o.Major == mt.Major && o.Minor == mt.Minor {
			return o
		}
	}
	return nil
}

// Detached returns the mounts that were lazily unmounted and are still
// held, with their holders in Holders.
func (s *Snapshot) Detached() []*Mount {
	var out []*Mount
	for i := range s.Mounts {
		if s.Mounts[i].Detached {
			out = append(out, &s.Mounts[i])
		}
	}
	return out
}
