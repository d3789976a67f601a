package mountapi

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/internal/bounded"
)

// Feature is a kernel feature mounttop relies on, as found on this
// kernel: for `mounttop version`, so a bug report says what the kernel
// could do.
type Feature struct {
	Name  string `json:"name"`
	Found bool   `json:"found"`
	// Note says how it was found, or what mounttop does without it.
	Note string `json:"note"`
}

// probeLimit bounds the probes that touch a path (statx and openat2 of /,
// the read of the mount table): none waits on a filesystem longer.
const probeLimit = 2 * time.Second

// Features probes, each once and each bounded, the kernel features that
// inspect and unmount use: unique mount IDs (statx STATX_MNT_ID_UNIQUE,
// Linux 6.8), listmount/statmount (6.8), MOVE_MOUNT_BENEATH (6.5), pidfd
// (pidfd_open, 5.3), openat2 (5.6) and fusectl at
// /sys/fs/fuse/connections. procRoot is the /proc to read the mount table
// from.
func Features(ctx context.Context, procRoot string) []Feature {
	return []Feature{
		uniqueIDs(ctx),
		listmount(),
		beneath(),
		pidfd(),
		openat2(ctx),
		fusectl(ctx, procRoot),
	}
}

func uniqueIDs(ctx context.Context) Feature {
	f := Feature{Name: "unique mount IDs"}
	mask, err := bounded.Value(ctx, nil, probeLimit, "statx of /", bounded.AnyThread, func() (uint32, error) {
		var stx unix.Statx_t
		err := unix.Statx(unix.AT_FDCWD, "/", unix.AT_STATX_DONT_SYNC|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx)
		return stx.Mask, err
	}, nil)
	switch {
	case err != nil:
		f.Note = "statx: " + err.Error()
	case mask&unix.STATX_MNT_ID_UNIQUE != 0:
		f.Found, f.Note = true, "statx STATX_MNT_ID_UNIQUE"
	default:
		f.Note = "no STATX_MNT_ID_UNIQUE (Linux 6.8+): mounts are keyed by reusable ID, device and root"
	}
	return f
}

func listmount() Feature {
	f := Feature{Name: "listmount/statmount"}
	if _, err := ListMounts(); err != nil {
		f.Note = err.Error() + "; mounts are read from mountinfo alone"
		return f
	}
	f.Found, f.Note = true, "listmount(2), statmount(2)"
	return f
}

// beneath asks move_mount(2) with MOVE_MOUNT_BENEATH and no valid fd: a
// kernel that knows the flag fails with EBADF (or EPERM without
// CAP_SYS_ADMIN, before it looks at the flags), one that does not with
// EINVAL. Nothing is moved.
func beneath() Feature {
	f := Feature{Name: "MOVE_MOUNT_BENEATH"}
	err := unix.MoveMount(-1, "", -1, "", MoveMountBeneath|unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	switch {
	case errors.Is(err, unix.EBADF):
		f.Found, f.Note = true, "move_mount(2) takes it: the staged unmount fences beneath the mount"
	case errors.Is(err, unix.EPERM):
		f.Note = "not probed without CAP_SYS_ADMIN (move_mount: EPERM)"
		if kernelAtLeast(6, 5) {
			f.Found, f.Note = true, "Linux 6.5+ (move_mount needs CAP_SYS_ADMIN to probe)"
		}
	case errors.Is(err, unix.ENOSYS):
		f.Note = "no move_mount(2): the staged unmount fences by mounting over the mount"
	default:
		f.Note = "move_mount: " + errString(err) + ": the staged unmount fences by mounting over the mount"
	}
	return f
}

func pidfd() Feature {
	f := Feature{Name: "pidfd"}
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		f.Note = "pidfd_open: " + err.Error() + ": processes are checked by pid and start time only"
		return f
	}
	unix.Close(fd)
	f.Found, f.Note = true, "pidfd_open(2)"
	return f
}

func openat2(ctx context.Context) Feature {
	f := Feature{Name: "openat2"}
	fd, err := bounded.Value(ctx, nil, probeLimit, "openat2 of /", bounded.AnyThread, func() (int, error) {
		return unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	}, func(fd int) { unix.Close(fd) })
	if err != nil {
		f.Note = "openat2: " + err.Error() + ": paths are resolved component by component"
		return f
	}
	unix.Close(fd)
	f.Found, f.Note = true, "openat2(2) RESOLVE_NO_SYMLINKS"
	return f
}

// fusectl looks for the fusectl mount in the mount table (never by a stat
// of /sys/fs/fuse/connections).
func fusectl(ctx context.Context, procRoot string) Feature {
	f := Feature{Name: "fusectl"}
	where, err := bounded.Value(ctx, nil, probeLimit, "reading the mount table", bounded.AnyThread, func() (string, error) {
		file, err := os.Open(filepath.Join(procRoot, "self", "mountinfo"))
		if err != nil {
			return "", err
		}
		defer file.Close()
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			// proc(5): ... mount point is field 5; after " - " the type.
			fields := strings.Fields(sc.Text())
			_, after, ok := strings.Cut(sc.Text(), " - ")
			if ok && len(fields) > 4 && strings.HasPrefix(after, "fusectl ") {
				return fields[4], nil
			}
		}
		return "", sc.Err()
	}, nil)
	switch {
	case err != nil:
		f.Note = err.Error()
	case where != "":
		f.Found, f.Note = true, "mounted at "+where+": a dead FUSE daemon's connection can be aborted"
	default:
		f.Note = "not mounted: a dead FUSE daemon's connection is cut by MNT_FORCE instead"
	}
	return f
}

// kernelAtLeast compares the running kernel's release with major.minor.
func kernelAtLeast(major, minor int) bool {
	var ma, mi int
	rel := KernelRelease()
	for i, part := range strings.SplitN(rel, ".", 3) {
		n := 0
		for _, r := range part {
			if r < '0' || r > '9' {
				break
			}
			n = n*10 + int(r-'0')
		}
		if i == 0 {
			ma = n
		} else if i == 1 {
			mi = n
		}
	}
	return ma > major || (ma == major && mi >= minor)
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
