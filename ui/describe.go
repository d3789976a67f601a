package ui

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/unmount"
)

// What each action does, in the operator's words. The confirm dialog, the
// dry-run preview and the progress pane all say it the same way.

// modeName is how a request is called in titles and the status bar.
func modeName(req Request) string {
	switch req.Mode {
	case unmount.ModeLazy:
		return "lazy unmount"
	case unmount.ModeExpire:
		if req.WhenIdle {
			return "expire when idle"
		}
		return "expire"
	case unmount.ModeForce:
		return "forced unmount"
	case unmount.ModeStaged:
		return "staged unmount (" + req.Policy.String() + ")"
	}
	return req.Mode.String()
}

// mountName is how a mount is called in titles, dialogs and the status
// bar: its mount point, or, for a mount that was lazily unmounted and is
// still held (it has no mount point in any table), its unique ID.
func mountName(m inspect.Mount) string {
	if m.Detached {
		return fmt.Sprintf("the detached mount (unique ID %d)", uint64(m.ID))
	}
	return safe(m.Mountpoint)
}

// holderBrief is "pid 1234 cat (fd×2 cwd)".
func holderBrief(h inspect.Holder) string {
	s := fmt.Sprintf("pid %d %s", h.PID, safe(h.Comm))
	if u := summary(h.Uses); u != "" {
		s += " (" + u + ")"
	}
	return s
}

// planLines states exactly what will happen to the mount and to which
// processes. max bounds the per-process lines (the rest are counted).
func planLines(req Request, plan unmount.Plan, max int) []string {
	mp := mountName(req.Target)
	var holders []inspect.Holder
	if req.Snapshot != nil {
		holders = req.Snapshot.HoldersOf(req.Target.ID)
	}
	if len(plan.Holders) > 0 {
		holders = holders[:0:0]
		for _, a := range plan.Holders {
			holders = append(holders, a.Holder)
		}
	}
	var out []string
	listHolders := func(prefix string, f func(i int, h inspect.Holder) string) {
		for i, h := range holders {
			if i == max && len(holders) > max+1 {
				out = append(out, fmt.Sprintf("%s… and %d more (see the holders pane)", prefix, len(holders)-max))
				break
			}
			out = append(out, prefix+f(i, h))
		}
	}
	switch req.Mode {
	case unmount.ModeLazy:
		out = append(out, "Detach "+mp+" from the tree now (umount2 MNT_DETACH).")
		if len(holders) == 0 {
			out = append(out, "Nobody holds it: the filesystem goes with it.")
		} else {
			out = append(out, "These processes are NOT touched and keep using it, unseen:")
			listHolders("  ", func(_ int, h inspect.Holder) string { return holderBrief(h) })
			out = append(out, "The filesystem lives on until the last of them lets go,",
				"and errors on it will no longer be reported.")
		}
	case unmount.ModeForce:
		out = append(out, fmt.Sprintf("umount2(MNT_FORCE) on %s (%s). No process is touched.", mp, safe(req.Target.FSType)))
		out = append(out, "nfs, cifs, fuse, 9p, ceph: in-flight requests are aborted (EIO).",
			"tmpfs, ext4 and most others: a busy mount still fails with EBUSY.")
		if len(holders) > 0 {
			out = append(out, "Held by:")
			listHolders("  ", func(_ int, h inspect.Holder) string { return holderBrief(h) })
		}
	case unmount.ModeExpire:
		out = append(out, "umount2(MNT_EXPIRE) on "+mp+": no process is touched.",
			"Now: mark it, then unmount it if nothing touched it in between.",
			fmt.Sprintf("When idle: mark it and try again every %s until it stays idle.", req.Interval))
		if len(holders) > 0 {
			out = append(out, "It is busy now (the attempt fails with EBUSY while these hold it):")
			listHolders("  ", func(_ int, h inspect.Holder) string { return holderBrief(h) })
		}
	case unmount.ModeStaged:
		step := 1
		if req.Target.Detached {
			// No path reaches a detached mount: there is nothing to fence
			// and nothing left to unmount; it goes with its last holder.
			out = append(out, "Revoke every holder of "+mp,
				"until nothing holds it. It is in no mount table: no fence, no unmount;",
				"it goes with its last holder.")
		} else {
			out = append(out, "1. Fence "+mp+": new opens by path fail, written data is synced.")
			step++
		}
		verb := "by ptrace: close fds, unmap files, chdir / (processes keep running)"
		if req.Policy == unmount.PolicySignal {
			verb = "SIGTERM, then SIGKILL"
			if plan.Grace > 0 {
				verb += fmt.Sprintf(" after %s", plan.Grace)
			}
		}
		if len(holders) == 0 {
			out = append(out, fmt.Sprintf("%d. Revoke: nobody holds it.", step))
		} else {
			out = append(out, fmt.Sprintf("%d. Revoke %s:", step, verb))
			byPID := map[int]unmount.HolderAction{}
			for _, a := range plan.Holders {
				byPID[a.Holder.PID] = a
			}
			listHolders("   ", func(_ int, h inspect.Holder) string {
				a, ok := byPID[h.PID]
				switch {
				case ok && a.Refused != "":
					return fmt.Sprintf("pid %d %s: REFUSED, %s", h.PID, safe(h.Comm), safe(a.Refused))
				case ok && a.Action != "":
					return fmt.Sprintf("pid %d %s: %s", h.PID, safe(h.Comm), safe(a.Action))
				}
				return holderBrief(h)
			})
		}
		drain := fmt.Sprintf("%d. Drain: rescan", step+1)
		if plan.Interval > 0 {
			drain += " every " + plan.Interval.String()
		}
		drain += ", revoke stragglers"
		if req.Target.Detached {
			drain += " until nothing holds it"
		}
		if plan.Timeout > 0 {
			drain += ", give up after " + plan.Timeout.String()
		}
		out = append(out, drain+".")
		if req.Target.Detached {
			out = append(out, "x cancels; holders already revoked stay revoked.")
		} else {
			out = append(out, fmt.Sprintf("%d. Unmount it for real and check that it is gone.", step+2),
				"x cancels; before revoke starts, the fence is rolled back.")
		}
	}
	if n := len(plan.Submounts); n > 0 && req.Mode != unmount.ModeExpire {
		switch {
		case req.Mode == unmount.ModeLazy:
			out = append(out, plural(n, "submount goes", "submounts go")+" with it.")
		case n == 1:
			out = append(out, "The submount below it goes first: "+safe(plan.Submounts[0].Mountpoint))
		default:
			out = append(out, fmt.Sprintf("The %d submounts below it go first, deepest first.", n))
		}
	}
	for _, w := range plan.Warnings {
		out = append(out, "! "+safe(w))
	}
	return out
}

