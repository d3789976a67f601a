package inspect

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"mounttop/internal/mountapi"
)

// standInBit marks a MountID made up from the reusable ID, device and root on
// kernels without unique mount IDs: real unique IDs never have it set.
const standInBit = 1 << 63

// readTable reads the caller's mount table from procRoot/self/mountinfo
// (proc(5); moby/sys/mountinfo unescapes the \040-style octal escapes) and,
// on the live /proc, maps each reusable ID to the unique one by listmount(2)
// and statmount(2). Neither walks a mount point, so MNT_EXPIRE marks
// survive (DESIGN.md).
func (in *Inspector) readTable(ctx context.Context) ([]Mount, bool, []Warning, error) {
	path := filepath.Join(in.procRoot, "self", "mountinfo")
	f, err := os.Open(path)
	if err != nil {
		return nil, false, nil, fmt.Errorf("reading mount table: %w", err)
	}
	infos, err := mountinfo.GetMountsFromReader(f, nil)
	f.Close()
	if err != nil {
		return nil, false, nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	var warnings []Warning
	unique, err := in.uniqueIDs(ctx)
	if err != nil {
		warnings = append(warnings, Warning{Kind: WarnUniqueIDs, Err: err})
	}
	mounts, missing := buildTable(infos, unique)
	if missing > 0 {
		warnings = append(warnings, Warning{Kind: WarnTableChanged, Count: missing})
	}
	return mounts, unique != nil, warnings, nil
}

// buildTable makes our Mounts from mountinfo's entries: each keyed by its
// unique ID where unique (reusable ID -> unique ID) has it, else by a
// stand-in (missing counts those when unique is not nil: mounts that came
// or went between the two reads), and each parent found by its reusable
// ID; a mount whose parent is not in the table (the namespace root) is its
// own parent.
func buildTable(infos []*mountinfo.Info, unique map[int]MountID) (mounts []Mount, missing int) {
	mounts = make([]Mount, 0, len(infos))
	for _, info := range infos {
		mounts = append(mounts, Mount{
			OldID:        info.ID,
			OldParentID:  info.Parent,
			Major:        info.Major,
			Minor:        info.Minor,
			Root:         info.Root,
			Mountpoint:   info.Mountpoint,
			FSType:       info.FSType,
			Source:       info.Source,
			Options:      info.Options,
			SuperOptions: info.VFSOptions,
			Propagation:  parsePropagation(info.Optional),
		})
	}
	byOld := make(map[int]MountID, len(mounts))
	for i := range mounts {
		m := &mounts[i]
		if id, found := unique[m.OldID]; found {
			m.ID = id
		} else {
			if unique != nil {
				missing++
			}
			m.ID = standIn(m)
		}
		byOld[m.OldID] = m.ID
	}
	for i := range mounts {
		m := &mounts[i]
		if p, found := byOld[m.OldParentID]; found {
			m.ParentID = p
		} else {
			m.ParentID = m.ID // the namespace root: its parent is outside our view
		}
	}
	return mounts, missing
}

// uniqueIDs maps reusable mount IDs to unique ones, or returns nil and why
// not. It only applies to the live /proc of our own mount namespace.
func (in *Inspector) uniqueIDs(ctx context.Context) (map[int]MountID, error) {
	if in.procRoot != "/proc" {
		return nil, fmt.Errorf("proc root %s is not the live /proc", in.procRoot)
	}
	ids, err := mountapi.ListMounts()
	if err != nil {
		return nil, err
	}
	out := make(map[int]MountID, len(ids))
	for _, id := range ids {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		st, err := mountapi.StatMount(id)
		if err != nil {
			continue // gone since listmount: it is not in mountinfo either
		}
		out[int(st.Old)] = MountID(st.Unique)
	}
	return out, nil
}

// standIn derives a MountID from what identifies a mount without unique IDs:
// the reusable ID plus the device and root, hashed, with standInBit set.
func standIn(m *Mount) MountID {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%d:%d\x00%s", m.OldID, m.Major, m.Minor, m.Root)
	return MountID(h.Sum64() | standInBit)
}

// parsePropagation reads mountinfo's optional fields (proc(5)):
// "shared:N master:N propagate_from:N unbindable".
func parsePropagation(optional string) Propagation {
	var p Propagation
	for _, f := range strings.Fields(optional) {
		k, v, _ := strings.Cut(f, ":")
		n, _ := strconv.Atoi(v)
		switch k {
		case "shared":
			p.Shared = n
		case "master":
			p.Master = n
		case "propagate_from":
			p.PropagateFrom = n
		case "unbindable":
			p.Unbindable = true
		}
	}
	return p
}
