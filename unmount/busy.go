package unmount

import (
	"strings"

	"mounttop/internal/present/scantext"
)

// hints is what an Error adds in parentheses: what else holds the mount
// (Busy; "also" when processes do too), the Hint, and that the filesystem
// ignores MNT_FORCE (ForceIgnored), in scantext's words (an error is
// text: its names are escaped as it is built).
func (e *Error) hints() string {
	var parts []string
	if len(e.Busy) > 0 {
		held := "held by "
		if len(e.Holders) > 0 {
			held = "also held by "
		}
		rs := make([]string, len(e.Busy))
		for i, r := range e.Busy {
			rs[i] = r.text()
		}
		parts = append(parts, held+strings.Join(rs, "; "))
	}
	if e.Hint != "" {
		parts = append(parts, e.Hint)
	}
	if e.ForceIgnored != nil {
		parts = append(parts, scantext.ForceIgnored(e.ForceIgnored.FSType))
	}
	return strings.Join(parts, "; ")
}
