package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"mounttop/inspect"
	"mounttop/internal/cli"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// scanFlags are the flags every scanning subcommand shares.
type scanFlags struct {
	proc    string
	timeout time.Duration
	json    bool
}

func scanFlagsFrom(a *cli.Parsed) scanFlags {
	return scanFlags{proc: a.String("proc"), timeout: a.Duration("timeout"), json: a.Bool("json")}
}

func (f *scanFlags) scan(opts ...inspect.Option) (*inspect.Snapshot, error) {
	in, err := inspect.New(f.proc, opts...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return in.Scan(ctx)
}

func runList(_ *cli.Program, a *cli.Parsed) error {
	f := scanFlagsFrom(a)
	if len(a.Pos) > 0 {
		return usagef("list: unexpected argument %s", termsafe.Quote(a.Pos[0]))
	}
	snap, err := f.scan(inspect.WithDetail(inspect.DetailCounts))
	if err != nil {
		return err
	}
	left := unmount.FindLeftovers(context.Background(), snap)
	if f.json {
		out := listJSON(snap)
		out.Leftovers = leftoversJSON(left)
		return writeJSON(os.Stdout, out)
	}
	writeListText(os.Stdout, snap)
	writeLeftoversText(os.Stdout, left)
	return nil
}

// column is one column of `list`'s text output, in the manner of findmnt's
// infos[] table: one place says what a column is and how it is drawn.
type column struct {
	name  string
	value func(s *inspect.Snapshot, m *inspect.Mount, depth int) string
}

var listColumns = []column{
	{"TARGET", func(_ *inspect.Snapshot, m *inspect.Mount, depth int) string {
		s := strings.Repeat("  ", depth) + termsafe.Text(m.Mountpoint)
		if m.Hidden {
			s += " (hidden: the path leads to another mount; reach it by --id)"
		}
		return s
	}},
	{"SOURCE", func(_ *inspect.Snapshot, m *inspect.Mount, _ int) string { return termsafe.Text(m.Source) }},
	{"FSTYPE", func(_ *inspect.Snapshot, m *inspect.Mount, _ int) string { return termsafe.Text(m.FSType) }},
	{"MODE", func(_ *inspect.Snapshot, m *inspect.Mount, _ int) string {
		if m.ReadOnly() {
			return "ro"
		}
		return "rw"
	}},
	{"PROPAGATION", func(_ *inspect.Snapshot, m *inspect.Mount, _ int) string { return m.Propagation.String() }},
	{"ID", func(_ *inspect.Snapshot, m *inspect.Mount, _ int) string { return fmt.Sprint(m.OldID) }},
	{"HOLDERS", func(s *inspect.Snapshot, m *inspect.Mount, _ int) string { return fmt.Sprint(len(s.HoldersOf(m.ID))) }},
	{"AUTOMOUNT", func(_ *inspect.Snapshot, m *inspect.Mount, _ int) string {
		if m.Automount == nil {
			return "-"
		}
		return termsafe.Text(m.Automount.Cell())
	}},
}

func writeListText(w io.Writer, snap *inspect.Snapshot) {
	fmt.Fprintln(w, "mount namespace "+namespaceLine(snap))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, c := range listColumns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.name)
	}
	fmt.Fprintln(tw)
	var walk func(id inspect.MountID, depth int)
	seen := map[inspect.MountID]bool{}
	walk = func(id inspect.MountID, depth int) {
		m, ok := snap.Mount(id)
		if !ok || seen[id] {
			return
		}
		seen[id] = true
		for i, c := range listColumns {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c.value(snap, m, depth))
		}
		fmt.Fprintln(tw)
		for _, c := range m.Children {
			walk(c, depth+1)
		}
	}
	for _, r := range snap.Roots() {
		walk(r, 0)
	}
	tw.Flush()
	writeWarnings(os.Stderr, snap.Warnings)
}

// namespaceLine names our mount namespace and whether it is the host's.
func namespaceLine(snap *inspect.Snapshot) string {
	switch host, known := snap.IsHost(snap.MountNS); {
	case snap.MountNS == 0:
		return "unknown (/proc/self/ns/mnt unreadable)"
	case !known || host:
		return snap.NamespaceName(snap.MountNS)
	}
	return fmt.Sprintf("mnt:[%d], not the host's (pid 1's is mnt:[%d])", snap.MountNS, snap.HostNS)
}

