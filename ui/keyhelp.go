package ui

import "github.com/charmbracelet/bubbles/key"

// KeyHelp is one binding of the view as its help screen shows it: the
// keys as written ("↑/k") and what they do.
type KeyHelp struct{ Keys, Help string }

// KeyHelpGroup is a topic of the view's keys.
type KeyHelpGroup struct {
	Name string
	Keys []KeyHelp
}

// DefaultKeyHelp is the view's default key bindings by topic (the help
// screen's groups, then the dialog's keys), taken from the keymap itself:
// mounttop --help and the man page's KEYS are drawn from it, so they
// cannot drift from what Update matches.
func DefaultKeyHelp() []KeyHelpGroup {
	k := defaultKeys()
	groups := append(k.helpGroups(), helpGroup{"Dialog", []key.Binding{k.Yes, k.No, k.Left, k.Right, k.Choose}})
	out := make([]KeyHelpGroup, 0, len(groups))
	for _, g := range groups {
		kg := KeyHelpGroup{Name: g.Name}
		for _, b := range g.Bindings {
			kg.Keys = append(kg.Keys, KeyHelp{Keys: b.Help().Key, Help: b.Help().Desc})
		}
		out = append(out, kg)
	}
	return out
}
