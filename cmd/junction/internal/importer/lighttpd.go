package importer

import (
	"fmt"
	"strconv"
	"strings"
)

// lighttpd's configuration language (lighttpd 1.4): assignments with "=",
// "+=" and ":=", values made of strings, integers, arrays "( ... )" with
// optional "key => value" entries and "+" concatenation, variables
// (var.NAME, env.NAME), conditionals "$HTTP["url"] =~ "^/x/" { ... }" with
// "else" chains, include and include_shell.

// lval is a lighttpd value.
type lval struct {
	kind lkind
	str  string
	num  int
	arr  []lelem
}

type lkind int

const (
	lString lkind = iota
	lInt
	lArray
)

// lelem is an array entry; key is set for "key => value".
type lelem struct {
	key    string
	hasKey bool
	val    lval
}

// lstmt is a statement: an assignment, an include, or a conditional with
// its body and else branch.
type lstmt struct {
	kind   lstmtKind
	key    string // assignment key; include file
	op     string // "=", "+=", ":="
	val    lval
	file   string
	line   int
	cond   *lcond // nil for a bare else
	body   []*lstmt
	orElse *lstmt
}

type lstmtKind int

const (
	lAssign lstmtKind = iota
	lInclude
	lIncludeShell
	lCond
)

type lcond struct {
	field, key, op, pattern string
}

func (c *lcond) String() string {
	return fmt.Sprintf("$%s[%q] %s %q", c.field, c.key, c.op, c.pattern)
}

type ltok struct {
	kind byte // 's' string, 'n' number, 'i' identifier, 'o' operator/punctuation
	text string
	line int
}

type lighttpdParser struct {
	file string
	toks []ltok
	pos  int
	vars map[string]lval
	// depth is the include depth of file; included files are parsed where
	// they are included, so their var.* definitions are seen in order.
	depth int
}

func lexLighttpd(src string) ([]ltok, error) {
	var out []ltok
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"':
			var b strings.Builder
			start := line
			i++
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("line %d: unterminated string", start)
				}
				d := src[i]
				if d == '"' {
					i++
					break
				}
				if d == '\\' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\\') {
					b.WriteByte(src[i+1])
					i += 2
					continue
				}
				if d == '\n' {
					line++
				}
				b.WriteByte(d)
				i++
			}
			out = append(out, ltok{'s', b.String(), start})
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			out = append(out, ltok{'n', src[i:j], line})
			i = j
		case isLIdent(c):
			j := i
			for j < len(src) && (isLIdent(src[j]) || src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == '-') {
				j++
			}
			out = append(out, ltok{'i', src[i:j], line})
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "+=", ":=", "==", "!=", "=~", "!~", "=^", "=$", "=>":
				out = append(out, ltok{'o', two, line})
				i += 2
				continue
			}
			if strings.IndexByte("=(){}[],+$", c) < 0 {
				return nil, fmt.Errorf("line %d: unexpected character %q", line, c)
			}
			out = append(out, ltok{'o', string(c), line})
			i++
		}
	}
	return out, nil
}

func isLIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// parseLighttpd parses one file. vars carries var.* definitions across
// included files.
func parseLighttpd(file, src string, vars map[string]lval, depth int) ([]*lstmt, error) {
	toks, err := lexLighttpd(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p := &lighttpdParser{file: file, toks: toks, vars: vars, depth: depth}
	out, err := p.stmts(0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("%s: line %d: unexpected %q", file, p.toks[p.pos].line, p.toks[p.pos].text)
	}
	return out, nil
}

func (p *lighttpdParser) peek() (ltok, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return ltok{}, false
}

func (p *lighttpdParser) take() (ltok, error) {
	t, ok := p.peek()
	if !ok {
		return ltok{}, fmt.Errorf("unexpected end of file")
	}
	p.pos++
	return t, nil
}

func (p *lighttpdParser) expect(text string) error {
	t, err := p.take()
	if err != nil {
		return fmt.Errorf("%w: want %q", err, text)
	}
	if t.kind != 'o' || t.text != text {
		return fmt.Errorf("line %d: want %q, got %q", t.line, text, t.text)
	}
	return nil
}

// stmts parses statements until "}" (not consumed) or the end.
func (p *lighttpdParser) stmts(depth int) ([]*lstmt, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("conditionals nested deeper than %d", maxNesting)
	}
	var out []*lstmt
	for {
		t, ok := p.peek()
		if !ok || t.kind == 'o' && t.text == "}" {
			return out, nil
		}
		s, err := p.stmt(depth)
		if err != nil {
			return nil, err
		}
		if s != nil {
			out = append(out, s)
		}
	}
}

