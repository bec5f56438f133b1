package importer

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
)

// parseApache parses Apache httpd configuration text: one directive a
// line (a trailing "\" continues it), "#" comment lines, arguments split
// on blanks with "..." and '...' quoting, and <Section args> ...
// </Section> blocks. Includes are not followed here.
func parseApache(file, src string) ([]*directive, error) {
	type frame struct {
		d   *directive
		out []*directive
	}
	stack := []frame{{}}
	lineNo := 0
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), maxFileSize)
	for sc.Scan() {
		lineNo++
		start := lineNo
		line := sc.Text()
		for strings.HasSuffix(line, "\\") && sc.Scan() {
			lineNo++
			line = strings.TrimSuffix(line, "\\") + sc.Text()
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "</") {
			name := strings.TrimSpace(strings.TrimSuffix(line[2:], ">"))
			top := stack[len(stack)-1]
			if len(stack) == 1 || !strings.EqualFold(top.d.Name, name) {
				return nil, fmt.Errorf("%s:%d: </%s> without a matching <%s>", file, start, name, name)
			}
			top.d.Block = top.out
			stack = stack[:len(stack)-1]
			stack[len(stack)-1].out = append(stack[len(stack)-1].out, top.d)
			continue
		}
		section := strings.HasPrefix(line, "<")
		if section {
			if !strings.HasSuffix(line, ">") {
				return nil, fmt.Errorf("%s:%d: section %q does not end with \">\"", file, start, line)
			}
			line = strings.TrimSpace(line[1 : len(line)-1])
		}
		words, err := apacheWords(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, start, err)
		}
		if len(words) == 0 {
			return nil, fmt.Errorf("%s:%d: empty section", file, start)
		}
		d := &directive{Name: words[0], Args: words[1:], File: file, Line: start, HasBlock: section}
		if section {
			if len(stack) > maxNesting {
				return nil, fmt.Errorf("%s:%d: sections nested deeper than %d", file, start, maxNesting)
			}
			stack = append(stack, frame{d: d})
			continue
		}
		stack[len(stack)-1].out = append(stack[len(stack)-1].out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(stack) > 1 {
		d := stack[len(stack)-1].d
		return nil, fmt.Errorf("%s:%d: <%s> is not closed", file, d.Line, d.Name)
	}
	return stack[0].out, nil
}

// apacheWords splits a directive line as ap_getword_conf does: blanks
// separate words; "..." and '...' quote, with a backslash escaping the
// quote character inside.
func apacheWords(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out, nil
		}
		q := s[0]
		if q != '"' && q != '\'' {
			i := strings.IndexAny(s, " \t")
			if i < 0 {
				i = len(s)
			}
			out = append(out, s[:i])
			s = s[i:]
			continue
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != q; i++ {
			if s[i] == '\\' && i+1 < len(s) && (s[i+1] == q || s[i+1] == '\\') {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated %c quote", q)
		}
		out = append(out, b.String())
		s = s[i+1:]
	}
}

// apacheLoader follows Include and IncludeOptional: relative patterns
// resolve against ServerRoot once one was seen, else the including file's
// directory, then /etc/apache2.
type apacheLoader struct {
	serverRoot string
}

func (l *apacheLoader) load(path string, depth int, optional bool) ([]*directive, error) {
	if depth > maxIncludeDepth {
		return nil, fmt.Errorf("%s: includes nested deeper than %d (a cycle?)", path, maxIncludeDepth)
	}
	src, err := readFile(path)
	if err != nil {
		if optional {
			return nil, nil
		}
		return nil, err
	}
	ds, err := parseApache(path, string(src))
	if err != nil {
		return nil, err
	}
	return l.expand(ds, path, depth)
}

func (l *apacheLoader) expand(ds []*directive, path string, depth int) ([]*directive, error) {
	var out []*directive
	for _, d := range ds {
		name := strings.ToLower(d.Name)
		if name == "serverroot" && len(d.Args) == 1 && !d.HasBlock {
			l.serverRoot = d.Args[0]
		}
		if (name == "include" || name == "includeoptional") && !d.HasBlock && len(d.Args) == 1 {
			optional := name == "includeoptional"
			pattern := d.Args[0]
			var files []string
			var err error
			if l.serverRoot != "" && !filepath.IsAbs(pattern) {
				files, err = expandInclude(filepath.Join(l.serverRoot, pattern), path)
			} else {
				files, err = expandInclude(pattern, path, "/etc/apache2")
			}
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", d.File, d.Line, d.Name, err)
			}
			for _, f := range files {
				inc, err := l.load(f, depth+1, optional)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %s: %w", d.File, d.Line, d.Name, err)
				}
				out = append(out, inc...)
			}
			continue
		}
		if d.HasBlock {
			inner, err := l.expand(d.Block, path, depth)
			if err != nil {
				return nil, err
			}
			d.Block = inner
		}
		out = append(out, d)
	}
	return out, nil
}