// nsJSON says which mount namespace a listing is of: mnt_ns ours,
// host_mnt_ns pid 1's (0: unreadable), host whether ours is the host's
// (null: unknown).
type nsJSON struct {
	MountNS uint64 `json:"mnt_ns"`
	HostNS  uint64 `json:"host_mnt_ns"`
	Host    *bool  `json:"host"`
}

func toNSJSON(snap *inspect.Snapshot) nsJSON {
	j := nsJSON{MountNS: snap.MountNS, HostNS: snap.HostNS}
	if host, known := snap.IsHost(snap.MountNS); known {
		j.Host = &host
	}
	return j
}

func writeWarnings(w io.Writer, ws []inspect.Warning) {
	for _, warn := range ws {
		fmt.Fprintln(w, "mounttop: warning: "+termsafe.Text(warn.String()))
	}
}

// JSON shapes: field names are a stable interface for scripts; add, never
// rename.
type mountJSON struct {
	ID             int            `json:"id"`
	UniqueID       uint64         `json:"unique_id"`
	ParentID       int            `json:"parent_id"`
	ParentUniqueID uint64         `json:"parent_unique_id"`
	Mountpoint     termsafe.Name  `json:"mountpoint"`
	Root           termsafe.Name  `json:"root"`
	FSType         termsafe.Name  `json:"fstype"`
	Source         termsafe.Name  `json:"source"`
	Device         string         `json:"device"`
	Options        termsafe.Name  `json:"options"`
	Propagation    string         `json:"propagation"`
	ReadOnly       bool           `json:"read_only"`
	Detached       bool           `json:"detached"`
	Hidden         bool           `json:"hidden"` // shadowed: no path leads to it
	Automount      *automountJSON `json:"automount,omitempty"`
	Holders        *int           `json:"holders,omitempty"`
	KernelHolders  *int           `json:"kernel_holders,omitempty"`
	Copies         *int           `json:"other_namespace_copies,omitempty"`
}

// automountJSON is what mounts a mount again on access (inspect.Automount):
// by "autofs", "systemd" or "kernel"; timeout_s null when unknown, 0 never.
type automountJSON struct {
	By        string        `json:"by"`
	Kind      string        `json:"kind"`
	Trigger   bool          `json:"trigger"`
	TriggerID uint64        `json:"trigger_unique_id,omitempty"`
	TimeoutS  *float64      `json:"timeout_s"`
	PGrp      int           `json:"pgrp,omitempty"`
	Daemon    termsafe.Name `json:"daemon,omitempty"`
	Unit      termsafe.Name `json:"unit,omitempty"`
	Note      string        `json:"note,omitempty"`
	Warning   termsafe.Name `json:"warning"`
}

func toAutomountJSON(m *inspect.Mount) *automountJSON {
	a := m.Automount
	if a == nil {
		return nil
	}
	j := &automountJSON{By: a.By, Kind: a.Kind, Trigger: a.Trigger, TriggerID: uint64(a.TriggerID), PGrp: a.PGrp,
		Daemon: termsafe.Name(a.Daemon), Unit: termsafe.Name(a.Unit), Note: a.Note, Warning: termsafe.Name(a.Warning(m.Mountpoint))}
	if a.TimeoutKnown {
		secs := a.Timeout.Seconds()
		j.TimeoutS = &secs
	}
	return j
}

type listOut struct {
	nsJSON
	UniqueIDs bool            `json:"unique_ids"`
	Mounts    []mountJSON     `json:"mounts"`
	Processes int             `json:"processes_scanned"`
	Warnings  []termsafe.Name `json:"warnings"`
	// Leftovers are the fences killed runs left (unmount.FindLeftovers).
	Leftovers []leftoverJSON `json:"leftovers"`
}

func toMountJSON(m *inspect.Mount) mountJSON {
	return mountJSON{
		ID: m.OldID, UniqueID: uint64(m.ID), ParentID: m.OldParentID, ParentUniqueID: uint64(m.ParentID),
		Mountpoint: termsafe.Name(m.Mountpoint), Root: termsafe.Name(m.Root), FSType: termsafe.Name(m.FSType),
		Source: termsafe.Name(m.Source), Device: m.Device(), Options: termsafe.Name(m.Options),
		Propagation: m.Propagation.String(), ReadOnly: m.ReadOnly(), Detached: m.Detached,
		Hidden: m.Hidden, Automount: toAutomountJSON(m),
	}
}