// hintFor says what to do about an error, chosen by errors.Is, naming the
// holders when the mount is busy.
func hintFor(err error, holders []inspect.Holder) string {
	var ue *unmount.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, unmount.ErrGone):
		return "it is already gone; r refreshes"
	case errors.Is(err, unmount.ErrChanged):
		return "the path now names another mount: nothing was done; r refreshes, then look again"
	case errors.Is(err, unmount.ErrTimeout):
		return "holders remain (see the log): F again, or choose the signal policy (s) in its dialog"
	case errors.As(err, &ue) && ue.Hint != "" && !errors.Is(err, unix.EBUSY):
		return safe(ue.Hint)
	case errors.Is(err, unix.EBUSY):
		if len(holders) == 0 {
			return "busy: a submount, another namespace or the kernel holds it; try F (staged) or l (lazy)"
		}
		names := make([]string, 0, 3)
		for i, h := range holders {
			if i == 3 {
				names = append(names, "…")
				break
			}
			names = append(names, fmt.Sprintf("%d %s", h.PID, safe(h.Comm)))
		}
		return fmt.Sprintf("held by %s: %s · F revokes them, l detaches lazily",
			plural(len(holders), "process", "processes"), strings.Join(names, ", "))
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return "not permitted: unmounting needs root (CAP_SYS_ADMIN); run sudo mounttop, or try mounttop demo"
	case errors.Is(err, unix.EINVAL):
		return "not a mount point any more (already gone?); r refreshes"
	case errors.Is(err, unix.EAGAIN):
		return "marked for expiry: e again unmounts it if nothing touches it first"
	case errors.Is(err, unix.ENOENT):
		return "the mount point is gone; r refreshes"
	}
	return ""
}