func (p *lighttpdParser) stmt(depth int) (*lstmt, error) {
	t, _ := p.take()
	switch {
	case t.kind == 'o' && t.text == "$":
		p.pos--
		return p.conditional(depth)
	case t.kind == 'i' && (t.text == "include" || t.text == "include_shell"):
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if v.kind != lString {
			return nil, fmt.Errorf("line %d: %s needs a string", t.line, t.text)
		}
		s := &lstmt{kind: lInclude, key: v.str, file: p.file, line: t.line}
		if t.text == "include_shell" {
			s.kind = lIncludeShell
			return s, nil
		}
		files, err := expandInclude(v.str, p.file, "/etc/lighttpd")
		if err != nil {
			return nil, fmt.Errorf("line %d: include: %w", t.line, err)
		}
		for _, f := range files {
			inc, err := loadLighttpd(f, p.vars, p.depth+1)
			if err != nil {
				return nil, fmt.Errorf("line %d: include: %w", t.line, err)
			}
			s.body = append(s.body, inc...)
		}
		return s, nil
	case t.kind == 'i' && t.text == "globals":
		// "globals { ... }" holds ordinary assignments.
		if err := p.expect("{"); err != nil {
			return nil, err
		}
		body, err := p.stmts(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect("}"); err != nil {
			return nil, err
		}
		return &lstmt{kind: lCond, file: p.file, line: t.line, body: body}, nil
	case t.kind == 'i':
		op, err := p.take()
		if err != nil {
			return nil, err
		}
		if op.kind != 'o' || (op.text != "=" && op.text != "+=" && op.text != ":=") {
			return nil, fmt.Errorf("line %d: want =, += or := after %q", op.line, t.text)
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		// Later values may name any key set before (var.x, server.port);
		// a conditional's own settings are not the global ones.
		if depth > 0 && !strings.HasPrefix(t.text, "var.") {
			return &lstmt{kind: lAssign, key: t.text, op: op.text, val: v, file: p.file, line: t.line}, nil
		}
		if old, ok := p.vars[t.text]; ok && op.text == "+=" {
			p.vars[t.text] = lconcat(old, v)
		} else {
			p.vars[t.text] = v
		}
		return &lstmt{kind: lAssign, key: t.text, op: op.text, val: v, file: p.file, line: t.line}, nil
	}
	return nil, fmt.Errorf("line %d: unexpected %q", t.line, t.text)
}

func (p *lighttpdParser) conditional(depth int) (*lstmt, error) {
	t, _ := p.take() // "$"
	field, err := p.take()
	if err != nil || field.kind != 'i' {
		return nil, fmt.Errorf("line %d: want a field name after $", t.line)
	}
	if err := p.expect("["); err != nil {
		return nil, err
	}
	key, err := p.take()
	if err != nil || key.kind != 's' {
		return nil, fmt.Errorf("line %d: want a string in $%s[...]", t.line, field.text)
	}
	if err := p.expect("]"); err != nil {
		return nil, err
	}
	op, err := p.take()
	if err != nil || op.kind != 'o' || !strings.Contains("== != =~ !~ =^ =$", op.text) || len(op.text) != 2 {
		return nil, fmt.Errorf("line %d: want ==, !=, =~, !~, =^ or =$", t.line)
	}
	pat, err := p.value()
	if err != nil {
		return nil, err
	}
	if pat.kind != lString {
		return nil, fmt.Errorf("line %d: a condition compares with a string", t.line)
	}
	s := &lstmt{kind: lCond, file: p.file, line: t.line, cond: &lcond{field: field.text, key: key.text, op: op.text, pattern: pat.str}}
	if err := p.block(s, depth); err != nil {
		return nil, err
	}
	return s, nil
}

// block parses "{ ... }" into s and any else branch after it.
func (p *lighttpdParser) block(s *lstmt, depth int) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	body, err := p.stmts(depth + 1)
	if err != nil {
		return err
	}
	if err := p.expect("}"); err != nil {
		return err
	}
	s.body = body
	t, ok := p.peek()
	if !ok || t.kind != 'i' || (t.text != "else" && t.text != "elseif" && t.text != "elsif" && t.text != "else if") {
		return nil
	}
	p.pos++
	if n, ok := p.peek(); ok && n.kind == 'o' && n.text == "$" {
		e, err := p.conditional(depth + 1)
		if err != nil {
			return err
		}
		s.orElse = e
		return nil
	}
	e := &lstmt{kind: lCond, file: p.file, line: t.line}
	if err := p.block(e, depth+1); err != nil {
		return err
	}
	s.orElse = e
	return nil
}

// value parses term ("+" term)* at the top level.
func (p *lighttpdParser) value() (lval, error) { return p.valueAt(0) }

func (p *lighttpdParser) term(depth int) (lval, error) {
	if depth > maxNesting {
		return lval{}, fmt.Errorf("arrays nested deeper than %d", maxNesting)
	}
	t, err := p.take()
	if err != nil {
		return lval{}, err
	}
	switch {
	case t.kind == 's':
		return lval{kind: lString, str: t.text}, nil
	case t.kind == 'n':
		n, err := strconv.Atoi(t.text)
		if err != nil {
			return lval{}, fmt.Errorf("line %d: bad number %q", t.line, t.text)
		}
		return lval{kind: lInt, num: n}, nil
	case t.kind == 'i':
		if v, ok := p.vars[t.text]; ok {
			return v, nil
		}
		if name, ok := strings.CutPrefix(t.text, "env."); ok {
			return lval{kind: lString, str: "${" + name + "}"}, nil
		}
		if t.text == "enable" || t.text == "disable" {
			return lval{kind: lString, str: t.text}, nil
		}
		return lval{}, fmt.Errorf("line %d: undefined variable %q", t.line, t.text)
	case t.kind == 'o' && t.text == "(":
		arr := lval{kind: lArray}
		for {
			n, ok := p.peek()
			if !ok {
				return lval{}, fmt.Errorf("line %d: array not closed", t.line)
			}
			if n.kind == 'o' && n.text == ")" {
				p.pos++
				return arr, nil
			}
			e, err := p.elem(depth)
			if err != nil {
				return lval{}, err
			}
			arr.arr = append(arr.arr, e)
			n, ok = p.peek()
			if ok && n.kind == 'o' && n.text == "," {
				p.pos++
			} else if !ok || n.kind != 'o' || n.text != ")" {
				return lval{}, fmt.Errorf("line %d: want \",\" or \")\" in array", t.line)
			}
		}
	}
	return lval{}, fmt.Errorf("line %d: unexpected %q", t.line, t.text)
}

func (p *lighttpdParser) elem(depth int) (lelem, error) {
	v, err := p.valueAt(depth + 1)
	if err != nil {
		return lelem{}, err
	}
	if t, ok := p.peek(); ok && t.kind == 'o' && t.text == "=>" {
		p.pos++
		if v.kind != lString {
			return lelem{}, fmt.Errorf("line %d: an array key must be a string", t.line)
		}
		w, err := p.valueAt(depth + 1)
		if err != nil {
			return lelem{}, err
		}
		return lelem{key: v.str, hasKey: true, val: w}, nil
	}
	return lelem{val: v}, nil
}

func (p *lighttpdParser) valueAt(depth int) (lval, error) {
	v, err := p.term(depth)
	if err != nil {
		return lval{}, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind != 'o' || t.text != "+" {
			return v, nil
		}
		p.pos++
		w, err := p.term(depth)
		if err != nil {
			return lval{}, err
		}
		v = lconcat(v, w)
	}
}

// lconcat is "+": strings join, arrays append.
func lconcat(a, b lval) lval {
	switch {
	case a.kind == lArray && b.kind == lArray:
		return lval{kind: lArray, arr: append(append([]lelem(nil), a.arr...), b.arr...)}
	case a.kind == lInt && b.kind == lInt:
		return lval{kind: lInt, num: a.num + b.num}
	}
	return lval{kind: lString, str: a.String() + b.String()}
}

func (v lval) String() string {
	switch v.kind {
	case lInt:
		return strconv.Itoa(v.num)
	case lArray:
		var parts []string
		for _, e := range v.arr {
			if e.hasKey {
				parts = append(parts, strconv.Quote(e.key)+" => "+e.val.String())
			} else {
				parts = append(parts, e.val.String())
			}
		}
		return "( " + strings.Join(parts, ", ") + " )"
	}
	return v.str
}

// get returns the value of key in an array of "key => value" entries.
func (v lval) get(key string) (lval, bool) {
	for _, e := range v.arr {
		if e.hasKey && e.key == key {
			return e.val, true
		}
	}
	return lval{}, false
}

// loadLighttpd parses path, following its includes where they appear.
func loadLighttpd(path string, vars map[string]lval, depth int) ([]*lstmt, error) {
	if depth > maxIncludeDepth {
		return nil, fmt.Errorf("%s: includes nested deeper than %d (a cycle?)", path, maxIncludeDepth)
	}
	src, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parseLighttpd(path, string(src), vars, depth)
}
