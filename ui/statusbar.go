package ui

import (
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"mounttop/internal/present"
	"mounttop/unmount"
)

// statusBar is the bottom of the screen: a banner when a killed run left a
// fence, the last action and its result (or an error, until the next key,
// with a hint chosen by errors.Is), and a last line with the keys that
// apply now and the age of the data. The root model tells it what to say
// (setStatus, setError, the context) and never reaches inside.
type statusBar struct {
	styles *Styles
	keys   *keyMap
	help   help.Model // draws the key reminder from the keymap
	width  int

	status string // the last action and its result
	err    error  // shown until the next key
	hint   string // the error's hint

	// The context, set by the root after each message (root.syncBar).
	banner   string        // a leftover fence; empty when none
	context  []key.Binding // the keys for what is on screen ("x cancel the run")
	note     string        // "a system mount: no unmount here"
	reminder []key.Binding // the global keys, a word each
	age      string        // how old the data is, and the refresh
}

func newStatusBar(s *Styles, k *keyMap) statusBar {
	h := help.New()
	h.ShortSeparator = " "
	plain := lipgloss.NewStyle()
	h.Styles = help.Styles{ShortKey: plain, ShortDesc: plain, ShortSeparator: plain, Ellipsis: plain}
	return statusBar{styles: s, keys: k, help: h}
}

// SetSize implements the component contract; the bar's height follows
// from what it says (Height).
func (b *statusBar) SetSize(w, _ int) { b.width = w }

// Update implements the component contract: the bar takes no message of
// its own (the root sets what it says).
func (b statusBar) Update(tea.Msg) (statusBar, tea.Cmd) { return b, nil }

// ShortHelp implements help.KeyMap: the keys the bar names.
func (b statusBar) ShortHelp() []key.Binding {
	return append(append([]key.Binding{}, b.context...), b.reminder...)
}

// FullHelp implements help.KeyMap.
func (b statusBar) FullHelp() [][]key.Binding { return [][]key.Binding{b.ShortHelp()} }

func (b *statusBar) setStatus(s string) { b.status = s }

func (b *statusBar) setError(err error, hint string) { b.err, b.hint = err, hint }

// clearError forgets the error: errors show until the next key.
func (b *statusBar) clearError() { b.err, b.hint = nil, "" }

// texts are the message (the last action, or the error) and its second
// part (the error's hint, or the key reminder).
func (b statusBar) texts() (msg, hint string) {
	if b.err != nil {
		msg, hint = "Error: "+shown(b.err.Error()), b.hint
	} else {
		msg = b.status
	}
	if hint == "" {
		var parts []string
		if s := b.help.ShortHelpView(b.context); s != "" {
			parts = append(parts, s)
		}
		if b.note != "" {
			parts = append(parts, b.note)
		}
		parts = append(parts, b.help.ShortHelpView(b.reminder))
		hint = strings.Join(parts, " ")
	}
	return msg, hint
}

// bannerLines is the banner wrapped to the screen (at most 3 lines).
func (b statusBar) bannerLines() []string {
	if b.banner == "" {
		return nil
	}
	return wrapLines(b.banner, b.width, 3)
}

// Height is how many lines the bar needs: the message and an error's
// hint may wrap to two lines each; the last line has the key reminder
// (cut to fit) or, after an error, only the age of the data.
func (b statusBar) Height() int {
	msg, hint := b.texts()
	n := len(wrapLines(msg, b.width, 2)) + 1 + len(b.bannerLines())
	if b.err != nil {
		n += len(wrapLines(hint, b.width, 2))
	}
	return n
}

// View draws the bar's lines.
func (b statusBar) View() string {
	msg, hint := b.texts()
	var out []string
	for _, l := range b.bannerLines() {
		out = append(out, b.styles.Warning.Render(l))
	}
	st := b.styles.Status
	if b.err != nil {
		st = b.styles.StatusError
	}
	for _, l := range wrapLines(msg, b.width, 2) {
		out = append(out, st.Render(l))
	}
	if b.err != nil {
		for _, l := range wrapLines(hint, b.width, 2) {
			out = append(out, b.styles.Warning.Render(l))
		}
	}
	// The last line ends with the age of the data: after the key
	// reminder, or alone after an error's hint.
	age, keys := b.age, ""
	if b.err == nil {
		keys = hint
	}
	room := b.width - lipgloss.Width(age) - 1
	if room < 0 {
		room, age = b.width, ""
	}
	out = append(out, b.styles.Dim.Render(fit(clip(keys, room), room))+" "+b.styles.Title.Render(age))
	return strings.Join(out, "\n")
}

// syncBar tells the status bar what the screen shows now: the leftover
// banner, the keys for the pane in front, whether the selected mount is
// one the view never unmounts, and the age of the data.
func (m *Model) syncBar() {
	k := m.keys
	b := &m.bar
	b.banner = m.leftoverBanner()
	b.context, b.note = nil, ""
	switch {
	case m.progress.Active():
		b.context = []key.Binding{named(k, k.Cancel, present.CancelTheRun)}
	case m.progress.visible():
		b.context = []key.Binding{named(k, k.Close, "close")}
	case m.focus == focusLower && m.dialog == nil:
		if r, ok := m.holders.current(); ok && r.releasable() {
			b.context = []key.Binding{short(k.Release, "release")}
		}
	}
	system := false
	if mt, ok := m.selectedMount(); ok && !m.progress.visible() && unmount.SystemMount(mt) != unmount.SystemNone {
		system = true
		b.note = present.SystemMount
	}
	b.reminder = k.reminder(system)
	b.age = m.dataAge()
}

// named is b under the name texts use for it (keyMap.name) with a
// description of its own.
func named(k *keyMap, b key.Binding, desc string) key.Binding {
	return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(k.name(b), desc))
}

// dataAge says how old the data on screen is, and whether a scan is
// taking long. When scans are costly the refresh slows down, and it says
// so: "data 1.2s old · refresh 9s (scan 0.6s)".
func (m Model) dataAge() string {
	var s string
	switch {
	case m.quitting:
		return present.WaitingForRun
	case m.scan.running && m.snap != nil && m.now.Sub(m.scan.started) >= time.Second:
		s = "scanning " + age(m.now.Sub(m.scan.started)) + "… data " + age(m.now.Sub(m.snap.Taken)) + " old"
	case m.snap != nil:
		s = "data " + age(m.now.Sub(m.snap.Taken)) + " old"
	default:
		return "scanning…"
	}
	if n := m.scan.note(); n != "" {
		s += " · " + n
	}
	return s
}
