package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// helpWidth is the width --help wraps its prose at.
const helpWidth = 78

// synopsis is c's usage lines, each starting with the program's name.
func (p *Program) synopsis(c *Command) []string {
	var out []string
	for _, s := range c.Synopsis {
		out = append(out, strings.Join(strings.Fields(p.Name+" "+c.Name+" "+s), " "))
	}
	if len(out) == 0 {
		out = append(out, strings.TrimSpace(p.Name+" "+c.Name))
	}
	return out
}

// FlagUsage is how a flag is written with its value: "--timeout D".
func (f *Flag) FlagUsage() string {
	if f.Kind == Bool {
		return "--" + f.Name
	}
	return "--" + f.Name + " " + f.Arg
}

// FullHelp is the help text of the flag: its help, the accepted values and
// the default.
func (f *Flag) FullHelp() string {
	var notes []string
	if f.Kind == Enum && !slices.ContainsFunc(f.Values, func(v string) bool { return strings.Contains(f.Help, v) }) {
		notes = append(notes, "one of "+strings.Join(f.Values, ", "))
	}
	if f.Default != "" && f.Kind != Bool {
		notes = append(notes, "default "+f.Default)
	}
	if len(notes) == 0 {
		return f.Help
	}
	return f.Help + " (" + strings.Join(notes, "; ") + ")"
}

// exitCodes are the exit codes c can end with.
func (p *Program) exitCodes(c *Command) []ExitCode {
	var out []ExitCode
	for _, e := range p.ExitCodes {
		if len(e.Only) == 0 || slices.Contains(e.Only, c.Name) {
			out = append(out, e)
		}
	}
	return out
}

// Help writes the --help of command name ("" for mounttop itself: the
// full help, with every command, the view's flags and keys).
func (p *Program) Help(w io.Writer, name string) error {
	c := &p.Root
	if name != "" {
		var ok bool
		if c, ok = p.Command(name); !ok {
			return fmt.Errorf("cli: no command %q", name)
		}
	}
	var b strings.Builder
	usage := p.synopsis(c)
	if name == "" {
		for _, sc := range p.visible() {
			usage = append(usage, p.synopsis(sc)...)
		}
	}
	b.WriteString("usage: " + strings.Join(usage, "\n       ") + "\n")
	for _, para := range c.Description {
		b.WriteString("\n" + wrap(para, 0) + "\n")
	}
	if name == "" {
		b.WriteString("\nCommands:\n")
		for _, sc := range p.visible() {
			b.WriteString(column(sc.Name, sc.Brief, 10))
		}
		b.WriteString("Run \"" + p.Name + " COMMAND --help\" for a command's flags; " + p.Name + "(1) has it all.\n")
	}
	if len(c.Args) > 0 {
		b.WriteString("\nArguments:\n")
		for _, a := range c.Args {
			b.WriteString(column(a.Name, a.Help, 10))
		}
	}
	if len(c.Flags) > 0 {
		b.WriteString("\nFlags:\n")
		for _, f := range c.Flags {
			b.WriteString(column(f.FlagUsage(), f.FullHelp(), 22))
		}
	}
	if name == "" {
		p.keysHelp(&b)
	}
	b.WriteString("\nExit codes:\n")
	for _, e := range p.exitCodes(c) {
		b.WriteString(column(e.Code, e.Meaning, 8))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// keysHelp lists the view's keys.
func (p *Program) keysHelp(b *strings.Builder) {
	b.WriteString("\nKeys of the interactive view:\n")
	for _, g := range p.Keys {
		for _, k := range g.Keys {
			b.WriteString(column(k.Keys, k.Help, 10))
		}
	}
}

// column is one "  NAME  text" entry: the text wrapped beside a name
// column of width at least w, or below it when the name is longer.
func column(name, text string, w int) string {
	indent := 2 + w + 2
	body := wrap(text, indent)
	head := "  " + name
	if ansi.StringWidth(head) <= indent-2 {
		return head + strings.Repeat(" ", indent-ansi.StringWidth(head)) + body[indent:] + "\n"
	}
	return head + "\n" + body + "\n"
}

// wrap wraps text at helpWidth, between words only, with every line
// indented by indent. (x/ansi's Wordwrap also breaks after a hyphen, which
// would split a flag name such as --call-timeout across two lines.)
func wrap(text string, indent int) string {
	pad := strings.Repeat(" ", indent)
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && ansi.StringWidth(line)+1+ansi.StringWidth(w) > helpWidth-indent {
			lines = append(lines, pad+line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, pad+line), "\n")
}
