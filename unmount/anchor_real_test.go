package unmount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/mountapi"
	"mounttop/internal/testns"
)

// redirect is the attack on a path re-walked by root: the target
// is mounted at ROOT/home/a/b/boot, a victim at ROOT/victim/boot; the
// attack over-mounts ROOT/home/a with a tmpfs in which b is a symbolic
// link to ROOT/victim, so that the target's path now leads to the victim
// (UMOUNT_NOFOLLOW covers only the last component). The mount table still
// lists the target at its path (hidden under the over-mount).
type redirect struct {
	root, target, victim string
}

// newRedirect builds the two mounts under a fresh tmpfs, made shared with
// shared (so a staged run fences by over-mount), and cleans them up.
func newRedirect(t *testing.T, shared bool) *redirect {
	t.Helper()
	root := testns.Tmpfs(t, "")
	if shared {
		if err := unix.Mount("", root, "", unix.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
	}
	r := &redirect{root: root, target: filepath.Join(root, "home/a/b/boot"), victim: filepath.Join(root, "victim/boot")}
	for _, mp := range []struct{ dir, src string }{{r.target, "target"}, {r.victim, "victim"}} {
		if err := os.MkdirAll(mp.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(mp.src, mp.dir, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		testns.CleanupMount(t, mp.dir)
	}
	return r
}

// attack over-mounts home/a with a tmpfs where b -> ROOT/victim.
func (r *redirect) attack(t *testing.T) {
	t.Helper()
	a := filepath.Join(r.root, "home/a")
	if err := unix.Mount("attacker", a, "tmpfs", 0, ""); err != nil {
		t.Errorf("over-mounting %s: %v", a, err)
		return
	}
	testns.CleanupMount(t, a)
	if err := os.Symlink(filepath.Join(r.root, "victim"), filepath.Join(a, "b")); err != nil {
		t.Errorf("planting the link: %v", err)
	}
}

// requireVictim fails unless the victim is still mounted and was never
// marked for expiry: umount2(MNT_EXPIRE) of a mount nobody marked gives
// EAGAIN (and marks it), where a marked one would go.
func (r *redirect) requireVictim(t *testing.T) {
	t.Helper()
	if !testns.IsMountPoint(r.victim) {
		t.Fatal("the victim was unmounted")
	}
	if err := unix.Unmount(r.victim, unix.MNT_EXPIRE|unix.UMOUNT_NOFOLLOW); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("the victim had been marked for expiry (a first MNT_EXPIRE now gives %v, not EAGAIN)", err)
	}
}

// TestExpireRefusesARedirect: after inspection, the attack; both expire
// attempts are refused (the parent directory opened without following a
// link gives ELOOP), the victim is neither marked nor unmounted. Also when
// the first attempt marked the target before the attack. Before the
// anchoring, attempt 1 marked the victim and attempt 2 unmounted it.
func TestExpireRefusesARedirect(t *testing.T) {
	for _, markFirst := range []bool{false, true} {
		name := "attack then two attempts"
		if markFirst {
			name = "attempt, attack, attempt"
		}
		t.Run(name, func(t *testing.T) {
			r := newRedirect(t, false)
			m := mountAt(t, r.target)
			u := realUnmounter(t)
			attempts := 2
			if markFirst {
				res, err := u.Expire(context.Background(), &m)
				if err != nil || !res.Marked {
					t.Fatalf("first attempt before the attack: %+v %v, want marked", res, err)
				}
				attempts = 1
			}
			r.attack(t)
			for i := 0; i < attempts; i++ {
				res, err := u.Expire(context.Background(), &m)
				if !errors.Is(err, ErrChanged) || res.Gone || res.Marked {
					t.Fatalf("attempt after the attack: %+v %v, want ErrChanged", res, err)
				}
			}
			r.requireVictim(t)
			if _, err := mountapi.StatMount(uint64(m.ID)); err != nil {
				t.Fatalf("the target: %v, want still mounted", err)
			}
		})
	}
}

// raceSys is the real System with the attack run inside the window the
// issue names: after the identity re-check, right before the first
// umount2 made through the System (the final unmount of a staged run; the
// fence's own removal goes straight to the kernel).
type raceSys struct {
	System
	once   sync.Once
	attack func()
}

func (s *raceSys) Umount2(a *Anchor, flags int) error {
	s.once.Do(s.attack)
	return s.System.Umount2(a, flags)
}

// TestPlainModesRaceARedirect: lazy and force with the attack between the
// re-check and umount2. umount2 works from the parent directory opened
// before the check, so it unmounts the mount that was inspected (gone by
// unique ID) and leaves the victim alone. Before the anchoring, umount2 of
// the path unmounted the victim.
func TestPlainModesRaceARedirect(t *testing.T) {
	for _, mode := range []string{"lazy", "force"} {
		t.Run(mode, func(t *testing.T) {
			r := newRedirect(t, false)
			m := mountAt(t, r.target)
			u := New(&raceSys{System: realSystem(t), attack: func() { r.attack(t) }})
			var err error
			if mode == "lazy" {
				err = u.Lazy(context.Background(), &m)
			} else {
				err = u.Force(context.Background(), &m)
			}
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			if _, err := mountapi.StatMount(uint64(m.ID)); !errors.Is(err, unix.ENOENT) {
				t.Fatalf("the inspected mount: %v, want gone (ENOENT)", err)
			}
			r.requireVictim(t)
		})
	}
}

// TestExpireRacesARedirect: the attack in the window of the first expire
// attempt, between its re-check and umount2(MNT_EXPIRE): the attempt
// marks the inspected mount (from the directory opened before the check),
// not the victim; the next attempt meets the link and is refused.
func TestExpireRacesARedirect(t *testing.T) {
	r := newRedirect(t, false)
	m := mountAt(t, r.target)
	u := New(&raceSys{System: realSystem(t), attack: func() { r.attack(t) }})
	res, err := u.Expire(context.Background(), &m)
	if err != nil || !res.Marked || res.Gone {
		t.Fatalf("first attempt: %+v %v, want the target marked", res, err)
	}
	if res, err := u.Expire(context.Background(), &m); !errors.Is(err, ErrChanged) || res.Gone || res.Marked {
		t.Fatalf("second attempt after the attack: %+v %v, want ErrChanged", res, err)
	}
	if _, err := mountapi.StatMount(uint64(m.ID)); err != nil {
		t.Fatalf("the target: %v, want still mounted", err)
	}
	r.requireVictim(t)
}

// TestPlainModesRefuseARedirect: the attack before the call: lazy, force
// and expire are refused with ErrChanged, nothing is unmounted.
func TestPlainModesRefuseARedirect(t *testing.T) {
	r := newRedirect(t, false)
	m := mountAt(t, r.target)
	r.attack(t)
	u := realUnmounter(t)
	for name, op := range map[string]func() error{
		"lazy":   func() error { return u.Lazy(context.Background(), &m) },
		"force":  func() error { return u.Force(context.Background(), &m) },
		"expire": func() error { _, err := u.Expire(context.Background(), &m); return err },
	} {
		if err := op(); !errors.Is(err, ErrChanged) {
			t.Errorf("%s: %v, want ErrChanged", name, err)
		}
	}
	if _, err := mountapi.StatMount(uint64(m.ID)); err != nil {
		t.Fatalf("the target: %v, want still mounted", err)
	}
	r.requireVictim(t)
}

// TestStagedFinalUnmountRacesARedirect: a staged run whose final unmount
// meets the attack (in the window between its re-check and umount2), under
// both fences: the over-mount fence (shared parent), where the real mount
// is unmounted at the target's own place, and the beneath-swap fence. The
// run unmounts the inspected mount and removes its fence from the fds
// kept since fencing; the victim stays. Before the anchoring, the
// over-mount case unmounted the victim.
func TestStagedFinalUnmountRacesARedirect(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := "beneath-swap fence"
		if shared {
			name = "over-mount fence"
		}
		t.Run(name, func(t *testing.T) {
			r := newRedirect(t, shared)
			m := mountAt(t, r.target)
			u := New(&raceSys{System: realSystem(t), attack: func() { r.attack(t) }})
			evs := staged(t, u, r.target, Plan{})
			res, err := result(t, evs)
			if err != nil || !res.Gone {
				t.Fatalf("not gone: %v (%s)\n%s", err, summaryOf(res), dumpEvents(evs))
			}
			want := FenceBeneath.String()
			if shared {
				want = FenceOver.String()
			}
			if !containsEvent(evs, StageFence, want) {
				t.Fatalf("no %s fence:\n%s", want, dumpEvents(evs))
			}
			if _, err := mountapi.StatMount(uint64(m.ID)); !errors.Is(err, unix.ENOENT) {
				t.Fatalf("the inspected mount: %v, want gone", err)
			}
			r.requireVictim(t)
			requireNoStash(t)
			for _, mp := range mountsUnder(r.root) {
				if mp != r.root && mp != r.victim && mp != filepath.Join(r.root, "home/a") {
					t.Errorf("left mounted: %s (the fence?)", mp)
				}
			}
		})
	}
}

// containsEvent reports whether some event of stage says what.
func containsEvent(evs []Event, stage Stage, what string) bool {
	for _, ev := range evs {
		if ev.Stage == stage && strings.Contains(EventWords(ev), what) {
			return true
		}
	}
	return false
}

// TestRollbackRacesARedirect: the attack while the fence is up, then a
// cancel: the rollback works from the directory fds kept since fencing,
// so it puts the inspected mount back in its place (its parent mount
// again, the fence gone, no stash left) and leaves the victim alone,
// under both fences. Before, it reopened the target by path, reached the
// victim through the link and failed, leaving the fence up.
func TestRollbackRacesARedirect(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := "beneath-swap fence"
		if shared {
			name = "over-mount fence"
		}
		t.Run(name, func(t *testing.T) {
			r := newRedirect(t, shared)
			m := mountAt(t, r.target)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sys := &fenceHook{System: realSystem(t), hook: func() {
				r.attack(t)
				cancel()
			}}
			u := New(sys)
			p, err := u.Prepare(ctx, Plan{Target: m, Mode: ModeStaged, Interval: 50 * time.Millisecond, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			evs := collect(u.Run(ctx, p))
			t.Logf("events:\n%s", dumpEvents(evs))
			res, runErr := result(t, evs)
			if !errors.Is(runErr, ErrCancelled) || res.Gone || !containsEvent(evs, StageRollback, "everything is as it was") {
				t.Fatalf("want a clean rollback after the cancel: %v %+v", runErr, res)
			}
			st, err := mountapi.StatMount(uint64(m.ID))
			if err != nil || st.ParentUnique != uint64(m.ParentID) {
				t.Fatalf("the mount after the rollback: parent %d %v, want back on %d", st.ParentUnique, err, m.ParentID)
			}
			for _, mp := range mountsUnder(r.root) {
				if mp != r.root && mp != r.victim && mp != r.target && mp != filepath.Join(r.root, "home/a") {
					t.Errorf("left mounted: %s (the fence?)", mp)
				}
			}
			if ids := mountIDs(t, r.target); len(ids) != 1 || ids[0] != m.ID {
				t.Errorf("at %s: mounts %v, want just %d (the fence is gone)", r.target, ids, m.ID)
			}
			requireNoStash(t)
			r.requireVictim(t)
		})
	}
}

// TestStackedTopMount: a mount stacked on another at the same mount point
// sits on the lower one, while the directory of its mount point lies on
// the parent of the lowest: the anchor finds it all the same, and lazy,
// force and expire (both attempts) take the top mount and leave the one
// beneath in place.
func TestStackedTopMount(t *testing.T) {
	for _, mode := range []string{"lazy", "force", "expire"} {
		t.Run(mode, func(t *testing.T) {
			dir := testns.Tmpfs(t, "")
			lower := mountAt(t, dir)
			if err := unix.Mount("over", dir, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			top := mountAt(t, dir)
			if top.ParentID != lower.ID {
				t.Fatalf("the over-mount's parent is %d, want the lower mount %d", top.ParentID, lower.ID)
			}
			u := realUnmounter(t)
			var err error
			switch mode {
			case "lazy":
				err = u.Lazy(context.Background(), &top)
			case "force":
				err = u.Force(context.Background(), &top)
			case "expire":
				var res ExpireResult
				if res, err = u.Expire(context.Background(), &top); err == nil && res.Marked {
					res, err = u.Expire(context.Background(), &top)
				}
				if err == nil && !res.Gone {
					t.Fatalf("two expire attempts: %+v", res)
				}
			}
			if err != nil {
				t.Fatalf("%s of the top mount: %v", mode, err)
			}
			if ids := mountIDs(t, dir); len(ids) != 1 || ids[0] != lower.ID {
				t.Fatalf("at %s after the %s: %v, want just the lower mount %d", dir, mode, ids, lower.ID)
			}
		})
	}
}

// TestAnchoredActsOnADeadServer: the anchor (the mount point's directory),
// the re-check (statx of the mount point with AT_STATX_DONT_SYNC) and
// umount2 do not wait on a FUSE daemon that no longer answers (stopped):
// expire (both attempts), lazy and force of an idle bindfs mount finish,
// and the mount is gone. Each is also bounded (callLimit), so a call that
// did block would fail instead of hanging the test.
func TestAnchoredActsOnADeadServer(t *testing.T) {
	for _, mode := range []string{"expire", "lazy", "force"} {
		t.Run(mode, func(t *testing.T) {
			fs := testns.Bindfs(t, t.TempDir())
			m := mountAt(t, fs.Dir)
			fs.Stop(t)
			t.Cleanup(func() { fs.Cont(t) })
			u := realUnmounter(t)
			start := time.Now()
			var err error
			switch mode {
			case "expire":
				var res ExpireResult
				if res, err = u.Expire(context.Background(), &m); err == nil && res.Marked {
					res, err = u.Expire(context.Background(), &m)
				}
				if err == nil && !res.Gone {
					t.Fatalf("two expire attempts: %+v", res)
				}
			case "lazy":
				err = u.Lazy(context.Background(), &m)
			case "force":
				err = u.Force(context.Background(), &m)
			}
			took := time.Since(start)
			t.Logf("%s of a FUSE mount whose daemon is stopped: %v", mode, took)
			if err != nil {
				t.Fatalf("%s: %v (after %v)", mode, err, took)
			}
			if took > callLimit {
				t.Errorf("%s took %v", mode, took)
			}
			if _, err := mountapi.StatMount(uint64(m.ID)); !errors.Is(err, unix.ENOENT) {
				t.Fatalf("the FUSE mount: %v, want gone", err)
			}
		})
	}
}
