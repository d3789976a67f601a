package unmount

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"mounttop/inspect"
	"mounttop/internal/present/scantext"
	// termsafe only for errors and the call names bounded puts in its
	// errors (an error is text: its names are escaped as it is built),
	// and the uses that say why.
	"mounttop/internal/termsafe"
)

// Defaults of a staged run, after the fumount design: drain every second.
const (
	DefaultInterval = time.Second
	DefaultGrace    = 5 * time.Second
	DefaultTimeout  = 30 * time.Second
)

// Prepare completes a plan for p.Target (at least its ID; the rest is
// refreshed from a scan) with p's Mode, Policy and durations: the holders
// and what will happen to each under p.Policy (and with p.Release, the
// holders of propagating copies too), what will be refused and why, and the
// warnings. It changes nothing. An error wrapping ErrRefused means the
// request itself is refused: the root mount, the mount holding mounttop's
// own executable or cwd, a mount with submounts without Recursive, expire
// of a mount with submounts; and unless p.AllowSystem, a mount the system
// runs on (SystemMount) or the /proc or journal mounttop uses.
func (u *Unmounter) Prepare(ctx context.Context, p Plan) (Plan, error) {
	if p.Mode < ModeLazy || p.Mode > ModeStaged {
		return p, &Error{Op: "plan", Target: p.Target.Mountpoint, Err: fmt.Errorf("%w: no mode given", ErrRefused)}
	}
	p.setDefaults()
	// Everything below is computed afresh: a plan prepared again (another
	// policy, Release) shares no slice with the one it came from.
	p.Warnings = nil
	snap, err := u.sys.Scan(ctx)
	if err != nil {
		return p, &Error{Op: "plan", Target: p.Target.Mountpoint, Err: err}
	}
	m, ok := snap.Mount(p.Target.ID)
	if !ok {
		return p, &Error{Op: "plan", Target: p.Target.Mountpoint, Err: ErrGone}
	}
	p.Target = *m
	subs := snap.Descendants(m.ID)
	p.Submounts = nil
	for _, id := range subs {
		if s, ok := snap.Mount(id); ok {
			p.Submounts = append(p.Submounts, *s)
		}
	}
	if err := u.checkTarget(&p, subs); err != nil {
		return p, err
	}
	held, stackedNames, err := u.planStacked(&p, snap, subs)
	if err != nil {
		return p, err
	}
	p.Holders = nil
	for _, h := range holdersOf(snap, m.ID, held) {
		p.Holders = append(p.Holders, u.holderAction(p, h))
	}
	if a := m.Automount; a != nil {
		p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnAutomount, Detail: scantext.AutomountWarning(a, m.Mountpoint)})
	}
	if p.Mode == ModeForce && ForceIgnored(m.FSType) {
		p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnForceIgnored, FSType: m.FSType})
	}
	ids := append([]inspect.MountID{m.ID}, subs...)
	p.Releases = nil
	if !m.Detached {
		p.Releases = findReleases(snap, ids, p.ReleaseHost)
	}
	if p.Release && p.Mode == ModeStaged && !m.Detached {
		p.Holders = append(p.Holders, u.copyHolderActions(p, snap, ids)...)
	}
	p.Warnings = append(p.Warnings, busyWarnings(&p, snap, ids, stackedNames)...)
	if p.Mode == ModeStaged {
		u.probePlan(ctx, &p)
	}
	p.Filesystem = planFilesystem(snap, &p)
	p.Warnings = append(p.Warnings, aliveWarnings(snap, m.ID)...)
	for _, o := range snap.SameFilesystem(m.ID) {
		p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnAlsoMounted, Mountpoint: o.Mountpoint})
	}
	if n := len(snap.Warnings); n > 0 {
		p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnPartialScan, Count: n, Detail: scantext.Warning(snap.Warnings[0])})
	}
	p.prepared = p.choices()
	return p, nil
}

// setDefaults fills the durations and the policy the operator left unset.
func (p *Plan) setDefaults() {
	if p.Policy == 0 {
		p.Policy = PolicyClose
	}
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Grace <= 0 {
		p.Grace = DefaultGrace
	}
	if p.Timeout <= 0 && p.Mode == ModeStaged {
		p.Timeout = DefaultTimeout
	}
	if p.CallTimeout <= 0 {
		p.CallTimeout = DefaultCallTimeout
	}
	if p.Timeout > 0 && p.CallTimeout > p.Timeout {
		p.CallTimeout = p.Timeout
	}
}

// refusal is the error of a request refused for why (ErrRefused).
func refusal(m *inspect.Mount, format string, a ...any) error {
	return &Error{Op: "umount", Target: planTarget(m), Err: fmt.Errorf("%w: "+format, append([]any{ErrRefused}, a...)...)}
}

