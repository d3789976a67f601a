package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// Man writes the manual page NAME(1) in roff (man(7) macros), from the same
// table as --help: `mounttop man > mounttop.1`; `man ./mounttop.1`.
// version goes in the page's footer.
func (p *Program) Man(w io.Writer, version string) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 \"\" \"%s %s\" \"User Commands\"\n", strings.ToUpper(p.Name), p.Name, roff(version))
	b.WriteString(".SH NAME\n" + p.Name + " \\- " + roff(p.Brief) + "\n")
	for _, section := range []func(*strings.Builder){p.manSynopsis, p.manCommands, p.manOptions, p.manKeys, p.manExit, p.manJSON} {
		section(&b)
	}
	entries(&b, "FILES", p.Files)
	entries(&b, "ENVIRONMENT", p.Environment)
	p.manExamples(&b)
	p.manSeeAlso(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (p *Program) manSynopsis(b *strings.Builder) {
	b.WriteString(".SH SYNOPSIS\n")
	for i, c := range append([]*Command{&p.Root}, p.visible()...) {
		for j, s := range p.synopsis(c) {
			if i+j > 0 {
				b.WriteString(".br\n")
			}
			name, rest, _ := strings.Cut(s, " ")
			fmt.Fprintf(b, ".B %s\n", name)
			if rest != "" {
				b.WriteString(roff(rest) + "\n")
			}
		}
	}
	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(b, p.Root.Description)
}

func (p *Program) manCommands(b *strings.Builder) {
	b.WriteString(".SH COMMANDS\n")
	for _, c := range p.visible() {
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roff(c.Name), roff(sentence(c.Brief)))
		for _, para := range c.Description {
			b.WriteString(".IP\n" + roff(para) + "\n")
		}
	}
}

func (p *Program) manOptions(b *strings.Builder) {
	b.WriteString(".SH OPTIONS\n")
	for _, c := range append([]*Command{&p.Root}, p.visible()...) {
		if len(c.Flags) == 0 && len(c.Args) == 0 {
			continue
		}
		title := p.Name + " (the interactive view)"
		if c.Name != "" {
			title = p.Name + " " + c.Name
		}
		fmt.Fprintf(b, ".SS \"%s\"\n", roff(title))
		for _, a := range c.Args {
			fmt.Fprintf(b, ".TP\n.I %s\n%s\n", roff(a.Name), roff(a.Help))
		}
		for _, f := range c.Flags {
			if f.Kind == Bool {
				fmt.Fprintf(b, ".TP\n.B %s\n", roff("--"+f.Name))
			} else {
				fmt.Fprintf(b, ".TP\n.BI \"%s \" %s\n", roff("--"+f.Name), roff(f.Arg))
			}
			b.WriteString(roff(f.FullHelp()) + "\n")
		}
	}
}

func (p *Program) manKeys(b *strings.Builder) {
	b.WriteString(".SH KEYS\nIn the interactive view:\n")
	for _, g := range p.Keys {
		fmt.Fprintf(b, ".SS \"%s\"\n.PD 0\n", roff(g.Name))
		for _, k := range g.Keys {
			fmt.Fprintf(b, ".TP 12\n.B \"%s\"\n%s\n", roff(k.Keys), roff(k.Help))
		}
		b.WriteString(".PD\n")
	}
}

func (p *Program) manExit(b *strings.Builder) {
	b.WriteString(".SH \"EXIT STATUS\"\n")
	for _, e := range p.ExitCodes {
		text := e.Meaning
		if len(e.Only) > 0 {
			text += " (" + strings.Join(e.Only, ", ") + ")"
		}
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roff(e.Code), roff(sentence(text)))
	}
}

func (p *Program) manJSON(b *strings.Builder) {
	if len(p.JSON) == 0 {
		return
	}
	b.WriteString(".SH \"JSON FIELDS\"\n")
	b.WriteString("Names from the system are carried exactly: invalid UTF\\-8 as \\e\\&udcXX escapes.\n")
	for _, d := range p.JSON {
		fmt.Fprintf(b, ".SS \"%s\"\n%s\n.PD 0\n", roff(d.Name), roff(d.What))
		for _, f := range JSONFields(d.Type) {
			fmt.Fprintf(b, ".TP 32\n.B %s\n%s\n", roff(f.Path), roff(f.Type))
		}
		b.WriteString(".PD\n")
	}
}