func listJSON(snap *inspect.Snapshot) listOut {
	out := listOut{nsJSON: toNSJSON(snap), UniqueIDs: snap.UniqueIDs, Mounts: []mountJSON{}, Processes: snap.Processes, Warnings: warningsJSON(snap.Warnings)}
	for i := range snap.Mounts {
		m := &snap.Mounts[i]
		j := toMountJSON(m)
		n, k, c := len(snap.HoldersOf(m.ID)), len(snap.Kernel[m.ID]), len(snap.Copies(m.ID))
		j.Holders, j.KernelHolders, j.Copies = &n, &k, &c
		out.Mounts = append(out.Mounts, j)
	}
	return out
}

// warningsJSON carries each warning like a name (termsafe.JSON): a warning
// quotes paths and other text from the system, and encoding/json would
// pass C1 controls and bidi overrides through raw.
func warningsJSON(ws []inspect.Warning) []termsafe.Name {
	out := []termsafe.Name{}
	for _, w := range ws {
		out = append(out, termsafe.Name(w.String()))
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func runHolders(_ *cli.Program, a *cli.Parsed) error {
	f := scanFlagsFrom(a)
	byID := a.Uint("id")
	if len(a.Pos) != 1 && !(byID != 0 && len(a.Pos) == 0) {
		return usagef("holders: give exactly one PATH, or --id (see mounttop holders --help)")
	}
	in, err := inspect.New(f.proc)
	if err != nil {
		return usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	id := inspect.MountID(byID)
	if byID == 0 {
		table, err := in.Mounts(ctx)
		if err != nil {
			return err
		}
		target, err := table.Resolve(a.Pos[0])
		if err != nil {
			return usagef("holders: %v", err)
		}
		id = target.ID
	}
	snap, err := f.scan(inspect.WithFocus(id))
	if err != nil {
		return err
	}
	m, ok := snap.Mount(id)
	if !ok {
		if byID != 0 {
			return usagef("holders: no mount with unique ID %d (in this namespace or detached and held)", byID)
		}
		return fmt.Errorf("holders: the mount went away during the scan")
	}
	if f.json {
		return writeJSON(os.Stdout, holdersJSON(snap, m))
	}
	writeHoldersText(os.Stdout, snap, m)
	return nil
}

type lockJSON struct {
	Type   string `json:"type"`
	Mode   string `json:"mode"`
	Start  string `json:"start"`
	End    string `json:"end"`
	Waiter bool   `json:"waiter,omitempty"`
}

type useJSON struct {
	Kind    string        `json:"kind"`
	FD      *int          `json:"fd,omitempty"`
	TID     int           `json:"tid,omitempty"`
	Path    termsafe.Name `json:"path"`
	Mode    string        `json:"mode,omitempty"`
	Deleted bool          `json:"deleted"`
	Inode   uint64        `json:"inode,omitempty"`
	Start   string        `json:"start,omitempty"`
	End     string        `json:"end,omitempty"`
	Lock    *lockJSON     `json:"lock,omitempty"`
}

type holderJSON struct {
	PID       int             `json:"pid"`
	Cgroup    termsafe.Name   `json:"cgroup,omitempty"`
	Unit      termsafe.Name   `json:"unit,omitempty"`
	Container string          `json:"container,omitempty"`
	Comm      termsafe.Name   `json:"comm"`
	Cmdline   []termsafe.Name `json:"cmdline"`
	UID       int             `json:"uid"`
	User      termsafe.Name   `json:"user"`
	State     string          `json:"state"`
	Started   time.Time       `json:"started"`
	Uses      []useJSON       `json:"uses"`
}

type holdersOut struct {
	nsJSON
	Mount           mountJSON       `json:"mount"`
	Holders         []holderJSON    `json:"holders"`
	KernelHolders   []kernelJSON    `json:"kernel_holders"`
	OtherNamespaces []copyJSON      `json:"other_namespaces"`
	SameFilesystem  []mountJSON     `json:"same_filesystem"`
	Warnings        []termsafe.Name `json:"warnings"`
}

type kernelJSON struct {
	Kind   string        `json:"kind"`
	Name   termsafe.Name `json:"name"`
	Path   termsafe.Name `json:"path,omitempty"`
	PID    int           `json:"pid,omitempty"`
	Action termsafe.Name `json:"action"` // names the device, mount point or entry it acts on
	// A stacking filesystem's layers on this mount ("upperdir=/t/up")
	// and the mount namespace it is mounted in (absent: ours).
	Layers    []termsafe.Name `json:"layers,omitempty"`
	Namespace uint64          `json:"mnt_ns,omitempty"`
}

func toKernelJSON(k inspect.KernelHolder) kernelJSON {
	j := kernelJSON{Kind: k.Kind, Name: termsafe.Name(k.Name), Path: termsafe.Name(k.Path), PID: k.PID, Action: termsafe.Name(k.Action), Namespace: k.Namespace}
	for _, l := range k.Layers {
		j.Layers = append(j.Layers, termsafe.Name(l.String()))
	}
	return j
}

// copyJSON is a mount of the same filesystem in another mount namespace.
type copyJSON struct {
	Namespace  uint64       `json:"mnt_ns"`
	PIDs       []int        `json:"pids"`
	Mount      mountJSON    `json:"mount"`
	Holders    []holderJSON `json:"holders"`
	Propagates bool         `json:"propagates"`
	Host       bool         `json:"host"` // the copy is in the host's mount namespace (pid 1's)
}

func holdersJSON(snap *inspect.Snapshot, m *inspect.Mount) holdersOut {
	out := holdersOut{nsJSON: toNSJSON(snap), Mount: toMountJSON(m), Holders: []holderJSON{}, SameFilesystem: []mountJSON{}, Warnings: warningsJSON(snap.Warnings)}
	out.Holders = holdersToJSON(snap.HoldersOf(m.ID))
	out.KernelHolders = []kernelJSON{}
	for _, k := range snap.Kernel[m.ID] {
		out.KernelHolders = append(out.KernelHolders, toKernelJSON(k))
	}
	out.OtherNamespaces = []copyJSON{}
	for _, c := range snap.Copies(m.ID) {
		out.OtherNamespaces = append(out.OtherNamespaces, copyJSON{Namespace: c.Namespace.Inode, PIDs: c.Namespace.PIDs,
			Mount: toMountJSON(c.Mount), Holders: holdersToJSON(c.Holders), Propagates: c.Propagates, Host: c.Namespace.Host})
	}
	for _, o := range snap.SameFilesystem(m.ID) {
		out.SameFilesystem = append(out.SameFilesystem, toMountJSON(o))
	}
	return out
}

func writeHoldersText(w io.Writer, snap *inspect.Snapshot, m *inspect.Mount) {
	holders := snap.HoldersOf(m.ID)
	fmt.Fprintf(w, "%s  %s  %s  (mount %d, unique %d)\n", termsafe.Text(m.Mountpoint), termsafe.Text(m.FSType),
		termsafe.Text(m.Source), m.OldID, uint64(m.ID))
	if m.Hidden {
		fmt.Fprintln(w, "hidden: the path leads to another mount (mounted over it or over a directory above it); this one is reached by --id only")
	}
	if a := m.Automount; a != nil {
		fmt.Fprintln(w, "automount: "+termsafe.Text(a.Warning(m.Mountpoint)))
	}
	if len(holders) == 0 {
		fmt.Fprintln(w, "no process holds it")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(holders) > 0 {
		fmt.Fprintln(tw, "PID\tUSER\tCOMM\tUSE\tARGS / PATH")
	}
	for _, h := range holders {
		parts := make([]string, len(h.Cmdline))
		for i, a := range h.Cmdline {
			parts[i] = termsafe.Text(a)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t\t%s\n", h.PID, termsafe.Text(h.User), termsafe.Text(h.Comm), strings.Join(parts, " "))
		uses := append([]inspect.Use(nil), h.Uses...)
		sort.SliceStable(uses, func(i, j int) bool { return uses[i].Kind < uses[j].Kind })
		for _, u := range uses {
			fmt.Fprintf(tw, "\t\t\t%s\t%s\n", useLabel(u), termsafe.Text(u.Path)+useSuffix(u))
		}
	}
	tw.Flush()
	if others := snap.SameFilesystem(m.ID); len(others) > 0 {
		fmt.Fprintln(w, "same filesystem also mounted at:")
		for _, o := range others {
			fmt.Fprintf(w, "  %s (mount %d, %d holders)\n", termsafe.Text(o.Mountpoint), o.OldID, len(snap.HoldersOf(o.ID)))
		}
	}
	if ks := snap.Kernel[m.ID]; len(ks) > 0 {
		fmt.Fprintln(w, "held by the kernel:")
		for _, k := range ks {
			held := termsafe.Text(k.Path)
			if len(k.Layers) > 0 {
				var ls []string
				for _, l := range k.Layers {
					ls = append(ls, termsafe.Text(l.String()))
				}
				held = "layers " + strings.Join(ls, " ")
			}
			if k.Namespace != 0 {
				held += fmt.Sprintf(" (in mount namespace mnt:[%d])", k.Namespace)
			}
			fmt.Fprintf(w, "  %s %s  %s  -> %s\n", termsafe.Text(k.Kind), termsafe.Text(k.Name), held, termsafe.Text(k.Action))
		}
	}
	for _, c := range snap.Copies(m.ID) {
		why := "a private copy: our umount succeeds, but the filesystem stays alive while it is mounted there"
		if c.Propagates {
			why = "a propagation peer: our umount propagates there, and fails with EBUSY while the copy is busy"
		}
		fmt.Fprintf(w, "also mounted in mount namespace %s at %s (%s); processes there: %s\n", snap.NamespaceName(c.Namespace.Inode),
			termsafe.Text(c.Mount.Mountpoint), why, intsText(c.Namespace.PIDs, 10))
		for _, h := range c.Holders {
			for _, u := range h.Uses {
				fmt.Fprintf(w, "  pid %d %s: %s %s\n", h.PID, termsafe.Text(h.Comm), useLabel(u), termsafe.Text(u.Path))
			}
		}
	}
	writeWarnings(os.Stderr, snap.Warnings)
}

func intsText(v []int, max int) string {
	var parts []string
	for i, n := range v {
		if i == max {
			parts = append(parts, fmt.Sprintf("… %d more", len(v)-max))
			break
		}
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, ", ")
}

func useLabel(u inspect.Use) string {
	switch u.Kind {
	case inspect.UseFD:
		if u.TID != 0 {
			return fmt.Sprintf("fd %d %s (thread %d)", u.FD, u.Access, u.TID)
		}
		return fmt.Sprintf("fd %d %s", u.FD, u.Access)
	case inspect.UseLock:
		return fmt.Sprintf("lock %s %s", u.Lock.Type, strings.ToLower(u.Lock.Mode))
	case inspect.UseMmap:
		return "mmap"
	case inspect.UseCwd, inspect.UseRoot:
		if u.TID != 0 {
			return fmt.Sprintf("%s (thread %d)", u.Kind, u.TID)
		}
	}
	return u.Kind.String()
}

func useSuffix(u inspect.Use) string {
	s := ""
	if u.Kind == inspect.UseMmap {
		s = fmt.Sprintf("  %x-%x", u.Start, u.End)
	}
	if u.Deleted {
		s += "  (deleted)"
	}
	if u.Lock != nil && u.Lock.Waiter {
		s += "  (waiting)"
	}
	return s
}

func holdersToJSON(holders []inspect.Holder) []holderJSON {
	out := []holderJSON{}
	for _, h := range holders {
		hj := holderJSON{PID: h.PID, Cgroup: termsafe.Name(h.Cgroup), Unit: termsafe.Name(h.Unit), Container: h.Container, Comm: termsafe.Name(h.Comm), Cmdline: []termsafe.Name{}, UID: h.UID,
			User: termsafe.Name(h.User), State: string(h.State), Started: h.Started, Uses: []useJSON{}}
		for _, a := range h.Cmdline {
			hj.Cmdline = append(hj.Cmdline, termsafe.Name(a))
		}
		for _, u := range h.Uses {
			uj := useJSON{Kind: u.Kind.String(), TID: u.TID, Path: termsafe.Name(u.Path), Mode: u.Access.String(), Deleted: u.Deleted, Inode: u.Inode}
			if u.FD >= 0 {
				fd := u.FD
				uj.FD = &fd
			}
			if u.Kind == inspect.UseMmap {
				uj.Start, uj.End = fmt.Sprintf("0x%x", u.Start), fmt.Sprintf("0x%x", u.End)
			}
			if u.Lock != nil {
				uj.Lock = &lockJSON{Type: u.Lock.Type, Mode: u.Lock.Mode, Start: u.Lock.Start, End: u.Lock.End, Waiter: u.Lock.Waiter}
			}
			hj.Uses = append(hj.Uses, uj)
		}
		out = append(out, hj)
	}
	return out
}
