package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"mounttop/internal/testns"
)

func init() {
	// overlay-here LOWER UPPER WORK DIR: (started in a new mount
	// namespace) makes every mount private, so nothing propagates back,
	// and mounts an overlay of those layers on DIR there.
	testns.RegisterRole("overlay-here", 4, func(args []string) error {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := unix.Mount("ov-elsewhere", args[3], "overlay", 0,
			fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", args[0], args[1], args[2])); err != nil {
			return err
		}
		testns.Say("ready")
		testns.Forever()
		return nil
	})
}

// TestLayers reads the layer options as this kernel (6.18) shows them in
// mountinfo: a legacy lowerdir list with an escaped ':' and ',' and a
// data-only layer after "::", and the new mount API's lowerdir+ and
// datadir+ (recorded from real mounts, see the commit).
func TestLayers(t *testing.T) {
	for _, c := range []struct {
		opts string
		want []Layer
	}{
		{`rw,lowerdir=/tmp/ovt/lo\134:w:/tmp/ovt/lo2,upperdir=/tmp/ovt/up,workdir=/tmp/ovt/wk,uuid=on`,
			[]Layer{{"lowerdir", "/tmp/ovt/lo:w"}, {"lowerdir", "/tmp/ovt/lo2"}, {"upperdir", "/tmp/ovt/up"}, {"workdir", "/tmp/ovt/wk"}}},
		{`rw,lowerdir=/tmp/ovt/lo2::/tmp/ovt/a\134\054b,upperdir=/tmp/ovt/up\134\054x,workdir=/tmp/ovt/wk`,
			[]Layer{{"lowerdir", "/tmp/ovt/lo2"}, {"lowerdir", "/tmp/ovt/a,b"}, {"upperdir", "/tmp/ovt/up,x"}, {"workdir", "/tmp/ovt/wk"}}},
		{`rw,lowerdir+=/tmp/ovt/lo:w,lowerdir+=/tmp/ovt/lo2,datadir+=/tmp/ovt/a\054b,upperdir=/tmp/ovt/up,workdir=/tmp/ovt/wk,uuid=on`,
			[]Layer{{"lowerdir+", "/tmp/ovt/lo:w"}, {"lowerdir+", "/tmp/ovt/lo2"}, {"datadir+", "/tmp/ovt/a,b"}, {"upperdir", "/tmp/ovt/up"}, {"workdir", "/tmp/ovt/wk"}}},
		{`rw,lowerdir=lo2,upperdir=up,workdir=wk`, []Layer{{"lowerdir", "lo2"}, {"upperdir", "up"}, {"workdir", "wk"}}},
		{`rw,size=1024k,mode=755`, nil},
	} {
		if got := Layers(c.opts); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Layers(%q) =\n %v, want\n %v", c.opts, got, c.want)
		}
	}
}

