package cli

import (
	"bufio"
	"io"
	"os"
	"strings"

	"github.com/charmbracelet/x/term"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(f.Fd()) }

// AskYes asks question on prompt and reads the answer from in, defaulting
// to No. With no terminal on in it refuses without asking (exit 2): a
// script must say --yes. what names the command in the refusals.
func AskYes(in *os.File, prompt io.Writer, what, question string) error {
	if !IsTerminal(in) {
		return Usagef("%s: refusing to act without confirmation: stdin is not a terminal (add --yes; nothing changed)", what)
	}
	if _, err := io.WriteString(prompt, question); err != nil {
		return err
	}
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return Usagef("%s: not confirmed; nothing changed", what)
}
