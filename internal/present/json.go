package present

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// The JSON documents of `list --json` and `holders --json`. Field names
// are a stable interface for scripts: add, never rename. Every name from
// the system is a termsafe.Name (its exact bytes, safe on a terminal:
// termsafe.JSON), so it is escaped once, when it is encoded.

// NamespaceJSON says which mount namespace a listing is of: mnt_ns ours,
// host_mnt_ns pid 1's (0: unreadable), host whether ours is the host's
// (null: unknown).
type NamespaceJSON struct {
	MountNS uint64 `json:"mnt_ns"`
	HostNS  uint64 `json:"host_mnt_ns"`
	Host    *bool  `json:"host"`
}

// MountJSON is one mount.
type MountJSON struct {
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
	Automount      *AutomountJSON `json:"automount,omitempty"`
	Holders        *int           `json:"holders,omitempty"`
	KernelHolders  *int           `json:"kernel_holders,omitempty"`
	Copies         *int           `json:"other_namespace_copies,omitempty"`
}

// AutomountJSON is what mounts a mount again on access (inspect.Automount):
// by "autofs", "systemd" or "kernel"; timeout_s null when unknown, 0 never.
type AutomountJSON struct {
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

// ListJSON is `list --json`.
type ListJSON struct {
	NamespaceJSON
	UniqueIDs bool        `json:"unique_ids"`
	Mounts    []MountJSON `json:"mounts"`
	Processes int         `json:"processes_scanned"`
	// OpenFilesBy is how the processes' open files were read: "task_file
	// iterator" (one BPF pass) or "procfs" (a statx of each fd link).
	OpenFilesBy string          `json:"open_files_by"`
	Warnings    []termsafe.Name `json:"warnings"`
	// Leftovers are the fences killed runs left (unmount.FindLeftovers).
	Leftovers []LeftoverJSON `json:"leftovers"`
}

// LeftoverJSON is one fence a killed run left, in `list --json`.
type LeftoverJSON struct {
	Target   termsafe.Name `json:"target"`
	Kind     string        `json:"kind"` // "beneath-swap" or "over-mount"
	FenceID  uint64        `json:"fence_unique_id"`
	RealID   uint64        `json:"unique_id"` // the fenced filesystem's mount
	RealPath termsafe.Name `json:"real_path,omitempty"`
	Stash    termsafe.Name `json:"stash,omitempty"`
	RealGone bool          `json:"unmounted_already"`
	Maker    int           `json:"maker_pid,omitempty"`
	What     termsafe.Name `json:"what"`
	Rollback termsafe.Name `json:"rollback"` // the command that rolls it back
}

// HoldersJSON is `holders --json`.
type HoldersJSON struct {
	NamespaceJSON
	Mount           MountJSON       `json:"mount"`
	Holders         []HolderJSON    `json:"holders"`
	KernelHolders   []KernelJSON    `json:"kernel_holders"`
	OtherNamespaces []CopyJSON      `json:"other_namespaces"`
	SameFilesystem  []MountJSON     `json:"same_filesystem"`
	Warnings        []termsafe.Name `json:"warnings"`
}

// HolderJSON is a process holding a mount, with its uses of it: the one
// holder shape of every JSON document (holders, the journal, events).
type HolderJSON struct {
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
	Uses      []UseJSON       `json:"uses"`
}

// UseJSON is one use: kind "fd", "cwd", "root", "exe", "mmap" or "lock".
type UseJSON struct {
	Kind    string        `json:"kind"`
	FD      *int          `json:"fd,omitempty"`
	TID     int           `json:"tid,omitempty"`
	Path    termsafe.Name `json:"path"`
	Mode    string        `json:"mode,omitempty"`
	Deleted bool          `json:"deleted"`
	Inode   uint64        `json:"inode,omitempty"`
	Start   string        `json:"start,omitempty"`
	End     string        `json:"end,omitempty"`
	Lock    *LockJSON     `json:"lock,omitempty"`
}

// LockJSON is a file lock as /proc/locks gives it.
type LockJSON struct {
	Type   string `json:"type"`
	Mode   string `json:"mode"`
	Start  string `json:"start"`
	End    string `json:"end"`
	Waiter bool   `json:"waiter,omitempty"`
}

// KernelJSON is a holder that is not a process (inspect.KernelHolder).
type KernelJSON struct {
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

// CopyJSON is a mount of the same filesystem in another mount namespace.
type CopyJSON struct {
	Namespace  uint64       `json:"mnt_ns"`
	PIDs       []int        `json:"pids"`
	Mount      MountJSON    `json:"mount"`
	Holders    []HolderJSON `json:"holders"`
	Propagates bool         `json:"propagates"`
	Host       bool         `json:"host"` // the copy is in the host's mount namespace (pid 1's)
}

// WriteJSON writes v as one line of JSON, with <, > and & as they are.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// List is `list --json`'s document: every mount with its counts of
// holders, kernel holders and copies in other namespaces, and the fences
// killed runs left.
func List(snap *inspect.Snapshot, left []unmount.Leftover) ListJSON {
	out := ListJSON{NamespaceJSON: Namespace(snap), UniqueIDs: snap.UniqueIDs, Mounts: []MountJSON{}, Processes: snap.Processes, OpenFilesBy: snap.FilesBy.String(),
		Warnings: Warnings(snap.Warnings), Leftovers: Leftovers(left)}
	for i := range snap.Mounts {
		m := &snap.Mounts[i]
		j := Mount(m)
		n, k, c := len(snap.HoldersOf(m.ID)), len(snap.Kernel[m.ID]), len(snap.Copies(m.ID))
		j.Holders, j.KernelHolders, j.Copies = &n, &k, &c
		out.Mounts = append(out.Mounts, j)
	}
	return out
}

// HoldersOf is `holders --json`'s document for mount m.
func HoldersOf(snap *inspect.Snapshot, m *inspect.Mount) HoldersJSON {
	out := HoldersJSON{NamespaceJSON: Namespace(snap), Mount: Mount(m), Holders: Holders(snap.HoldersOf(m.ID)),
		KernelHolders: []KernelJSON{}, OtherNamespaces: []CopyJSON{}, SameFilesystem: []MountJSON{}, Warnings: Warnings(snap.Warnings)}
	for _, k := range snap.Kernel[m.ID] {
		out.KernelHolders = append(out.KernelHolders, Kernel(k))
	}
	for _, c := range snap.Copies(m.ID) {
		out.OtherNamespaces = append(out.OtherNamespaces, CopyJSON{Namespace: c.Namespace.Inode, PIDs: c.Namespace.PIDs,
			Mount: Mount(c.Mount), Holders: Holders(c.Holders), Propagates: c.Propagates, Host: c.Namespace.Host})
	}
	for _, o := range snap.SameFilesystem(m.ID) {
		out.SameFilesystem = append(out.SameFilesystem, Mount(o))
	}
	return out
}

// Namespace says which mount namespace snap is of.
func Namespace(snap *inspect.Snapshot) NamespaceJSON {
	j := NamespaceJSON{MountNS: snap.MountNS, HostNS: snap.HostNS}
	if host, known := snap.IsHost(snap.MountNS); known {
		j.Host = &host
	}
	return j
}

// Mount is one mount's JSON, without the counts (List adds them).
func Mount(m *inspect.Mount) MountJSON {
	return MountJSON{
		ID: m.OldID, UniqueID: uint64(m.ID), ParentID: m.OldParentID, ParentUniqueID: uint64(m.ParentID),
		Mountpoint: termsafe.Name(m.Mountpoint), Root: termsafe.Name(m.Root), FSType: termsafe.Name(m.FSType),
		Source: termsafe.Name(m.Source), Device: m.Device(), Options: termsafe.Name(m.Options),
		Propagation: m.Propagation.String(), ReadOnly: m.ReadOnly(), Detached: m.Detached,
		Hidden: m.Hidden, Automount: automount(m),
	}
}

func automount(m *inspect.Mount) *AutomountJSON {
	a := m.Automount
	if a == nil {
		return nil
	}
	j := &AutomountJSON{By: a.By.String(), Kind: a.Kind.String(), Trigger: a.Trigger, TriggerID: uint64(a.TriggerID), PGrp: a.PGrp,
		Daemon: termsafe.Name(a.Daemon), Unit: termsafe.Name(a.Unit), Note: scantext.AutomountNote(a), Warning: termsafe.Name(scantext.AutomountWarning(a, m.Mountpoint))}
	if a.TimeoutKnown {
		secs := a.Timeout.Seconds()
		j.TimeoutS = &secs
	}
	return j
}

// Warnings carries each warning like a name (termsafe.JSON): a warning
// quotes paths and other text from the system, and encoding/json would
// pass C1 controls and bidi overrides through raw.
func Warnings(ws []inspect.Warning) []termsafe.Name {
	out := []termsafe.Name{}
	for _, w := range ws {
		out = append(out, termsafe.Name(scantext.Warning(w)))
	}
	return out
}

// Kernel is a kernel holder's JSON.
func Kernel(k inspect.KernelHolder) KernelJSON {
	j := KernelJSON{Kind: k.Kind.String(), Name: termsafe.Name(scantext.KernelName(k)), Path: termsafe.Name(k.Path), PID: k.PID,
		Action: termsafe.Name(scantext.KernelHolderAction(k)), Namespace: k.Namespace}
	for _, l := range k.Layers {
		j.Layers = append(j.Layers, termsafe.Name(l.String()))
	}
	return j
}

// Holders is the JSON of processes holding a mount ([] for none).
func Holders(holders []inspect.Holder) []HolderJSON {
	out := []HolderJSON{}
	for _, h := range holders {
		out = append(out, Holder(h))
	}
	return out
}

// Holder is one holding process's JSON, with its uses.
func Holder(h inspect.Holder) HolderJSON {
	hj := HolderJSON{PID: h.PID, Cgroup: termsafe.Name(h.Cgroup), Unit: termsafe.Name(h.Unit), Container: h.Container,
		Comm: termsafe.Name(h.Comm), Cmdline: []termsafe.Name{}, UID: h.UID, User: termsafe.Name(h.User), State: string(h.State),
		Started: h.Started, Uses: []UseJSON{}}
	for _, a := range h.Cmdline {
		hj.Cmdline = append(hj.Cmdline, termsafe.Name(a))
	}
	for _, u := range h.Uses {
		hj.Uses = append(hj.Uses, Use(u))
	}
	return hj
}

// Use is one use's JSON.
func Use(u inspect.Use) UseJSON {
	uj := UseJSON{Kind: u.Kind.String(), TID: u.TID, Path: termsafe.Name(u.Path), Mode: u.Access.String(), Deleted: u.Deleted, Inode: u.Inode}
	if u.FD >= 0 {
		fd := u.FD
		uj.FD = &fd
	}
	if u.Kind == inspect.UseMmap {
		uj.Start, uj.End = fmt.Sprintf("0x%x", u.Start), fmt.Sprintf("0x%x", u.End)
	}
	if u.Lock != nil {
		uj.Lock = &LockJSON{Type: u.Lock.Type.String(), Mode: u.Lock.Mode.String(), Start: u.Lock.Start, End: u.Lock.End, Waiter: u.Lock.Waiter}
	}
	return uj
}

// Leftovers is the JSON of the fences killed runs left ([] for none).
func Leftovers(ls []unmount.Leftover) []LeftoverJSON {
	out := []LeftoverJSON{}
	for _, l := range ls {
		out = append(out, LeftoverJSON{Target: termsafe.Name(l.Fence.Target), Kind: l.Fence.Kind.String(), FenceID: uint64(l.Fence.FenceID),
			RealID: uint64(l.Fence.RealID), RealPath: termsafe.Name(l.Fence.RealPath), Stash: termsafe.Name(l.Fence.Stash), RealGone: l.RealGone,
			Maker: l.Maker, What: termsafe.Name(LeftoverWhat(l)), Rollback: termsafe.Name("mounttop umount --rollback-fence " + l.Fence.Target)})
	}
	return out
}