// TestOverlayIsKernelHolder: an overlay whose layers lie on tmpfs T and
// which is mounted elsewhere is one of T's kernel holders, with its layers
// and its mount ID; an overlay of T's layers mounted in another mount
// namespace is one too, with that namespace. Neither is a process's use.
func TestOverlayIsKernelHolder(t *testing.T) {
	tmp := testns.Tmpfs(t, "")
	for _, d := range []string{"lower", "upper", "work", "upper2", "work2"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ovDir := testns.MountDir(t, "ov")
	if err := unix.Mount("ov-here", ovDir, "overlay", 0, fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", tmp, tmp, tmp)); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	testns.CleanupMount(t, ovDir)
	elsewhere := testns.MountDir(t, "ov-ns")
	v := testns.StartVictimInNewNS(t, "overlay-here", tmp+"/lower", tmp+"/upper2", tmp+"/work2", elsewhere)
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", v.PID), &st); err != nil {
		t.Fatal(err)
	}

	snap := scan(t)
	T, ov := mountAt(t, snap, tmp), mountAt(t, snap, ovDir)
	if len(snap.HoldersOf(T.ID)) != 0 {
		t.Errorf("processes listed as holders of %s: %+v", tmp, snap.HoldersOf(T.ID))
	}
	var here, there *KernelHolder
	for _, k := range snap.Kernel[T.ID] {
		k := k
		switch {
		case k.Kind == "overlay" && k.Name == ovDir && k.Namespace == 0:
			here = &k
		case k.Kind == "overlay" && k.Name == elsewhere && k.Namespace == st.Ino:
			there = &k
		}
	}
	if here == nil || there == nil {
		t.Fatalf("kernel holders of %s = %+v, want the overlay at %s here and at %s in mnt:[%d]", tmp, snap.Kernel[T.ID], ovDir, elsewhere, st.Ino)
	}
	want := []Layer{{"lowerdir", tmp + "/lower"}, {"upperdir", tmp + "/upper"}, {"workdir", tmp + "/work"}}
	if !reflect.DeepEqual(here.Layers, want) || here.Mount != ov.ID || here.Name != ovDir || here.Namespace != 0 {
		t.Errorf("overlay here = %+v, want layers %v, mount %d", here, want, ov.ID)
	}
	if there.Mount != 0 || len(there.Layers) != 3 || there.Layers[1].Path != tmp+"/upper2" {
		t.Errorf("overlay in the other namespace = %+v", there)
	}
}

// TestStackingByTable places layers by the tables alone: a layer path in
// our namespace lies on the reachable mount with the longest prefix (not
// on a hidden one below it, nor on a bind mount of the same filesystem);
// a layer in another namespace's table lies on a copy of our filesystem,
// and is listed under each of our mounts whose root holds it; a relative
// layer path is reported, not guessed.
func TestStackingByTable(t *testing.T) {
	s := NewSnapshot([]Mount{
		{ID: 1, ParentID: 1, Mountpoint: "/", Major: 8, Minor: 1, Root: "/"},
		{ID: 2, ParentID: 1, Mountpoint: "/t", Major: 0, Minor: 50, Root: "/"},
		{ID: 3, ParentID: 1, Mountpoint: "/srv/bind", Major: 0, Minor: 50, Root: "/sub"},
		{ID: 4, ParentID: 2, Mountpoint: "/t/sub/hidden", Major: 0, Minor: 51, Root: "/"},
		{ID: 5, ParentID: 2, Mountpoint: "/t/sub", Major: 0, Minor: 52, Root: "/"}, // hides 4
		{ID: 6, ParentID: 1, Mountpoint: "/ov", FSType: "overlay", Major: 0, Minor: 60, Root: "/",
			SuperOptions: `rw,lowerdir=/t/lower:/t/sub/hidden/x,upperdir=up,workdir=/t/work`},
	}, nil, nil)
	s.Namespaces = []Namespace{{Inode: 4026532999, Mounts: []Mount{
		{ID: 10, OldID: 100, OldParentID: 1, Mountpoint: "/", Major: 8, Minor: 1, Root: "/"},
		{ID: 11, OldID: 101, OldParentID: 100, Mountpoint: "/x", Major: 0, Minor: 50, Root: "/sub"},
		{ID: 12, OldID: 102, OldParentID: 100, Mountpoint: "/y", FSType: "overlay", Major: 0, Minor: 61, Root: "/",
			SuperOptions: `rw,lowerdir+=/x/deep/l,datadir+=/elsewhere`},
	}}}
	s.stackingHolders()
	got := map[MountID][]string{}
	for id, ks := range s.Kernel {
		for _, k := range ks {
			got[id] = append(got[id], fmt.Sprintf("%s %s ns=%d mount=%d %v", k.Kind, k.Name, k.Namespace, k.Mount, k.Layers))
		}
	}
	want := map[MountID][]string{
		1: {"overlay /y ns=4026532999 mount=0 [datadir+=/elsewhere]"}, // the same root filesystem there
		2: {"overlay /ov ns=0 mount=6 [lowerdir=/t/lower workdir=/t/work]", "overlay /y ns=4026532999 mount=0 [lowerdir+=/x/deep/l]"},
		3: {"overlay /y ns=4026532999 mount=0 [lowerdir+=/x/deep/l]"},
		5: {"overlay /ov ns=0 mount=6 [lowerdir=/t/sub/hidden/x]"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kernel holders by mount:\n %v\nwant\n %v", got, want)
	}
	if len(s.Warnings) != 1 || s.Warnings[0].Kind != WarnRelativeLayer || s.Warnings[0].Layer != (Layer{LayerUpper, "up"}) {
		t.Errorf("warnings = %v, want one about the relative upperdir", s.Warnings)
	}
}
