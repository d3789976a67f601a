// Package cli is mounttop's command line, declared once: every subcommand,
// its synopsis and description, each flag with its help, the exit codes,
// the view's keys, the files and the environment live in one Program
// table. The same table parses the arguments (the standard flag package,
// one FlagSet built from it per command), prints --help, writes the man
// page mounttop(1) (Man) and the shell completion scripts (Completion), so
// none of them can drift from the others (util-linux findmnt's infos[]
// manner, applied to commands).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a flag's value.
type Kind int

const (
	Bool     Kind = iota // a switch: --json, --json=false
	String               // any text: --proc DIR
	Duration             // a Go duration: --timeout 30s (time.ParseDuration)
	Uint                 // an unsigned number: --id 12345
	Enum                 // one of Flag.Values: --revoke close
)

// Complete says what a shell completes for a flag's value or a
// positional argument.
type Complete int

const (
	CompleteNone   Complete = iota
	CompleteFile            // any path (a journal file)
	CompleteDir             // a directory (a proc root)
	CompleteMounts          // a mount point of the mount table (`mounttop __complete mounts`)
	CompleteValues          // Flag.Values or Arg.Values
)

// Flag is one flag of one command.
type Flag struct {
	Name     string   // without dashes: "timeout"
	Kind     Kind     //
	Arg      string   // the value's name in help: "D", "DIR", "PATH|-"
	Default  string   // parsed by Kind; "" is the zero value
	Values   []string // Enum: the accepted values, in order
	Help     string   // what it does, one or more sentences
	Complete Complete // what a shell completes for its value
}

// Arg is a positional argument.
type Arg struct {
	Name     string // "PATH"
	Help     string
	Values   []string // enumerable values (completion's shell names)
	Complete Complete
}

// Command is one subcommand; the Program's Root is mounttop itself (the
// interactive view).
type Command struct {
	Name        string   // "umount"; "" for the root
	Hidden      bool     // not listed in help or completion (man, __complete)
	Brief       string   // one line, for command lists and NAME
	Synopsis    []string // usage lines after "mounttop NAME"
	Description []string // paragraphs
	Flags       []Flag
	Args        []Arg
}

// ExitCode is one exit status.
type ExitCode struct {
	Code    string // "0", "128+N"
	Meaning string
	Only    []string // the commands that use it; empty: every command
}

// KeyGroup is a topic of the interactive view's keys (from ui's keymap).
type KeyGroup struct {
	Name string
	Keys []Key
}

// Key is one binding: the keys as shown ("↑/k") and what it does.
type Key struct{ Keys, Help string }

// Entry is a named paragraph: a file, an environment variable.
type Entry struct{ Name, Help string }

// Example is an incident and the commands that resolve it.
type Example struct {
	Title    string
	Text     string
	Commands []string
}

// JSONDoc is a JSON document a command prints; its fields are read from
// the document type's json tags, so the man page cannot drift from it.
type JSONDoc struct {
	Name string // "mounttop list --json"
	What string
	Type reflect.Type
}

// Program is the whole command line.
type Program struct {
	Name        string // "mounttop"
	Brief       string
	Root        Command
	Commands    []Command
	ExitCodes   []ExitCode
	Keys        []KeyGroup
	JSON        []JSONDoc
	Files       []Entry
	Environment []Entry
	Examples    []Example
	SeeAlso     []string // "findmnt(8)"
}

// Command returns the subcommand called name.
func (p *Program) Command(name string) (*Command, bool) {
	for i := range p.Commands {
		if p.Commands[i].Name == name {
			return &p.Commands[i], true
		}
	}
	return nil, false
}

// visible are the commands help and completion list.
func (p *Program) visible() []*Command {
	var out []*Command
	for i := range p.Commands {
		if !p.Commands[i].Hidden {
			out = append(out, &p.Commands[i])
		}
	}
	return out
}

// ErrHelp is returned by Parse when --help (or -h) was given.
var ErrHelp = errors.New("help requested")

// UsageError is bad input: one line for stderr, exit 2, nothing changed.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// Parsed is one command's parsed arguments.
type Parsed struct {
	cmd  *Command
	vals map[string]*value
	// Pos are the positional arguments, flags removed (flags may come
	// before, between or after them; after "--" all is positional).
	Pos []string
}

