package ui

import (
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
)

// Refresher replays background refreshes on a view without a terminal, for
// benchmarks of what a refresh costs the interactive view (bench/ measures
// it on its workloads): each Refresh is what the program does when a scan
// result arrives, Update with it and then View.
type Refresher struct {
	m Model
}

// NewRefresher makes a view of width×height cells that selects the mount
// at start (if any) on the first snapshot.
func NewRefresher(width, height int, start string) *Refresher {
	m := New(Options{StartPath: start, Now: time.Now})
	next, _ := m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	return &Refresher{m: next.(Model)}
}

// Refresh shows snap as a refresh would and returns the rendered screen.
func (r *Refresher) Refresh(snap *inspect.Snapshot) string {
	r.m.scan.gen++
	r.m.scan.running = true
	next, _ := r.m.Update(scanDoneMsg{gen: r.m.scan.gen, snap: snap})
	r.m = next.(Model)
	return r.m.View()
}

// syntheticSnapshot is a system of n mounts (/srv/volNNNN, most of them
// below one of the first ten) and perMount holders on every other mount,
// each with an fd, a cwd and a mapping there.
func syntheticSnapshot(n, perMount int) *inspect.Snapshot {
	root := mnt(1, 1, "/", "ext4", "/dev/vda1", 1)
	ms := []inspect.Mount{root}
	hs := map[inspect.MountID][]inspect.Holder{}
	pid := 1000
	for i := 1; i < n; i++ {
		id := inspect.MountID(1 + i)
		parent := inspect.MountID(1)
		if i > 10 {
			parent = inspect.MountID(2 + (i-1)%10) // under one of the first ten
		}
		mp := fmt.Sprintf("/srv/vol%04d", i)
		if parent != 1 {
			mp = fmt.Sprintf("/srv/vol%04d/sub%04d", int(parent)-1, i)
		}
		ms = append(ms, mnt(id, parent, mp, "tmpfs", fmt.Sprintf("vol%d", i), 100+i))
		if i%2 == 0 {
			for j := 0; j < perMount; j++ {
				pid++
				hs[id] = append(hs[id], inspect.Holder{PID: pid, Comm: "worker", Cmdline: []string{"/usr/bin/worker", "--id", fmt.Sprint(j)},
					User: "svc", State: 'S', Uses: []inspect.Use{
						{Kind: inspect.UseFD, FD: 3, Path: mp + "/data", Access: inspect.AccessReadWrite},
						{Kind: inspect.UseCwd, FD: -1, Path: mp},
						{Kind: inspect.UseMmap, FD: -1, Path: mp + "/lib.so", Start: 0x7f0000000000, End: 0x7f0000100000},
					}})
			}
		}
	}
	return inspect.NewSnapshot(ms, hs, nil)
}

// BenchmarkRefresh is the view's CPU per background refresh (Update with
// a scan result, then View) at an 80x24 and a 200x60 terminal.
func BenchmarkRefresh(b *testing.B) {
	for _, size := range []struct {
		name            string
		mounts, holders int
	}{{"small-50mounts", 50, 4}, {"large-2000mounts", 2000, 10}} {
		snap := syntheticSnapshot(size.mounts, size.holders)
		for _, term := range [][2]int{{80, 24}, {200, 60}} {
			b.Run(fmt.Sprintf("%s/%dx%d", size.name, term[0], term[1]), func(b *testing.B) {
				r := NewRefresher(term[0], term[1], "/srv/vol0002")
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if r.Refresh(snap) == "" {
						b.Fatal("empty screen")
					}
				}
			})
		}
	}
}
