package importer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// YAML renders the configuration as a junction YAML file, with a header
// naming where it came from.
func (r *Result) YAML(header string) string {
	var w strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		if l != "" {
			w.WriteString("# " + l + "\n")
		}
	}
	c := &r.Config
	if c.User != "" {
		fmt.Fprintf(&w, "user: %s\n", yq(c.User))
	}
	if c.Group != "" {
		fmt.Fprintf(&w, "group: %s\n", yq(c.Group))
	}
	w.WriteString("\nlisteners:\n")
	for _, l := range c.Listeners {
		fmt.Fprintf(&w, "  - protocol: %s\n    address: %s\n", l.Protocol, yq(l.Address))
		if l.Backend != "" {
			fmt.Fprintf(&w, "    backend: %s\n", yk(l.Backend))
		}
		if l.SocketMode != "" {
			fmt.Fprintf(&w, "    socket_mode: %s\n", yq(l.SocketMode))
		}
		if l.SocketOwner != "" {
			fmt.Fprintf(&w, "    socket_owner: %s\n", yq(l.SocketOwner))
		}
		if l.SocketGroup != "" {
			fmt.Fprintf(&w, "    socket_group: %s\n", yq(l.SocketGroup))
		}
	}
	if len(c.Routes) > 0 {
		w.WriteString("\nroutes:\n")
		for _, rt := range c.Routes {
			fmt.Fprintf(&w, "  - {prefix: %s, backend: %s}\n", yq(rt.Prefix), yk(rt.Backend))
		}
	}
	w.WriteString("\nbackends:\n")
	for _, b := range c.Backends {
		writeBackend(&w, b)
	}
	return w.String()
}

func writeBackend(w *strings.Builder, b *Backend) {
	fmt.Fprintf(w, "  %s:\n    type: %s\n", yk(b.Name), b.Type)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "    %s: %s\n", k, yq(v))
		}
	}
	kv("root", b.Root)
	kv("script", b.Script)
	kv("url_prefix", b.URLPrefix)
	if len(b.Interpreters) > 0 {
		w.WriteString("    interpreters:\n")
		for _, in := range b.Interpreters {
			if len(in.Command) == 1 {
				fmt.Fprintf(w, "      %s: %s\n", yq(in.Ext), yq(in.Command[0]))
				continue
			}
			fmt.Fprintf(w, "      %s: %s\n", yq(in.Ext), yList(in.Command))
		}
	}
	if b.Timeout > 0 {
		fmt.Fprintf(w, "    timeout: %s\n", b.Timeout)
	}
	if b.MaxConcurrent > 0 {
		fmt.Fprintf(w, "    max_concurrent: %d\n", b.MaxConcurrent)
	}
	if len(b.PassEnv) > 0 {
		fmt.Fprintf(w, "    pass_env: %s\n", yList(b.PassEnv))
	}
	if len(b.SetEnv) > 0 {
		w.WriteString("    set_env:\n")
		for _, e := range b.SetEnv {
			fmt.Fprintf(w, "      %s: %s\n", yk(e.Name), yq(e.Value))
		}
	}
	kv("balance", b.Balance)
	kv("strip_prefix", b.StripPrefix)
	kv("index", b.Index)
	if len(b.Instances) > 0 {
		w.WriteString("    instances:\n")
		for _, in := range b.Instances {
			fmt.Fprintf(w, "      - {address: %s", yq(in.Address))
			if in.Weight > 0 {
				fmt.Fprintf(w, ", weight: %d", in.Weight)
			}
			if in.Route != "" {
				fmt.Fprintf(w, ", route: %s", yq(in.Route))
			}
			w.WriteString("}\n")
		}
	}
}

func yList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = yq(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// yk writes a key or name plainly when YAML reads it back as the same
// string (letters, digits, "_" and "-", not starting with a digit or "-"),
// quoted otherwise.
func yk(s string) string {
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r == '-' || r >= '0' && r <= '9')
		if !ok {
			return yq(s)
		}
	}
	if s == "" || strings.EqualFold(s, "true") || strings.EqualFold(s, "false") || strings.EqualFold(s, "null") ||
		strings.EqualFold(s, "yes") || strings.EqualFold(s, "no") || strings.EqualFold(s, "on") || strings.EqualFold(s, "off") || s == "y" || s == "n" || s == "Y" || s == "N" {
		return yq(s)
	}
	return s
}

// yq quotes s as a YAML double-quoted scalar. junction expands ${NAME} and
// $NAME inside values, so a literal "$" is written "$$".
func yq(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '$':
			b.WriteString("$$")
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\ufffd`)
		case r < 0x10000 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Report is what goes to standard error: one line per note
// ("file:line: directive: why"), the hints as "# " comment lines, then
// each snippet under a "# ---- SERVER: WHERE ----" line.
func (r *Result) Report() string {
	var w strings.Builder
	for _, n := range r.Notes {
		w.WriteString(n.String() + "\n")
	}
	for _, h := range r.Hints {
		w.WriteString("# " + h + "\n")
	}
	for _, s := range r.Snippets {
		fmt.Fprintf(&w, "# ---- %s: %s ----\n%s", s.Server, s.Where, s.Text)
		if !strings.HasSuffix(s.Text, "\n") {
			w.WriteByte('\n')
		}
	}
	return w.String()
}