func (p *Program) manExamples(b *strings.Builder) {
	if len(p.Examples) == 0 {
		return
	}
	b.WriteString(".SH EXAMPLES\n")
	for _, e := range p.Examples {
		fmt.Fprintf(b, ".SS \"%s\"\n%s\n", roff(e.Title), roff(e.Text))
		if len(e.Commands) > 0 {
			b.WriteString(".PP\n.RS 4\n.nf\n")
			for _, c := range e.Commands {
				b.WriteString(roff(c) + "\n")
			}
			b.WriteString(".fi\n.RE\n")
		}
	}
}

func (p *Program) manSeeAlso(b *strings.Builder) {
	if len(p.SeeAlso) == 0 {
		return
	}
	b.WriteString(".SH \"SEE ALSO\"\n")
	for i, s := range p.SeeAlso {
		name, sec, _ := strings.Cut(strings.TrimSuffix(s, ")"), "(")
		sep := ","
		if i == len(p.SeeAlso)-1 {
			sep = ""
		}
		fmt.Fprintf(b, ".BR %s (%s)%s\n", roff(name), sec, sep)
	}
}

func paragraphs(b *strings.Builder, ps []string) {
	for i, para := range ps {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roff(para) + "\n")
	}
}

func entries(b *strings.Builder, name string, es []Entry) {
	if len(es) == 0 {
		return
	}
	b.WriteString(".SH " + name + "\n")
	for _, e := range es {
		fmt.Fprintf(b, ".TP\n.I %s\n%s\n", roff(e.Name), roff(e.Help))
	}
}

// sentence capitalises nothing but ends text with a full stop.
func sentence(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// roff escapes text for one input line of roff: a backslash as \e, every
// hyphen as \- (so options copy as ASCII minus), a line that would start
// with a control character (. or ') guarded by \&, line breaks as spaces,
// and every non-ASCII character as \[uXXXX] (groff reads its input as
// Latin-1 and warns about bytes it cannot take).
func roff(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r == '"':
			b.WriteString(`\(dq`)
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		case i == 0 && (r == '.' || r == '\''):
			b.WriteString(`\&` + string(r))
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// JSONField is one field of a JSON document: its path ("mounts[].unique_id")
// and its JSON type.
type JSONField struct{ Path, Type string }

// JSONFields lists the fields of the JSON encoding of t, depth first, by
// the json tags encoding/json itself uses (embedded structs flattened,
// "-" and unexported fields left out).
func JSONFields(t reflect.Type) []JSONField {
	var out []JSONField
	jsonFields(t, "", &out, map[reflect.Type]bool{})
	return out
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

func jsonFields(t reflect.Type, prefix string, out *[]JSONField, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			jsonFields(f.Type, prefix, out, seen)
			continue
		}
		if name == "" {
			name = f.Name
		}
		path := prefix + name
		typ := jsonType(f.Type)
		if strings.Contains(opts, "omitempty") {
			typ = strings.TrimSuffix(typ, " or null") + ", omitted when empty" // a nil pointer is omitted, not null
		}
		*out = append(*out, JSONField{path, typ})
		elem := f.Type
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		switch elem.Kind() {
		case reflect.Slice, reflect.Array:
			jsonFields(elem.Elem(), path+"[].", out, seen)
		case reflect.Struct:
			if elem != timeType {
				jsonFields(elem, path+".", out, seen)
			}
		}
	}
}

// jsonType names the JSON type of a Go type.
func jsonType(t reflect.Type) string {
	null := ""
	for t.Kind() == reflect.Pointer {
		t, null = t.Elem(), " or null"
	}
	switch {
	case t == timeType:
		return "string (RFC 3339 time)" + null
	case t.Kind() == reflect.String:
		return "string" + null
	case t.Kind() == reflect.Bool:
		return "boolean" + null
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "number" + null
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "array of " + jsonType(t.Elem()) + "s" + null
	case t.Kind() == reflect.Map:
		return "object" + null
	case t.Kind() == reflect.Struct:
		return "object" + null
	case t.Implements(marshalerType):
		return "string" + null
	}
	return "value" + null
}
