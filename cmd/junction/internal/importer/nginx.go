package importer

import (
	"fmt"
	"strings"
)

// directive is one nginx directive: a name, its arguments and, for a
// block directive, the directives inside.
type directive struct {
	Name     string
	Args     []string
	File     string
	Line     int
	HasBlock bool
	Block    []*directive
}

// nginxLexer splits nginx configuration text into tokens: words (quoted
// with "..." or '...', backslash escapes), ";", "{" and "}". A "#" at the
// start of a token starts a comment to the end of the line.
type nginxLexer struct {
	src  string
	pos  int
	line int
}

type nginxToken struct {
	text   string
	quoted bool // a word, even if it reads ";" or "{"
	line   int
}

func (l *nginxLexer) next() (nginxToken, bool, error) {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\n':
			l.line++
			l.pos++
		case c == ' ' || c == '\t' || c == '\r':
			l.pos++
		case c == '#':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		default:
			return l.word()
		}
	}
	return nginxToken{}, false, nil
}

func (l *nginxLexer) word() (nginxToken, bool, error) {
	start := l.line
	c := l.src[l.pos]
	if c == ';' || c == '{' || c == '}' {
		l.pos++
		return nginxToken{text: string(c), line: start}, true, nil
	}
	if c == '"' || c == '\'' {
		l.pos++
		var b strings.Builder
		for l.pos < len(l.src) {
			d := l.src[l.pos]
			l.pos++
			switch {
			case d == c:
				return nginxToken{text: b.String(), quoted: true, line: start}, true, nil
			case d == '\\' && l.pos < len(l.src):
				e := l.src[l.pos]
				l.pos++
				switch e {
				case '"', '\'', '\\':
					b.WriteByte(e)
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				default:
					b.WriteByte('\\')
					b.WriteByte(e)
				}
				if e == '\n' {
					l.line++
				}
			default:
				if d == '\n' {
					l.line++
				}
				b.WriteByte(d)
			}
		}
		return nginxToken{}, false, fmt.Errorf("line %d: unterminated quoted string", start)
	}
	var b strings.Builder
	for l.pos < len(l.src) {
		d := l.src[l.pos]
		switch {
		case d == ' ' || d == '\t' || d == '\r' || d == '\n' || d == ';' || d == '}':
			return nginxToken{text: b.String(), line: start}, true, nil
		case d == '{':
			// "${name}" is a variable inside a word; any other "{" opens a block.
			if strings.HasSuffix(b.String(), "$") {
				end := strings.IndexByte(l.src[l.pos:], '}')
				if end < 0 {
					return nginxToken{}, false, fmt.Errorf("line %d: unterminated ${", start)
				}
				b.WriteString(l.src[l.pos : l.pos+end+1])
				l.pos += end + 1
				continue
			}
			return nginxToken{text: b.String(), line: start}, true, nil
		case d == '\\' && l.pos+1 < len(l.src):
			b.WriteByte(d)
			b.WriteByte(l.src[l.pos+1])
			if l.src[l.pos+1] == '\n' {
				l.line++
			}
			l.pos += 2
		default:
			b.WriteByte(d)
			l.pos++
		}
	}
	return nginxToken{text: b.String(), line: start}, true, nil
}

// parseNginx parses one file's text into directives (includes are not
// followed here).
func parseNginx(file, src string) ([]*directive, error) {
	l := &nginxLexer{src: src, line: 1}
	ds, closed, err := parseNginxBlock(l, file, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if closed {
		return nil, fmt.Errorf("%s: line %d: unexpected \"}\"", file, l.line)
	}
	return ds, nil
}

// maxNesting bounds block nesting (nginx's own configurations nest four or
// five levels).
const maxNesting = 64

func parseNginxBlock(l *nginxLexer, file string, depth int) ([]*directive, bool, error) {
	if depth > maxNesting {
		return nil, false, fmt.Errorf("line %d: blocks nested deeper than %d", l.line, maxNesting)
	}
	var out []*directive
	var cur *directive
	for {
		t, ok, err := l.next()
		if err != nil {
			return nil, false, err
		}
		if !ok {
			if cur != nil {
				return nil, false, fmt.Errorf("line %d: %q is not terminated by \";\"", cur.Line, cur.Name)
			}
			return out, false, nil
		}
		special := !t.quoted && (t.text == ";" || t.text == "{" || t.text == "}")
		switch {
		case !special && cur == nil:
			cur = &directive{Name: t.text, File: file, Line: t.line}
		case !special:
			cur.Args = append(cur.Args, t.text)
		case t.text == ";":
			if cur == nil {
				return nil, false, fmt.Errorf("line %d: unexpected \";\"", t.line)
			}
			out = append(out, cur)
			cur = nil
		case t.text == "{":
			if cur == nil {
				return nil, false, fmt.Errorf("line %d: unexpected \"{\"", t.line)
			}
			inner, closed, err := parseNginxBlock(l, file, depth+1)
			if err != nil {
				return nil, false, err
			}
			if !closed {
				return nil, false, fmt.Errorf("line %d: block %q is not closed", cur.Line, cur.Name)
			}
			cur.HasBlock, cur.Block = true, inner
			out = append(out, cur)
			cur = nil
		case t.text == "}":
			if cur != nil {
				return nil, false, fmt.Errorf("line %d: %q is not terminated by \";\"", cur.Line, cur.Name)
			}
			if depth == 0 {
				return nil, true, nil
			}
			return out, true, nil
		}
	}
}

// renderNginx writes directives back as nginx text, every argument
// quoted, so that parsing the output gives the same directives.
func renderNginx(ds []*directive, indent string, w *strings.Builder) {
	for _, d := range ds {
		w.WriteString(indent + nginxQuote(d.Name))
		for _, a := range d.Args {
			w.WriteString(" " + nginxQuote(a))
		}
		if d.HasBlock {
			w.WriteString(" {\n")
			renderNginx(d.Block, indent+"    ", w)
			w.WriteString(indent + "}\n")
			continue
		}
		w.WriteString(";\n")
	}
}

func nginxQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// loadNginx parses path and the files it includes, in place.
func loadNginx(path string, prefix string, depth int) ([]*directive, error) {
	if depth > maxIncludeDepth {
		return nil, fmt.Errorf("%s: includes nested deeper than %d (a cycle?)", path, maxIncludeDepth)
	}
	src, err := readFile(path)
	if err != nil {
		return nil, err
	}
	ds, err := parseNginx(path, string(src))
	if err != nil {
		return nil, err
	}
	return expandNginxIncludes(ds, path, prefix, depth)
}

func expandNginxIncludes(ds []*directive, path, prefix string, depth int) ([]*directive, error) {
	var out []*directive
	for _, d := range ds {
		if d.Name == "include" && !d.HasBlock && len(d.Args) == 1 {
			files, err := expandInclude(d.Args[0], path, prefix, "/etc/nginx")
			if err != nil {
				return nil, fmt.Errorf("%s:%d: include: %w", d.File, d.Line, err)
			}
			for _, f := range files {
				inc, err := loadNginx(f, prefix, depth+1)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: include: %w", d.File, d.Line, err)
				}
				out = append(out, inc...)
			}
			continue
		}
		if d.HasBlock {
			inner, err := expandNginxIncludes(d.Block, path, prefix, depth)
			if err != nil {
				return nil, err
			}
			d.Block = inner
		}
		out = append(out, d)
	}
	return out, nil
}
