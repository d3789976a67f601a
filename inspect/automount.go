package inspect

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Automount is what mounts a mount again after it goes, and what expires
// it by itself: the kernel's automount document (Documentation/filesystems/
// automount-support.rst) and autofs(5). An unmount of such a mount is
// undone by the next access to its path.
type Automount struct {
	// By is who mounts it on access: "autofs" (the automount daemon),
	// "systemd" (a systemd .automount unit: an autofs mount whose daemon
	// process group is pid 1), or "kernel" (a submount the filesystem
	// itself mounts on access and hangs on its expiry list: NFS crossing
	// into another export or a referral, CIFS DFS links, AFS cells and
	// volumes).
	By AutomountBy
	// Kind (autofs, systemd) is the autofs mount's type: "direct" (one
	// mount point), "indirect" (keys under a directory), "offset" (a
	// point inside a multi-mount map entry); for By "kernel", what kind
	// of submount the filesystem mounts ("AFS cell or volume mount point").
	Kind AutomountKind
	// Trigger: this mount is the autofs trigger itself (the daemon's or
	// systemd's); otherwise it is the filesystem mounted through the
	// trigger with ID TriggerID, or (By "kernel") by its parent.
	Trigger   bool
	TriggerID MountID
	// Timeout is the idle time after which it is expired without anyone
	// asking: autofs's timeout= (0: never), the NFS mount point timeout,
	// the fixed AFS and CIFS intervals; TimeoutKnown is false when it
	// cannot be told.
	Timeout      time.Duration
	TimeoutKnown bool
	PGrp         int    // autofs: the daemon's process group (pgrp=)
	Daemon       string // autofs: the command of that process group's leader, when readable
	Unit         string // systemd: the .automount unit the mount point's path names
	// ParentFSType is, for By "kernel", the filesystem type of the mount
	// it is a submount of: the table cannot tell whether the kernel
	// mounted it on access or someone mounted it there by hand
	// (present.AutomountNote says so).
	ParentFSType string
}

// AutomountBy is who mounts a mount again on access (Automount.By). Its
// text is the JSON value of `list --json`'s automount.by.
type AutomountBy string

const (
	ByAutofs  AutomountBy = "autofs"  // the automount daemon, through an autofs trigger
	BySystemd AutomountBy = "systemd" // a systemd .automount unit: autofs with pid 1 as daemon
	ByKernel  AutomountBy = "kernel"  // the filesystem itself (NFS, CIFS, AFS submounts)
)

func (b AutomountBy) String() string { return string(b) }

// AutomountKind is an autofs mount's type (autofs(5): direct, indirect,
// offset), or for a kernel submount what it is. Its text is the JSON value
// of `list --json`'s automount.kind.
type AutomountKind string

const (
	AutofsDirect   AutomountKind = "direct"   // one mount point per map entry
	AutofsIndirect AutomountKind = "indirect" // keys under a directory
	AutofsOffset   AutomountKind = "offset"   // a point inside a multi-mount map entry
)

func (k AutomountKind) String() string { return string(k) }

// kernelExpiry is how long an idle submount the kernel mounted on access
// stays, by filesystem type: NFS's is the sysctl fs.nfs.nfs_mountpoint_timeout
// (500 s by default, fs/nfs/namespace.c), AFS's a fixed 10 minutes
// (afs_mntpt_expiry_timeout, fs/afs/mntpt.c), CIFS's a fixed 500 s
// (fs/smb/client/namespace.c).
var kernelExpiry = map[string]struct {
	what   AutomountKind
	fixed  time.Duration
	sysctl string
}{
	"nfs":  {"NFS submount (another export crossed into, or a referral)", 0, "sys/fs/nfs/nfs_mountpoint_timeout"},
	"nfs4": {"NFS submount (another export crossed into, or a referral)", 0, "sys/fs/nfs/nfs_mountpoint_timeout"},
	"afs":  {"AFS cell or volume mount point", 10 * time.Minute, ""},
	"cifs": {"CIFS DFS link", 500 * time.Second, ""},
	"smb3": {"CIFS DFS link", 500 * time.Second, ""},
}

// markAutomounts fills Mount.Automount from the table (autofs mounts'
// options, the parent relationship, filesystem types) and a little of
// /proc (the autofs daemon's command, the NFS timeout). It walks no path.
//
// What the table cannot tell: whether a submount of NFS, CIFS or AFS was
// mounted by the kernel on access (on its expiry list) or by hand on top;
// a systemd unit's TimeoutIdleSec= other than through the autofs timeout
// systemd gives the kernel; whether an autofs daemon still runs.
func (in *Inspector) markAutomounts(s *Snapshot) {
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Detached {
			continue
		}
		if m.FSType == "autofs" {
			m.Automount = in.autofsTrigger(m)
			continue
		}
		p, ok := s.Mount(m.ParentID)
		if !ok || p.ID == m.ID {
			continue
		}
		if p.FSType == "autofs" {
			if t := in.autofsTrigger(p); t != nil {
				a := *t
				a.Trigger, a.TriggerID = false, p.ID
				m.Automount = &a
			}
			continue
		}
		if k, ok := kernelExpiry[m.FSType]; ok && kernelExpiry[p.FSType].what == k.what && (p.Major != m.Major || p.Minor != m.Minor) {
			a := &Automount{By: ByKernel, Kind: k.what, TriggerID: p.ID, Timeout: k.fixed, TimeoutKnown: k.fixed != 0,
				ParentFSType: p.FSType}
			if k.sysctl != "" {
				if b, err := os.ReadFile(in.procRoot + "/" + k.sysctl); err == nil {
					if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
						a.Timeout, a.TimeoutKnown = time.Duration(n)*time.Second, true
					}
				}
			}
			m.Automount = a
		}
	}
}

// autofsTrigger reads an autofs mount's options (fs/autofs/inode.c
// autofs_show_options: fd=, pgrp=, timeout=, minproto=, maxproto=,
// direct|indirect|offset, pipe_ino=).
func (in *Inspector) autofsTrigger(m *Mount) *Automount {
	a := &Automount{By: ByAutofs, Kind: AutofsIndirect, Trigger: true}
	for _, o := range strings.Split(m.SuperOptions, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case string(AutofsDirect), string(AutofsIndirect), string(AutofsOffset):
			a.Kind = AutomountKind(k)
		case "pgrp":
			a.PGrp, _ = strconv.Atoi(v)
		case "timeout":
			if n, err := strconv.Atoi(v); err == nil {
				a.Timeout, a.TimeoutKnown = time.Duration(n)*time.Second, true
			}
		}
	}
	if a.PGrp == 1 {
		a.By, a.Unit = BySystemd, systemdUnit(m.Mountpoint, "automount")
	} else if a.PGrp > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("%s/%d/comm", in.procRoot, a.PGrp)); err == nil {
			a.Daemon = strings.TrimSpace(string(b))
		}
	}
	return a
}

// systemdUnit is the unit name systemd gives a mount point path
// (systemd-escape --path --suffix=SUFFIX, systemd.unit(5)): slashes become
// dashes, and bytes other than ASCII letters, digits, ':', '_' and '.'
// (and a leading '.') become \xNN.
func systemdUnit(path, suffix string) string {
	p := strings.Trim(path, "/")
	if p == "" {
		return "-." + suffix
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + "." + suffix
}
