package unmount

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"mounttop/inspect"
	"mounttop/internal/testns"
)

// TestSystemMountsGuarded: the mounts the system runs on, by path and by
// API filesystem type, and the /proc mounttop reads, are refused without
// Plan.AllowSystem and planned with it; the executable and cwd stay
// refused whatever the override; an ordinary mount is not a system mount.
func TestSystemMountsGuarded(t *testing.T) {
	cases := []struct {
		name, mp, fstype string
		self             bool // the mount is the /proc mounttop reads
		want             string
	}{
		{"proc by path", "/proc", "proc", false, "/proc is a mount the system runs on"},
		{"sys by path", "/sys", "sysfs", false, "a mount the system runs on"},
		{"dev/pts", "/dev/pts", "devpts", false, "a mount the system runs on"},
		{"tmpfs at /run", "/run", "tmpfs", false, "/run is a mount the system runs on"},
		{"cgroup2 anywhere", "/srv/cg", "cgroup2", false, "kernel API filesystem (cgroup2)"},
		{"mqueue anywhere", "/mnt/mq", "mqueue", false, "kernel API filesystem (mqueue)"},
		{"the /proc mounttop reads", "/srv/p", "ext4", true, "the /proc mounttop reads"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			m := f.addMount(tc.mp, tc.fstype, false)
			if tc.self {
				f.selfProc = m.ID
			}
			_, err := New(f).Prepare(context.Background(), Plan{Target: m, Mode: ModeLazy})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--allow-system-mount") {
				t.Fatalf("err = %v, want ErrRefused saying %q and how to override", err, tc.want)
			}
			p, err := New(f).Prepare(context.Background(), Plan{Target: m, Mode: ModeLazy, AllowSystem: true})
			if err != nil {
				t.Fatalf("with the override: %v", err)
			}
			if tc.self && !strings.Contains(warningsWords(&p), "allowed by --allow-system-mount") {
				t.Errorf("the override is not said in the warnings: %+v", p.Warnings)
			}
			for _, c := range f.Calls() {
				if strings.HasPrefix(c, "umount2") || strings.HasPrefix(c, "fence") {
					t.Fatalf("Prepare acted: %v", f.Calls())
				}
			}
		})
	}
	t.Run("own executable stays refused", func(t *testing.T) {
		f := newFake()
		m := f.addMount("/usr/local", "ext4", false)
		f.selfExe = m.ID
		_, err := New(f).Prepare(context.Background(), Plan{Target: m, Mode: ModeLazy, AllowSystem: true})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "own executable") {
			t.Fatalf("err = %v, want the executable refused despite the override", err)
		}
	})
	for _, m := range []inspect.Mount{
		{Mountpoint: "/mnt/data", FSType: "ext4"}, {Mountpoint: "/run/user/1000", FSType: "tmpfs"},
		{Mountpoint: "/proc/sys/fs/binfmt_misc", FSType: "binfmt_misc", Detached: true},
	} {
		if k := SystemMount(&m); k != SystemNone {
			t.Errorf("%s (%s) called a system mount: %v", m.Mountpoint, m.FSType, k)
		}
	}
}

// TestJournalMountGuarded: the mount the open journal lies on is refused
// without the override (the journal's fd would keep it busy, and the run
// would lose its record), planned with it.
func TestJournalMountGuarded(t *testing.T) {
	dir := testns.Tmpfs(t, "")
	j, err := OpenJournal(filepath.Join(dir, "log", "journal.jsonl"), testEncoder) // a tmpfs root is 1777: no state dir
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	u := realUnmounter(t, WithJournal(j))
	_, err = u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: ModeLazy})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "journal is on it") {
		t.Fatalf("err = %v, want the journal's mount refused", err)
	}
	if _, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, dir), Mode: ModeLazy, AllowSystem: true}); err != nil {
		t.Fatalf("with the override: %v", err)
	}
	other := testns.Tmpfs(t, "")
	if _, err := u.Prepare(context.Background(), Plan{Target: mountAt(t, other), Mode: ModeLazy}); err != nil {
		t.Fatalf("a mount without the journal: %v", err)
	}
}
