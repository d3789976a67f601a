package present

import (
	"fmt"
	"io"
	"strings"

	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// PlanText writes the plan as `mounttop umount` prints it before anything
// changes: the summary (unmount.PlanEvent's note, PlanSentence), then one
// line per holder with what will happen to it or why it cannot be revoked,
// then one per release. Every name from the system is escaped once, as it
// is rendered here.
func PlanText(w io.Writer, p *unmount.Plan) {
	fmt.Fprintf(w, "plan: %s\n", EventWhat(unmount.PlanEvent(p)))
	for _, a := range p.Holders {
		h := a.Holder
		what := HolderPlanText(a, "REFUSED: ")
		fmt.Fprintf(w, "  pid %-7d %-16s %-10s %s\n", h.PID, termsafe.Text(h.Comm), termsafe.Text(h.User), termsafe.Message(what))
	}
	for _, r := range p.Releases {
		what := ReleaseText(r)
		switch {
		case r.Refused():
			what = "REFUSED: " + what + ": " + ReleaseRefusalText(r)
		case !p.Release:
			what += " (with --release)"
		}
		fmt.Fprintf(w, "  release %-5s %s\n", r.Kind, termsafe.Message(oneLine(what)))
	}
}

// ConfirmQuestion is what `mounttop umount` asks before it acts on plan p
// (the answer defaults to No).
func ConfirmQuestion(p *unmount.Plan) string {
	target := termsafe.Quote(p.Target.Mountpoint)
	if p.Target.Detached {
		target = fmt.Sprintf("detached mount %d", p.Target.ID)
	}
	releases := ""
	if n := len(p.Releases); p.Release && n > 0 {
		releases = fmt.Sprintf(" and %d releases", n)
	}
	return fmt.Sprintf("%s unmount %s with %s%s, as planned above: go ahead? [y/N] ", p.Mode, target, Plural(len(p.Holders), "holder"), releases)
}

// oneLine keeps a text on one line: a newline or carriage return left in
// it (an error message from elsewhere) becomes a space.
func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
