package ui

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"mounttop/inspect"
)

// Refresher replays background refreshes on a view without a terminal, for
// benchmarks of what a refresh costs the interactive view (bench/ measures
// it on its workloads): each Refresh is what the program does when a scan
// result arrives, Update with it and then View.
type Refresher struct {
	m   Model
	gen int
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
	r.m.gen++
	r.m.scanning = true
	next, _ := r.m.Update(scanDoneMsg{gen: r.m.gen, snap: snap})
	r.m = next.(Model)
	return r.m.View()
}
