package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"mounttop/bench/workload"
)

// record is one size's line of a results file (writeResults).
type record struct {
	Size    workload.Size       `json:"size"`
	Holders int                 `json:"holders"`
	Tools   map[string]*summary `json:"tools"`
	View    *viewResult         `json:"view"`
	Correct bool                `json:"correct"`
	Load0   string              `json:"load_before"`
	Load1   string              `json:"load_after"`
}

// tableOrder is the order of the tools in the table.
var tableOrder = []string{floorT, mtList, mtListProcfs, mtHolders, fuserM, lsofF}

// printTable prints the one table of a results file: per size, each
// tool's median wall time, its ratios to the floor and to fuser -m, its
// median CPU and peak memory; the view's idle cost where it was measured;
// then how each shape grows from its half to its full size.
func printTable(out io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintln(out, "| size | command | median | / floor | / fuser -m | median CPU | peak memory |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|")
	for _, r := range recs {
		floor, fuser := r.Tools[floorT], r.Tools[fuserM]
		for _, name := range tableOrder {
			s := r.Tools[name]
			if s == nil {
				continue
			}
			fmt.Fprintf(out, "| %s | `%s` | %s | %s | %s | %s | %.1f MiB |\n", r.Size.Name, display(name), ms(s.Median),
				div(s.Median, floor), div(s.Median, fuser), ms(s.CPU), float64(s.PeakRSS)/1024)
		}
		if v := r.View; v != nil {
			fmt.Fprintf(out, "| %s | `mounttop MOUNT` (view, idle %v) | keys: median %s, max %s | | | %.1f%% of a core | %.1f MiB (VmHWM) |\n",
				r.Size.Name, v.Idle.Round(time.Second), ms(v.KeyMedian), ms(v.KeyMax), 100*v.CPUShare, float64(v.VmHWM)/1024)
		}
	}
	fmt.Fprintln(out)
	for _, r := range recs {
		if !r.Correct {
			fmt.Fprintf(out, "%s: the tools' answers did NOT all agree with the plan (see the log)\n", r.Size.Name)
		}
	}
	// Growth: each shape's full size against its half (twice the
	// processes or twice the fds per process).
	bySize := map[string]record{}
	for _, r := range recs {
		bySize[r.Size.Name] = r
	}
	var lines []string
	for _, r := range recs {
		half, ok := bySize[r.Size.Name+"-half"]
		if !ok {
			continue
		}
		var parts []string
		for _, name := range tableOrder {
			a, b := half.Tools[name], r.Tools[name]
			if a == nil || b == nil {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s CPU x%.2f (wall x%.2f), memory x%.2f", strings.Fields(name)[0]+suffix(name),
				float64(b.CPU)/float64(a.CPU), float64(b.Median)/float64(a.Median), float64(b.PeakRSS)/float64(a.PeakRSS)))
		}
		lines = append(lines, fmt.Sprintf("- %s (%d -> %d processes, %d -> %d fds): %s", r.Size.Name,
			half.Size.Procs, r.Size.Procs, half.Size.FDs, r.Size.FDs, strings.Join(parts, "; ")))
	}
	if len(lines) > 0 {
		fmt.Fprintln(out, "Growth from half to full size (x2 is linear; CPU is what a loaded machine does not stretch):")
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
	}
	return nil
}

// suffix tells mounttop's commands apart in the growth lines.
func suffix(name string) string {
	switch name {
	case mtList:
		return " list"
	case mtListProcfs:
		return " list (procfs)"
	case mtHolders:
		return " holders"
	}
	return ""
}

func div(a time.Duration, b *summary) string {
	if b == nil || b.Median == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b.Median))
}