// checkTarget refuses the requests Prepare documents (the root, a
// detached mount for a plain mode, the system's and mounttop's own mounts,
// submounts without Recursive, expire with submounts) and warns of an
// override that let one through.
func (u *Unmounter) checkTarget(p *Plan, subs []inspect.MountID) error {
	m := &p.Target
	switch {
	case m.Detached && p.Mode != ModeStaged:
		return refusal(m, "%s", scantext.DetachedRefused(p.Mode.String()))
	case !m.Detached && (m.Mountpoint == "/" || m.ParentID == m.ID):
		return refusal(m, "it is the root of this mount namespace")
	}
	if k := SystemMount(m); k != SystemNone && !p.AllowSystem {
		return &Error{Op: "umount", Target: planTarget(m), Err: &SystemRefused{Kind: k, Mount: *m}}
	}
	if own, err := u.sys.Self(); err == nil {
		why, hard := ownMountReason(own, u.journalMount(), append([]inspect.MountID{m.ID}, subs...))
		switch {
		case why != "" && hard:
			return refusal(m, "%s", why)
		case why != "" && !p.AllowSystem:
			return refusal(m, "%s", refusalText(why))
		case why != "":
			p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnAllowedSystem, Detail: why})
		}
	} else {
		p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnSelfUnknown, Message: err.Error()})
	}
	if len(p.Submounts) == 0 {
		return nil
	}
	if p.Mode == ModeExpire {
		return &Error{Op: "umount --expire", Target: m.Mountpoint, Submounts: p.Submounts,
			Err: fmt.Errorf("%w: a mount with submounts is never idle", ErrRefused), Hint: scantext.HintExpireSubmounts}
	}
	if !p.Recursive {
		return &Error{Op: "umount", Target: m.Mountpoint, Submounts: p.Submounts,
			Err: fmt.Errorf("%w: it has submounts", ErrRefused), Hint: scantext.HintRecursive}
	}
	return nil
}

// planStacked finds, for a staged run, the stacking filesystems with a
// layer on the target or its submounts (Plan.Stacked, with Recursive;
// else a warning). held are the mounts whose holders are revoked (the
// submounts and, with Recursive, the stacked); stackedNames their mount
// points, which no busy warning names.
func (u *Unmounter) planStacked(p *Plan, snap *inspect.Snapshot, subs []inspect.MountID) (held []inspect.MountID, stackedNames map[string]bool, err error) {
	m := &p.Target
	p.Stacked = nil
	stackedNames = map[string]bool{}
	held = append([]inspect.MountID(nil), subs...)
	if p.Mode != ModeStaged || m.Detached {
		return held, stackedNames, nil
	}
	stacked := stackedOn(snap, append([]inspect.MountID{m.ID}, subs...))
	for _, s := range stacked {
		stackedNames[s.Mountpoint] = true
		if !p.Recursive {
			continue
		}
		switch {
		case s.Mountpoint == "/" || s.ParentID == s.ID:
			// An error's message: its names are escaped as it is built
			// (as Error's own target is), since an error is text.
			return nil, nil, refusal(m, "the %s at %s that uses it as a layer is the root of this mount namespace", termsafe.Text(s.FSType), termsafe.Quote(s.Mountpoint))
		case SystemMount(&s) != SystemNone && !p.AllowSystem:
			return nil, nil, &Error{Op: "umount", Target: planTarget(m), Err: &SystemRefused{Kind: SystemMount(&s), Mount: s}}
		}
		p.Stacked = append(p.Stacked, s)
		held = append(held, s.ID)
	}
	if len(stacked) > 0 && !p.Recursive {
		p.Warnings = append(p.Warnings, PlanWarning{Kind: WarnStacked, Mounts: stacked})
	}
	if len(p.Stacked) > 0 {
		if own, err := u.sys.Self(); err == nil {
			if why, _ := ownMountReason(own, u.journalMount(), held); why != "" {
				return nil, nil, refusal(m, "%s", why)
			}
		}
	}
	return held, stackedNames, nil
}

// busyWarnings names what else keeps the mounts ids busy (busyReasonList)
// and whether the run can release it.
func busyWarnings(p *Plan, snap *inspect.Snapshot, ids []inspect.MountID, stackedNames map[string]bool) []PlanWarning {
	refused := map[string]bool{}
	for _, r := range p.Releases {
		if r.Refused() && r.Name != "" {
			refused[r.Name] = true
		}
	}
	var out []PlanWarning
	for _, r := range busyReasonList(snap, ids...) {
		w := PlanWarning{Kind: WarnBusy, Reason: r.BusyReason}
		switch {
		case len(p.Stacked) > 0 && stackedNames[r.name]:
			continue // unmounted first (Plan.Stacked)
		case !r.releasable || refused[r.name]:
			w.Busy = BusyNever
		case p.Release && p.Mode == ModeStaged:
			w.Busy = BusyReleased
		default:
			w.Busy = BusyWithRelease
		}
		out = append(out, w)
	}
	return out
}

// probePlan asks, before anything changes, whether the filesystem's server
// answers (Plan.Server); the plan says what the run does if not
// (present's plan note). A detached mount is probed through a holder's fd or cwd.
func (u *Unmounter) probePlan(ctx context.Context, p *Plan) {
	var hs []inspect.Holder
	for _, a := range p.Holders {
		if a.Namespace == 0 {
			hs = append(hs, a.Holder)
		}
	}
	path := p.Target.Mountpoint
	if p.Target.Detached {
		path = holderLink(hs, nil)
	}
	p.Server = u.probe(ctx, &p.Target, path, probeLimit(p))
}