// value is a flag's flag.Value: it parses by the flag's Kind and keeps
// whether the command line set it.
type value struct {
	f   *Flag
	set bool
	s   string
	b   bool
	d   time.Duration
	u   uint64
	bad *badValue // the last rejected value, for the one-line message
}

type badValue struct {
	flag, value string
	err         error
}

func (v *value) String() string {
	if v == nil || v.f == nil {
		return ""
	}
	switch v.f.Kind {
	case Bool:
		return strconv.FormatBool(v.b)
	case Duration:
		return v.d.String()
	case Uint:
		return strconv.FormatUint(v.u, 10)
	}
	return v.s
}

func (v *value) IsBoolFlag() bool { return v.f.Kind == Bool }

func (v *value) Set(s string) error {
	if err := v.parse(s); err != nil {
		v.bad = &badValue{v.f.Name, s, err}
		return err
	}
	v.set = true
	return nil
}

func (v *value) parse(s string) error {
	var err error
	switch v.f.Kind {
	case Bool:
		v.b, err = strconv.ParseBool(s)
	case Duration:
		v.d, err = time.ParseDuration(s)
	case Uint:
		v.u, err = strconv.ParseUint(s, 0, 64)
	case Enum:
		if !slices.Contains(v.f.Values, s) {
			return fmt.Errorf("one of %s", strings.Join(v.f.Values, ", "))
		}
		v.s = s
	default:
		v.s = s
	}
	if ne, ok := err.(*strconv.NumError); ok {
		err = ne.Err // "invalid syntax", without strconv's function name
	}
	return err
}

// Parse parses args for c: the flags of the table, before, between or
// after the positional arguments. --help gives ErrHelp; a bad flag or
// value a UsageError of one line naming the command.
func (c *Command) Parse(args []string) (*Parsed, error) {
	p := &Parsed{cmd: c, vals: map[string]*value{}}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for i := range c.Flags {
		f := &c.Flags[i]
		v := &value{f: f}
		if f.Default != "" {
			if err := v.parse(f.Default); err != nil {
				panic(fmt.Sprintf("cli: default %q of --%s: %v", f.Default, f.Name, err))
			}
		}
		p.vals[f.Name] = v
		fs.Var(v, f.Name, f.Help)
	}
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, c.parseError(p, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		p.Pos = append(p.Pos, args[0])
		args = args[1:]
	}
	p.Pos = append(p.Pos, rest...)
	return p, nil
}

func (c *Command) parseError(p *Parsed, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return ErrHelp
	}
	prefix, see := "", "mounttop --help"
	if c.Name != "" {
		prefix, see = c.Name+": ", "mounttop "+c.Name+" --help"
	}
	for _, v := range p.vals {
		if v.bad != nil {
			return Usagef("%sinvalid value %q for --%s: %v (see %s)", prefix, v.bad.value, v.bad.flag, v.bad.err, see)
		}
	}
	return Usagef("%s%v (see %s)", prefix, err, see)
}

func (p *Parsed) get(name string) *value {
	v, ok := p.vals[name]
	if !ok {
		panic("cli: " + p.cmd.Name + " has no flag --" + name)
	}
	return v
}

// Bool, String, Duration and Uint are a flag's value (its default when
// not given).
func (p *Parsed) Bool(name string) bool              { return p.get(name).b }
func (p *Parsed) String(name string) string          { return p.get(name).s }
func (p *Parsed) Duration(name string) time.Duration { return p.get(name).d }
func (p *Parsed) Uint(name string) uint64            { return p.get(name).u }

// Given reports whether the command line set the flag.
func (p *Parsed) Given(name string) bool { return p.get(name).set }

// GivenOnly reports whether every flag given is among names.
func (p *Parsed) GivenOnly(names ...string) bool {
	for n, v := range p.vals {
		if v.set && !slices.Contains(names, n) {
			return false
		}
	}
	return true
}

// Root reports whether these are the arguments of mounttop itself (the
// interactive view), not of a subcommand.
func (p *Parsed) Root() bool { return p.cmd.Name == "" }
