package ui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"mounttop/inspect"
	"mounttop/unmount"
)

// fakeLeftovers reports one fence a killed run left until it is rolled
// back, and records the rollbacks.
type fakeLeftovers struct {
	mu       sync.Mutex
	list     []unmount.Leftover
	rolled   []unmount.Leftover
	failWith error
}

func (f *fakeLeftovers) Leftovers(ctx context.Context, snap *inspect.Snapshot) []unmount.Leftover {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]unmount.Leftover(nil), f.list...)
}

func (f *fakeLeftovers) RollbackLeftover(ctx context.Context, l unmount.Leftover) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rolled = append(f.rolled, l)
	if f.failWith != nil {
		return "", f.failWith
	}
	f.list = nil
	return "the filesystem is back at " + l.Fence.Target, nil
}

func (f *fakeLeftovers) rollbacks() []unmount.Leftover {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]unmount.Leftover(nil), f.rolled...)
}

var projectsFence = unmount.Leftover{Maker: 4711, Fence: unmount.Fence{Kind: unmount.FenceBeneath, Target: "/mnt/projects",
	FenceID: 0x99, RealID: idProjects, Stash: "/run/mounttop-fence-1", RealPath: "/run/mounttop-fence-1/mnt"}}

// TestLeftoverBannerAndRollback: a fence a killed run left shows as a
// banner naming where the filesystem is, K and the command; K asks first
// (the dialog starts on No), y rolls exactly that leftover back, and the
// rescan clears the banner.
func TestLeftoverBannerAndRollback(t *testing.T) {
	lf := &fakeLeftovers{list: []unmount.Leftover{projectsFence}}
	d := newDriver(t, Options{Leftovers: lf})
	d.send(tea.WindowSizeMsg{Width: 200, Height: 30})
	d.started()
	d.until("the banner", func(m Model) bool { return len(m.leftovers) == 1 })
	d.mustSee("! a fence left by a killed run covers /mnt/projects; the filesystem is at /run/mounttop-fence-1/mnt",
		"press K / run `mounttop umount --rollback-fence /mnt/projects`")
	d.key("K")
	d.mustSee("Roll back the fence at /mnt/projects?", "move the filesystem (mount", "back beneath the fence at /mnt/projects",
		"[ No ]", "(y) Yes, roll it back")
	d.key("enter")
	d.settle()
	if n := len(lf.rollbacks()); n != 0 || d.m.dialog != nil {
		t.Fatalf("No: %d rollbacks, dialog open %v", n, d.m.dialog != nil)
	}
	d.key("K", "y")
	d.until("the rollback's result", func(m Model) bool { return strings.HasPrefix(m.bar.status, "rolled back") })
	if got := lf.rollbacks(); len(got) != 1 || got[0] != projectsFence {
		t.Fatalf("rolled back %+v, want exactly %+v", got, projectsFence)
	}
	d.until("the banner to go", func(m Model) bool { return len(m.leftovers) == 0 && !m.scan.running })
	d.mustNotSee("a fence left by a killed run")
	d.mustSee("rolled back: the filesystem is back at /mnt/projects")
}

// TestLeftoverRollbackError: a refused rollback shows as an error, the
// banner stays; without a Leftovers finder K does nothing.
func TestLeftoverRollbackError(t *testing.T) {
	lf := &fakeLeftovers{list: []unmount.Leftover{projectsFence}, failWith: errors.New("refused: the fence is no longer the top mount")}
	d := newDriver(t, Options{Leftovers: lf})
	d.send(tea.WindowSizeMsg{Width: 200, Height: 30})
	d.started()
	d.until("the banner", func(m Model) bool { return len(m.leftovers) == 1 })
	d.key("K", "y")
	d.until("the error", func(m Model) bool { return m.bar.err != nil })
	d.mustSee("Error: rolling back the fence at /mnt/projects: refused: the fence is no longer the top mount", "a fence left by a killed run covers")

	plain := newDriver(t, Options{})
	plain.started()
	plain.key("K")
	if plain.m.dialog != nil || plain.sees("a fence left") {
		t.Fatal("K without a leftover finder opened something")
	}
}

// TestLeftoverBannerFits: with the banner (wrapped to at most 3 lines)
// every screen is exactly as high as the terminal and no wider.
func TestLeftoverBannerFits(t *testing.T) {
	d := newDriver(t, Options{Leftovers: &fakeLeftovers{list: []unmount.Leftover{projectsFence, projectsFence}}})
	d.started()
	d.until("the banner", func(m Model) bool { return len(m.leftovers) == 2 })
	for _, sz := range [][2]int{{80, 24}, {60, 12}, {200, 60}, {40, 10}} {
		d.send(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, screen := range []func(){func() {}, func() { d.key("K") }, func() { d.key("n") }} {
			screen()
			lines := strings.Split(d.m.View(), "\n")
			if len(lines) != sz[1] {
				t.Errorf("%dx%d: %d lines", sz[0], sz[1], len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > sz[0] {
					t.Errorf("%dx%d: line %d is %d wide", sz[0], sz[1], i, w)
				}
			}
		}
	}
	d.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	d.mustSee("(and 1 more: mounttop list)")
}
