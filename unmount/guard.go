package unmount

import (
	"mounttop/internal/kindname"
	"strings"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
)

// systemPaths are the mount points the running system stands on: the root,
// the kernel's API filesystems at their usual places (proc(5), sysfs(5),
// devtmpfs, devpts(4) and /dev/shm, cgroups(7)), and /run, where systemd
// and most daemons keep their sockets, pid files and locks (file-hierarchy(7)).
// Whatever is mounted there, unmounting it pulls the floor from under
// every running program, mounttop's own scan included.
var systemPaths = map[string]bool{
	"/": true, "/proc": true, "/sys": true, "/dev": true, "/dev/pts": true, "/dev/shm": true,
	"/run": true, "/sys/fs/cgroup": true,
}

// apiTypes are the kernel's API filesystems (systemd's list in
// src/shared/mount-setup.c, plus the security modules' own): the interface
// between programs and the kernel, not storage. Wherever one is mounted,
// something on the system (a service manager, a container runtime, an
// automounter, a debugger) reaches the kernel through it, and unmounting it
// stores nothing and breaks them. autofs is here too: unmounting an
// automount trigger behind the automount daemon leaves the daemon waiting
// on a mount that is gone; the filesystems it mounts are ordinary ones.
var apiTypes = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "securityfs": true,
	"debugfs": true, "tracefs": true, "bpf": true, "pstore": true, "efivarfs": true,
	"configfs": true, "fusectl": true, "mqueue": true, "hugetlbfs": true, "binfmt_misc": true,
	"cgroup": true, "cgroup2": true, "autofs": true, "rpc_pipefs": true, "nfsd": true,
	"selinuxfs": true, "smackfs": true,
}

// SystemKind says why a mount is one the system runs on (SystemMount).
type SystemKind int

const (
	// SystemNone: it is not.
	SystemNone SystemKind = iota
	// SystemPath: it is mounted at one of systemPaths.
	SystemPath
	// SystemAPI: it is a kernel API filesystem by type (apiTypes).
	SystemAPI
)

// SystemMount says why m is a mount the system runs on, or SystemNone if
// it is not: one of systemPaths by where it is mounted, or an API
// filesystem by type (apiTypes). Such a mount is refused unless the plan
// allows it (Plan.AllowSystem, `mounttop umount --allow-system-mount`);
// present.SystemMountText words it.
func SystemMount(m *inspect.Mount) SystemKind {
	switch {
	case m.Detached:
		return SystemNone // in no mount table: nothing stands on it any more
	case systemPaths[m.Mountpoint]:
		return SystemPath
	case apiTypes[m.FSType]:
		return SystemAPI
	}
	return SystemNone
}

// SystemRefused is the refusal (errors.Is ErrRefused) of Mount, a mount
// the system runs on for the reason Kind: the target itself, or a
// stacking filesystem --recursive would unmount with it. Its text is
// scantext's (present.SystemMountText words the same reason).
type SystemRefused struct {
	Kind  SystemKind
	Mount inspect.Mount
}

func (e *SystemRefused) Error() string {
	return ErrRefused.Error() + ": " + scantext.SystemMount(e.Kind == SystemAPI, e.Mount.Mountpoint, e.Mount.FSType) +
		" (" + scantext.AllowSystem + ")"
}

func (e *SystemRefused) Unwrap() error { return ErrRefused }

// ownMountReason says why the mounts ids (the target and its submounts)
// hold something mounttop stands on: its executable, its cwd, the /proc
// it reads, its journal. exe and cwd are refused whatever the override
// (mounttop would cut the ground from under itself, and cannot revoke
// itself); the /proc and the journal only without AllowSystem (hard says
// which kind it is).
func ownMountReason(own Own, journal inspect.MountID, ids []inspect.MountID) (why string, hard bool) {
	for _, id := range ids {
		switch {
		case id == own.Exe:
			return "mounttop's own executable is on it", true
		case id == own.Cwd:
			return "it holds mounttop's own working directory (cd elsewhere first)", true
		case id == own.Proc:
			return "it is the /proc mounttop reads the mount table and the holders from", false
		case id == journal:
			return "mounttop's journal is on it (--journal elsewhere, or --journal -)", false
		}
	}
	return "", false
}

// refusalText joins a refusal with the way to override it.
func refusalText(why string) string {
	return strings.TrimSpace(why) + " (" + scantext.AllowSystem + ")"
}

// systemKindNames are the SystemKind values' names, for logs and tests (String).
var systemKindNames = [...]string{SystemNone: "none", SystemPath: "path", SystemAPI: "api"}

// String names the SystemKind (kindname.Of).
func (s SystemKind) String() string { return kindname.Of("SystemKind", systemKindNames[:], int(s), 0) }
