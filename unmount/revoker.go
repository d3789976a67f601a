package unmount

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mounttop/unmount/revoke"
)

// defaultRevoker is the ptrace revoker of unmount/revoke: it seizes every
// thread of the holder, injects dup3(2) of a placeholder (or close(2)) /
// mmap(2) PROT_NONE / fchdir(2) into an empty directory on no mounted tree
// and lets the process run on (DESIGN.md, revoke).
func defaultRevoker() Revoker { return &ptraceRevoker{r: revoke.New()} }

type ptraceRevoker struct{ r *revoke.Revoker }

// Close stops the revoker's tracer thread.
func (p *ptraceRevoker) Close() error {
	p.r.Close()
	return nil
}

// Revoke hands the targets to the revoker and says what was done. A
// process that exited is ErrHolderGone; a revoke that did nothing but fail
// item by item is an error with those failures.
func (p *ptraceRevoker) Revoke(ctx context.Context, pid int, t RevokeTargets) (string, error) {
	rt := revoke.Targets{FDs: t.FDs, CwdTIDs: t.CwdTIDs, Placeholder: t.Placeholder, StartTime: t.StartTime, CopyIDs: t.CopyIDs}
	for _, m := range t.Maps {
		rt.Maps = append(rt.Maps, revoke.Range{Start: m.Start, End: m.End})
	}
	for _, id := range t.Mounts {
		rt.Mounts = append(rt.Mounts, uint64(id))
	}
	rep, err := p.r.Revoke(ctx, pid, rt)
	switch {
	case errors.Is(err, revoke.ErrGone):
		return "", ErrHolderGone
	case errors.Is(err, revoke.ErrReused):
		return "", fmt.Errorf("%w: %w", ErrHolderGone, err)
	}
	did := describeReport(rep, t.Placeholder)
	if errors.Is(err, revoke.ErrNoStop) || errors.Is(err, revoke.ErrStuck) {
		return did, transient{err}
	}
	if err != nil {
		return did, err
	}
	if len(rep.Closed)+len(rep.Unmapped)+len(rep.Chdir) == 0 && len(rep.Failed) > 0 {
		// Every item failed or had changed since the scan (left alone):
		// the next drain pass scans again and tries what it finds then.
		return did, transient{errors.New(strings.Join(rep.Failed, "; "))}
	}
	return did, nil
}

// describeReport renders a revoke.Report in the operator's words.
func describeReport(rep revoke.Report, placeholder bool) string {
	var parts []string
	if n := len(rep.Closed); n > 0 {
		s := make([]string, n)
		for i, fd := range rep.Closed {
			s[i] = fmt.Sprint(fd)
		}
		verb := "closed fd "
		if placeholder {
			verb = "put a placeholder on fd "
		}
		parts = append(parts, verb+strings.Join(s, ", "))
	}
	if n := len(rep.Unmapped); n > 0 {
		parts = append(parts, fmt.Sprintf("unmapped %d %s (PROT_NONE)", n, plural(n, "mapping")))
	}
	if n := len(rep.Chdir); n > 0 {
		parts = append(parts, fmt.Sprintf("moved the cwd of %d %s into an empty read-only directory", n, plural(n, "thread")))
	}
	if len(rep.Failed) > 0 {
		parts = append(parts, "failed: "+strings.Join(rep.Failed, "; "))
	}
	parts = append(parts, rep.Notes...)
	if len(parts) == 0 {
		return "nothing left to revoke"
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (%d %s stopped for %v)", rep.Threads, plural(rep.Threads, "thread"), rep.Duration.Round(10e3))
}
