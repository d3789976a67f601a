package ui

import (
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"mounttop/internal/present"
)

// keyMap is every key the interface answers to, in one place: Update
// matches against these bindings, and every text that names a key (the
// help screen, the status bar's reminder, dialogs, hints, the progress
// pane) takes the key's name from here (keyMap.name, Help().Key), so keys
// and texts cannot drift apart. "l" is the lazy unmount, so the vim
// "right" is not bound; the arrows expand and collapse.
type keyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Expand, Collapse, Toggle                key.Binding
	SwitchPane                              key.Binding
	Filter                                  key.Binding
	// In the filter prompt: keep the filter, or clear it.
	FilterKeep, FilterClear key.Binding

	Lazy, Expire, Force, Staged, DryRun key.Binding
	Release                             key.Binding
	RollbackFence                       key.Binding
	Refresh                             key.Binding
	Cancel                              key.Binding
	// Close closes the preview or a run's result and clears the filter;
	// its keys are Cancel's, which does the same when no run is going.
	Close      key.Binding
	Help, Quit key.Binding

	// Dialog keys.
	Yes, No, Left, Right, Choose key.Binding
	// A dialog's other answers, each picked directly by its key.
	WhenIdle, SignalInstead, AlsoRelease, HostYes key.Binding
}

func defaultKeys() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return keyMap{
		Up:          b([]string{"up", "k"}, "↑/k", "up"),
		Down:        b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:      b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDown:    b([]string{"pgdown", "ctrl+d"}, "pgdn", "page down"),
		Top:         b([]string{"home", "g"}, "g", "first"),
		Bottom:      b([]string{"end", "G"}, "G", "last"),
		Expand:      b([]string{"right"}, "→", "expand"),
		Collapse:    b([]string{"left", "h"}, "←/h", "collapse / go to parent"),
		Toggle:      b([]string{"enter", " "}, "enter", "expand or collapse"),
		SwitchPane:  b([]string{"tab", "shift+tab"}, "tab", "switch pane"),
		Filter:      b([]string{"/"}, "/", "filter mounts"),
		FilterKeep:  b([]string{"enter"}, "enter", "keep the filter"),
		FilterClear: b([]string{"esc"}, "esc", "clear the filter"),

		Lazy:    b([]string{"l"}, "l", "lazy unmount (detach now)"),
		Expire:  b([]string{"e"}, "e", "expire (now, or when idle)"),
		Force:   b([]string{"f"}, "f", "forced unmount (MNT_FORCE)"),
		Staged:  b([]string{"F"}, "F", "staged: fence, revoke, drain"),
		DryRun:  b([]string{"d"}, "d", "preview the plan (dry run)"),
		Release: b([]string{"R"}, "R", "release a kernel holder or copy"),
		Refresh: b([]string{"r"}, "r", "refresh now"),
		Cancel:  b([]string{"x", "esc"}, "x/esc", "cancel the running unmount"),
		Close:   b([]string{"esc", "x"}, "esc", "close"),
		Help:    b([]string{"?"}, "?", "help"),
		Quit:    b([]string{"q", "ctrl+c"}, "q", "quit"),

		RollbackFence: b([]string{"K"}, "K", "roll back a fence a killed run left"),

		Yes:    b([]string{"y", "Y"}, "y", "yes"),
		No:     b([]string{"n", "N", "esc", "q", "ctrl+c"}, "n/esc", "no"),
		Left:   b([]string{"left", "h", "shift+tab"}, "←", "previous choice"),
		Right:  b([]string{"right", "tab"}, "→", "next choice"),
		Choose: b([]string{"enter"}, "enter", "take the highlighted choice"),

		WhenIdle:      b([]string{"w"}, "w", "expire when idle"),
		SignalInstead: b([]string{"s"}, "s", "signal instead of closing"),
		AlsoRelease:   b([]string{"a"}, "a", "also release kernel holders and copies"),
		HostYes:       b([]string{"H"}, "H", "yes, in the host's namespace"),
	}
}

// name is how texts name a binding's key: its first key ("x" for
// x/esc), as typed.
func (k *keyMap) name(b key.Binding) string {
	if ks := b.Keys(); len(ks) > 0 {
		return ks[0]
	}
	return b.Help().Key
}

// texts are the keys present's texts name (hints), as bound here.
func (k *keyMap) texts() present.Keys {
	return present.Keys{Refresh: k.name(k.Refresh), Staged: k.name(k.Staged), Lazy: k.name(k.Lazy),
		Expire: k.name(k.Expire), SignalInstead: k.name(k.SignalInstead)}
}

// step is how far a movement key moves a cursor over n rows of which page
// are shown; ok is false for any other key. Both panes move the same way.
func (k keyMap) step(km tea.KeyMsg, page, n int) (d int, ok bool) {
	switch {
	case key.Matches(km, k.Up):
		return -1, true
	case key.Matches(km, k.Down):
		return 1, true
	case key.Matches(km, k.PageUp):
		return -page, true
	case key.Matches(km, k.PageDown):
		return page, true
	case key.Matches(km, k.Top):
		return -n, true
	case key.Matches(km, k.Bottom):
		return n, true
	}
	return 0, false
}

// helpGroups is the full help, by topic.
func (k keyMap) helpGroups() []helpGroup {
	return []helpGroup{
		{"Move", []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom, k.SwitchPane}},
		{"Tree", []key.Binding{k.Toggle, k.Expand, k.Collapse, k.Filter, k.Refresh}},
		{"Unmount", []key.Binding{k.Lazy, k.Expire, k.Force, k.Staged, k.DryRun, k.Release, k.RollbackFence, k.Cancel}},
		{"Other", []key.Binding{k.Help, k.Quit}},
	}
}

// FullHelp implements help.KeyMap: the help screen's groups.
func (k keyMap) FullHelp() [][]key.Binding {
	var out [][]key.Binding
	for _, g := range k.helpGroups() {
		out = append(out, g.Bindings)
	}
	return out
}

// ShortHelp implements help.KeyMap: the status bar's reminder, a key and
// one word each (reminder leaves out the unmount keys on a system mount).
func (k keyMap) ShortHelp() []key.Binding { return k.reminder(false) }

var _ help.KeyMap = keyMap{}

// reminder is the status bar's key reminder; without the keys that
// unmount when system is set (unmount.SystemMount: none is offered).
func (k keyMap) reminder(system bool) []key.Binding {
	var out []key.Binding
	for _, s := range k.shortHelp() {
		if system && s.unmounts {
			continue
		}
		out = append(out, short(s.b, s.word))
	}
	return out
}

// short is b with a one-word description, for the reminder.
func short(b key.Binding, word string) key.Binding {
	return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(b.Help().Key, word))
}

// shortHelp is the one-line reminder in the status bar: a key and one
// word each.
func (k keyMap) shortHelp() []shortKey {
	return []shortKey{{k.Lazy, "lazy", true}, {k.Expire, "expire", true}, {k.Force, "force", true}, {k.Staged, "staged", true},
		{k.DryRun, "plan", true}, {k.Filter, "filter", false}, {k.Help, "help", false}, {k.Quit, "quit", false}}
}

type shortKey struct {
	b    key.Binding
	word string
	// unmounts: the key asks for an unmount of the selected mount (not
	// offered on a system mount, unmount.SystemMount).
	unmounts bool
}

type helpGroup struct {
	Name     string
	Bindings []key.Binding
}