// journalMount is the unique ID of the mount the journal lies on (0: no
// journal, or disabled), as statx(2) of its directory's fd said when it was
// opened (Journal.Mount): no lookup.
func (u *Unmounter) journalMount() inspect.MountID {
	if u.journal == nil {
		return 0
	}
	return u.journal.Mount()
}

// holdersOf merges the holders of the target and its submounts by pid.
func holdersOf(snap *inspect.Snapshot, id inspect.MountID, subs []inspect.MountID) []inspect.Holder {
	byPID := map[int]*inspect.Holder{}
	var order []int
	for _, mid := range append([]inspect.MountID{id}, subs...) {
		for _, h := range snap.HoldersOf(mid) {
			if prev, ok := byPID[h.PID]; ok {
				prev.Uses = append(prev.Uses, h.Uses...)
				continue
			}
			h := h
			h.Uses = append([]inspect.Use(nil), h.Uses...)
			byPID[h.PID] = &h
			order = append(order, h.PID)
		}
	}
	sort.Ints(order)
	out := make([]inspect.Holder, 0, len(order))
	for _, pid := range order {
		out = append(out, *byPID[pid])
	}
	return out
}

// holderAction says what the plan does to one holder, or why it cannot.
func (u *Unmounter) holderAction(p Plan, h inspect.Holder) HolderAction {
	a := HolderAction{Holder: h}
	switch {
	case p.Mode == ModeLazy:
		a.Kind = ActionKeepDetached
	case p.Mode == ModeExpire || p.Mode == ModeForce:
		a.Kind = ActionKeepBusy
	case p.Policy == PolicySignal:
		a.Kind, a.Grace = ActionSignal, p.Grace
	default:
		a.Kind = ActionRevoke
		if a.Refusal, a.RefusedPath = refusalOf(h); !a.Refused() {
			a.Targets = revokeTargets(h, p.Policy != PolicyClosePlain)
		}
	}
	return a
}

// copyHolderActions says what a run with Plan.Release does to the holders
// of copies in other namespaces that umount2 of ids propagates to: the
// same as to ours, so the operator sees every process that will be touched.
func (u *Unmounter) copyHolderActions(p Plan, snap *inspect.Snapshot, ids []inspect.MountID) []HolderAction {
	seen := map[int]bool{}
	for _, a := range p.Holders {
		seen[a.Holder.PID] = true
	}
	var out []HolderAction
	for _, id := range ids {
		for _, c := range snap.Copies(id) {
			if !c.Propagates {
				continue
			}
			for _, h := range c.Holders {
				if seen[h.PID] {
					continue
				}
				seen[h.PID] = true
				a := u.holderAction(p, h)
				a.Namespace = c.Namespace.Inode
				a.CopyAt = c.Mount.Mountpoint
				out = append(out, a)
			}
		}
	}
	return out
}

// refusalOf says why a holder cannot be revoked by ptrace injection
// (Refusal), and the path that makes it so: its executable on the mount
// (the kernel maps it and keeps it open), its root directory there (the
// root pins the mount; a revoke moves cwds, not roots).
func refusalOf(h inspect.Holder) (Refusal, string) {
	for _, use := range h.Uses {
		switch use.Kind {
		case inspect.UseExe:
			return RefusalExe, use.Path
		case inspect.UseRoot:
			return RefusalRoot, use.Path
		}
	}
	return RefusalNone, ""
}

// revokeTargets collects the fds, mappings and cwd threads of a holder.
func revokeTargets(h inspect.Holder, placeholder bool) RevokeTargets {
	t := RevokeTargets{Placeholder: placeholder}
	fds := map[int]bool{}
	tids := map[int]bool{}
	for _, use := range h.Uses {
		switch use.Kind {
		case inspect.UseFD, inspect.UseLock:
			if use.FD >= 0 && use.TID != 0 {
				if t.ThreadFDs == nil {
					t.ThreadFDs = map[int][]int{}
				}
				if !slices.Contains(t.ThreadFDs[use.TID], use.FD) {
					t.ThreadFDs[use.TID] = append(t.ThreadFDs[use.TID], use.FD)
				}
				continue
			}
			if use.FD >= 0 && !fds[use.FD] {
				fds[use.FD] = true
				t.FDs = append(t.FDs, use.FD)
			}
		case inspect.UseMmap:
			t.Maps = append(t.Maps, Range{Start: use.Start, End: use.End})
		case inspect.UseCwd:
			tid := use.TID
			if tid == 0 {
				tid = h.PID
			}
			if !tids[tid] {
				tids[tid] = true
				t.CwdTIDs = append(t.CwdTIDs, tid)
			}
		}
	}
	sort.Ints(t.FDs)
	sort.Ints(t.CwdTIDs)
	for _, fds := range t.ThreadFDs {
		sort.Ints(fds)
	}
	return t
}

// isBusy reports an EBUSY.
func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }
