package inspect

import (
	"path"
	"strings"
)

// Layer is a directory a stacking filesystem (overlayfs) was mounted on top
// of, as its mount options name it.
type Layer struct {
	Option LayerOption
	Path   string // as given at mount time: in the mounter's namespace, relative to its cwd if not absolute
}

func (l Layer) String() string { return string(l.Option) + "=" + l.Path }

// LayerOption is the mount option that names a layer of a stacking
// filesystem (overlayfs, Documentation/filesystems/overlayfs.rst).
type LayerOption string

const (
	LayerLower     LayerOption = "lowerdir"  // read-only layers, ':'-separated
	LayerLowerPlus LayerOption = "lowerdir+" // one read-only layer (new mount API)
	LayerDataPlus  LayerOption = "datadir+"  // one data-only layer (new mount API)
	LayerUpper     LayerOption = "upperdir"  // the writable layer
	LayerWork      LayerOption = "workdir"   // overlayfs's work directory
)

func (o LayerOption) String() string { return string(o) }

// Layers returns the directories named in a mount's per-superblock options
// (mountinfo field 11, proc(5)) that the filesystem stacks on: overlayfs's
// lowerdir (a ':'-separated list, "::" before data-only layers, '\' escaping
// the next character), upperdir and workdir (the same escapes), and the new
// mount API's lowerdir+ and datadir+ (one literal path each;
// fs/overlayfs/params.c). Any filesystem whose options carry these names is
// read the same way. The options are as the kernel shows them
// (seq_show_option: ',', ' ', tab, newline and '\' octal-escaped).
//
// overlayfs takes private clones of its layers' mounts when it is mounted,
// so `umount` of the mount a layer lies on succeeds and its filesystem
// lives on, invisibly (DESIGN.md, "Dead servers, overlays, root-owned
// paths"): the options are the only place that says so.
func Layers(superOptions string) []Layer {
	var out []Layer
	for _, opt := range strings.Split(superOptions, ",") {
		k, v, ok := strings.Cut(opt, "=")
		if !ok || v == "" {
			continue
		}
		v = UnescapeSeqPath(v)
		switch o := LayerOption(k); o {
		case LayerLower:
			for _, p := range splitLowerdir(v) {
				out = append(out, Layer{o, p})
			}
		case LayerUpper, LayerWork:
			out = append(out, Layer{o, unescapeBackslash(v)})
		case LayerLowerPlus, LayerDataPlus:
			out = append(out, Layer{o, v})
		}
	}
	return out
}

// splitLowerdir splits overlayfs's lowerdir list at unescaped ':' (a "::"
// marks where data-only layers start) and removes the '\' escapes of each
// element, as ovl_parse_param_split_lowerdirs and ovl_unescape do.
func splitLowerdir(v string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
		}
		cur.Reset()
	}
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ':':
			flush()
		default:
			cur.WriteByte(v[i])
		}
	}
	flush()
	return out
}

// unescapeBackslash removes '\' escapes (ovl_unescape).
func unescapeBackslash(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// stackingHolders lists, under the mount each layer lies on, the stacking
// filesystems (overlays) of this namespace and of every other one read in
// the scan. A layer path is resolved against the overlay's own namespace's
// table (the mount with the longest mount point prefix that a path walk
// reaches there), never by walking it: the path is as the mounter gave it,
// and its server may be dead. A layer in another namespace lies on a copy
// of one of our filesystems: it is listed under each of our mounts of that
// filesystem whose root holds the layer. Relative layer paths (relative to
// the mounter's cwd at mount time) cannot be placed and are reported in
// Warnings.
func (s *Snapshot) stackingHolders() {
	s.addStacking(s, 0)
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		if ns.Err == nil && len(ns.Mounts) > 0 {
			s.addStacking(ns.table(), ns.Inode)
		}
	}
}

// addStacking adds the overlays of table t (ours when nsIno is 0).
func (s *Snapshot) addStacking(t *Snapshot, nsIno uint64) {
	for i := range t.Mounts {
		ov := &t.Mounts[i]
		layers := Layers(ov.SuperOptions)
		if len(layers) == 0 || ov.Detached {
			continue
		}
		held := map[MountID]*KernelHolder{}
		var order []MountID
		for _, l := range layers {
			if !path.IsAbs(l.Path) {
				s.Warnings = append(s.Warnings, Warning{Kind: WarnRelativeLayer, Path: ov.Mountpoint, Namespace: nsIno, Layer: l})
				continue
			}
			on, ok := t.MountContaining(path.Clean(l.Path))
			if !ok || on.ID == ov.ID {
				continue
			}
			for _, id := range s.ourMountsOf(t, on, path.Clean(l.Path), nsIno) {
				k := held[id]
				if k == nil {
					k = &KernelHolder{Kind: KernelKind(ov.FSType), Name: ov.Mountpoint, Path: l.Path, Namespace: nsIno}
					if nsIno == 0 {
						k.Mount = ov.ID
					}
					held[id] = k
					order = append(order, id)
				}
				k.Layers = append(k.Layers, l)
			}
		}
		for _, id := range order {
			s.addKernel(id, *held[id])
		}
	}
}

// ourMountsOf returns the mounts of our table that layer p, lying on mount
// on of table t, is held through: on itself when t is ours, else every
// mount of ours of the same filesystem whose root holds the layer.
func (s *Snapshot) ourMountsOf(t *Snapshot, on *Mount, p string, nsIno uint64) []MountID {
	if nsIno == 0 {
		return []MountID{on.ID}
	}
	inFS := path.Join(on.Root, strings.TrimPrefix(strings.TrimPrefix(p, on.Mountpoint), "/"))
	var out []MountID
	for i := range s.Mounts {
		o := &s.Mounts[i]
		if !o.Detached && o.Major == on.Major && o.Minor == on.Minor && isUnder(inFS, o.Root) {
			out = append(out, o.ID)
		}
	}
	return out
}

// table is the namespace's mount table as a Snapshot of its own (parents,
// children, hidden marks), for path lookups by table there.
func (ns *Namespace) table() *Snapshot {
	mounts := append([]Mount(nil), ns.Mounts...)
	byOld := make(map[int]MountID, len(mounts))
	for i := range mounts {
		byOld[mounts[i].OldID] = mounts[i].ID
	}
	for i := range mounts {
		m := &mounts[i]
		if p, ok := byOld[m.OldParentID]; ok {
			m.ParentID = p
		} else {
			m.ParentID = m.ID
		}
	}
	t := &Snapshot{Mounts: mounts}
	t.buildIndex()
	return t
}
