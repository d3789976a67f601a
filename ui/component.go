package ui

import (
	"github.com/charmbracelet/bubbles/help"
	tea "github.com/charmbracelet/bubbletea"
)

// component is the contract every part of the view keeps (soft-serve's
// pkg/ui/common.Component): a tea model whose Update returns its own
// concrete type, a View, a size given by the root's layout, and its key
// help from the one keyMap (help.KeyMap), so a pane's keys and the texts
// that name them cannot drift.
type component[T any] interface {
	Update(tea.Msg) (T, tea.Cmd)
	View() string
	SetSize(width, height int)
	help.KeyMap
}

var (
	_ component[treePane]      = (*treePane)(nil)
	_ component[holdersPane]   = (*holdersPane)(nil)
	_ component[progressPane]  = (*progressPane)(nil)
	_ component[confirmDialog] = (*confirmDialog)(nil)
	_ component[helpScreen]    = (*helpScreen)(nil)
	_ component[statusBar]     = (*statusBar)(nil)
)
