package ui

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Styles is every look the interface uses, built once by newStyles; View
// code picks a field here and never a colour. Under NO_COLOR lipgloss
// renders with the ASCII profile and drops all of these, so nothing on
// screen may rely on a style alone: the cursor, focus and busy marks are
// also characters ('>', '*', the ▶ in a focused title).
type Styles struct {
	Title        lipgloss.Style // the top line
	PaneTitle    lipgloss.Style // an unfocused pane's title line
	PaneTitleOn  lipgloss.Style // the focused pane's title line
	Header       lipgloss.Style // column headers
	Cursor       lipgloss.Style // the selected row in the focused pane
	CursorBlur   lipgloss.Style // the selected row in an unfocused pane
	Busy         lipgloss.Style // a mount that has holders
	Context      lipgloss.Style // an ancestor shown only for a filter match
	Dim          lipgloss.Style // secondary text: sources, times, hints
	Section      lipgloss.Style // "Same filesystem elsewhere", "Warnings"
	Warning      lipgloss.Style
	Error        lipgloss.Style
	OK           lipgloss.Style // a good result: gone, revoked
	Pending      lipgloss.Style
	Refused      lipgloss.Style
	Status       lipgloss.Style // the status bar
	StatusError  lipgloss.Style
	Dialog       lipgloss.Style // the confirm dialog's frame
	DialogTitle  lipgloss.Style
	Choice       lipgloss.Style // a dialog choice
	ChoiceOn     lipgloss.Style // the chosen one
	Key          lipgloss.Style // a key name in help
	Filter       lipgloss.Style // the filter prompt
	ProgressHead lipgloss.Style

	// Plain: the terminal shows no colour (NO_COLOR, or the ASCII profile
	// of the golden screens), so the charts are drawn in ASCII.
	Plain bool
}

func newStyles() Styles {
	accent := lipgloss.AdaptiveColor{Light: "#005f87", Dark: "#5fafff"}
	red := lipgloss.AdaptiveColor{Light: "#af0000", Dark: "#ff5f5f"}
	amber := lipgloss.AdaptiveColor{Light: "#875f00", Dark: "#ffaf00"}
	green := lipgloss.AdaptiveColor{Light: "#005f00", Dark: "#87d75f"}
	dim := lipgloss.AdaptiveColor{Light: "#6c6c6c", Dark: "#8a8a8a"}
	return Styles{
		Title:        lipgloss.NewStyle().Bold(true),
		PaneTitle:    lipgloss.NewStyle().Foreground(dim),
		PaneTitleOn:  lipgloss.NewStyle().Bold(true).Foreground(accent),
		Header:       lipgloss.NewStyle().Underline(true),
		Cursor:       lipgloss.NewStyle().Reverse(true),
		CursorBlur:   lipgloss.NewStyle().Underline(true),
		Busy:         lipgloss.NewStyle().Bold(true).Foreground(amber),
		Context:      lipgloss.NewStyle().Foreground(dim),
		Dim:          lipgloss.NewStyle().Foreground(dim),
		Section:      lipgloss.NewStyle().Bold(true),
		Warning:      lipgloss.NewStyle().Foreground(amber),
		Error:        lipgloss.NewStyle().Bold(true).Foreground(red),
		OK:           lipgloss.NewStyle().Bold(true).Foreground(green),
		Pending:      lipgloss.NewStyle().Foreground(amber),
		Refused:      lipgloss.NewStyle().Bold(true).Foreground(red),
		Status:       lipgloss.NewStyle(),
		StatusError:  lipgloss.NewStyle().Bold(true).Foreground(red),
		Dialog:       lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(amber).Padding(0, 1),
		DialogTitle:  lipgloss.NewStyle().Bold(true),
		Choice:       lipgloss.NewStyle(),
		ChoiceOn:     lipgloss.NewStyle().Reverse(true).Bold(true),
		Key:          lipgloss.NewStyle().Bold(true).Foreground(accent),
		Filter:       lipgloss.NewStyle().Foreground(accent),
		ProgressHead: lipgloss.NewStyle().Bold(true),
		Plain:        lipgloss.ColorProfile() == termenv.Ascii,
	}
}
