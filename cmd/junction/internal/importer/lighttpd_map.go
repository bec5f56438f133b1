package importer

import (
	"fmt"
	"path"
	"strings"
)

// lighttpdMapper maps mod_cgi (cgi.assign with alias.url),
// mod_fastcgi (fastcgi.server), mod_setenv and server.username.
type lighttpdMapper struct {
	top []*lstmt
}

func (m *lighttpdMapper) load(b *builder, files []string) error {
	vars := map[string]lval{}
	for _, f := range files {
		ss, err := loadLighttpd(f, vars, 0)
		if err != nil {
			return err
		}
		m.top = append(m.top, ss...)
	}
	return nil
}

// lscope is the settings in force in one conditional block.
type lscope struct {
	prefix  string // URL prefix the block's condition reduces to
	docRoot string
	alias   []lelem
	env     []EnvVar
	// The keys this block set itself, mapped when it ends.
	cgi, fcgi, scgi *lstmt
}

func (m *lighttpdMapper) mapTo(b *builder) {
	var user, group string
	var find func(ss []*lstmt)
	find = func(ss []*lstmt) {
		for _, s := range ss {
			switch {
			case s.kind == lAssign && s.key == "server.username":
				user = s.val.String()
			case s.kind == lAssign && s.key == "server.groupname":
				group = s.val.String()
			case s.kind == lInclude:
				find(s.body)
			}
		}
	}
	find(m.top)
	b.setUser(user, group, "server.username")
	m.block(b, m.top, lscope{prefix: "/"})
	b.snippets("lighttpd")
}

// block walks statements in scope s (a copy: a conditional's settings do
// not leak out) and maps what the block set.
func (m *lighttpdMapper) block(b *builder, ss []*lstmt, s lscope) {
	m.walk(b, ss, &s)
	m.mapScope(b, s)
}

// walk applies statements to s; included files count as written in place.
func (m *lighttpdMapper) walk(b *builder, ss []*lstmt, s *lscope) {
	for _, st := range ss {
		switch st.kind {
		case lInclude:
			m.walk(b, st.body, s)
		case lIncludeShell:
			b.note(st.file, st.line, "include_shell "+st.key, "not run by junction import: import the output of the command (save it to a file) if it sets gateway keys")
		case lAssign:
			m.assign(b, st, s)
		case lCond:
			m.cond(b, st, *s)
		}
	}
}

func (m *lighttpdMapper) assign(b *builder, st *lstmt, s *lscope) {
	switch st.key {
	case "server.document-root":
		s.docRoot = st.val.String()
	case "alias.url":
		if st.op != "+=" {
			s.alias = nil
		}
		// A copy: a conditional's scope shares the outer backing array.
		s.alias = append(append([]lelem(nil), s.alias...), st.val.arr...)
	case "cgi.assign":
		s.cgi = st
	case "fastcgi.server":
		s.fcgi = st
	case "scgi.server":
		s.scgi = st
	case "setenv.add-environment", "setenv.set-environment":
		s.env = append([]EnvVar(nil), s.env...)
		for _, e := range st.val.arr {
			if e.hasKey {
				s.env = append(s.env, EnvVar{Name: e.key, Value: e.val.String()})
			}
		}
	case "cgi.execute-x-only", "cgi.x-sendfile", "cgi.local-redir", "cgi.upgrade", "cgi.limits":
		b.note(st.file, st.line, st.key, "no junction equivalent (junction runs executable files only, and answers local redirects itself)")
	}
}

// cond maps a conditional block: "$HTTP["url"]" conditions that reduce to
// a prefix narrow the scope; others are walked as they are, with a note
// when they hold gateway keys.
func (m *lighttpdMapper) cond(b *builder, st *lstmt, outer lscope) {
	for e := st; e != nil; e = e.orElse {
		inner := outer
		inner.cgi, inner.fcgi, inner.scgi = nil, nil, nil
		if e.cond == nil || e != st {
			if holdsGateway(e.body) {
				b.note(e.file, e.line, "else", "an else branch: junction routes by URL prefix; map it by hand")
			}
			continue
		}
		c := e.cond
		if c.field == "HTTP" && c.key == "url" {
			p, ok := urlCondPrefix(c)
			if !ok {
				if holdsGateway(e.body) {
					b.note(e.file, e.line, c.String(), "a URL condition that is not a prefix: junction routes by URL prefix; map it by hand")
				}
				continue
			}
			inner.prefix = p
		} else if holdsGateway(e.body) {
			b.note(e.file, e.line, c.String(), "the condition is not a URL prefix: its gateway settings are imported as if it always held")
		}
		m.block(b, e.body, inner)
	}
}

func holdsGateway(ss []*lstmt) bool {
	for _, s := range ss {
		if s.kind == lAssign && (s.key == "cgi.assign" || s.key == "fastcgi.server" || s.key == "scgi.server") {
			return true
		}
		if holdsGateway(s.body) {
			return true
		}
	}
	return false
}

// urlCondPrefix reduces a $HTTP["url"] condition to a prefix: =^ "/x/",
// =~ "^/x/" (a literal regex prefix that ends in "/").
func urlCondPrefix(c *lcond) (string, bool) {
	switch c.op {
	case "=^":
		return c.pattern, strings.HasPrefix(c.pattern, "/")
	case "=~":
		p := regexPrefix(c.pattern)
		lit := "^" + strings.ReplaceAll(p, ".", `\.`)
		if p != "/" && (c.pattern == "^"+p || c.pattern == lit || c.pattern == "^"+p+".*" || c.pattern == lit+".*") {
			return p, true
		}
	}
	return "", false
}

// scriptRoot is where requests under prefix find their files: an alias.url
// entry for the prefix, else the document root plus the prefix.
func (s lscope) scriptRoot(prefix string) (string, bool) {
	for _, a := range s.alias {
		k := a.key
		if rel, ok := strings.CutPrefix(prefix, k); ok && (strings.HasSuffix(k, "/") || rel == "" || rel[0] == '/') {
			return strings.TrimSuffix(path.Join(a.val.String(), rel), "/"), true
		}
	}
	if s.docRoot == "" {
		return "", false
	}
	return strings.TrimSuffix(path.Join(s.docRoot, prefix), "/"), true
}

func (m *lighttpdMapper) mapScope(b *builder, s lscope) {
	if s.cgi != nil {
		m.mapCGI(b, s)
	}
	if s.fcgi != nil {
		m.mapFastCGI(b, s)
	}
	if s.scgi != nil {
		b.note(s.scgi.file, s.scgi.line, "scgi.server", "SCGI applications: junction pools speak HTTP and FastCGI")
	}
}

func (m *lighttpdMapper) mapCGI(b *builder, s lscope) {
	st := s.cgi
	root, ok := s.scriptRoot(s.prefix)
	if !ok {
		b.note(st.file, st.line, "cgi.assign", "no server.document-root or alias.url for "+s.prefix)
		return
	}
	be := &Backend{Name: nameFor(s.prefix, "scripts"), Type: "cgi", Root: root, URLPrefix: cleanPrefix(s.prefix, true), SetEnv: s.env}
	direct := false
	for _, e := range st.val.arr {
		if !e.hasKey {
			continue
		}
		prog := e.val.String()
		if prog == "" {
			direct = true
			continue
		}
		ext := e.key
		if ext == "" || !strings.HasPrefix(ext, ".") {
			b.note(st.file, st.line, fmt.Sprintf("cgi.assign %q => %q", e.key, prog), "an interpreter for every file or a file name: junction maps interpreters by extension only")
			continue
		}
		be.Interpreters = append(be.Interpreters, Interpreter{Ext: ext, Command: []string{prog}})
	}
	if direct {
		b.note(st.file, st.line, "cgi.assign", "entries without an interpreter are not needed: junction runs any executable file under root")
	}
	be = b.addBackend(be)
	b.route(cleanPrefix(s.prefix, true), be)
	b.pointFront(cleanPrefix(s.prefix, true), b.scgi(), be.Root)
}

func (m *lighttpdMapper) mapFastCGI(b *builder, s lscope) {
	st := s.fcgi
	for _, e := range st.val.arr {
		if !e.hasKey {
			continue
		}
		prefix := s.prefix
		if strings.HasPrefix(e.key, "/") {
			prefix = e.key
		}
		var hosts []lval
		for _, h := range e.val.arr {
			if h.val.kind == lArray {
				hosts = append(hosts, h.val)
			}
		}
		if len(hosts) == 0 {
			b.note(st.file, st.line, fmt.Sprintf("fastcgi.server %q", e.key), "no host entries")
			continue
		}
		var addrs []string
		binPath := ""
		for _, h := range hosts {
			if v, ok := h.get("bin-path"); ok {
				binPath = v.String()
			}
			if v, ok := h.get("socket"); ok {
				addrs = append(addrs, "unix:"+v.String())
			} else if v, ok := h.get("host"); ok {
				port, _ := h.get("port")
				addrs = append(addrs, v.String()+":"+port.String())
			}
		}
		if len(addrs) == 0 {
			b.note(st.file, st.line, fmt.Sprintf("fastcgi.server %q", e.key), "no socket or host")
			continue
		}
		if fcgiApp(strings.Join(addrs, " ")+" "+binPath+" "+e.key, "") {
			if binPath != "" {
				b.note(st.file, st.line, fmt.Sprintf("fastcgi.server %q bin-path", e.key), "lighttpd starts the application: start it on its socket yourself (systemd, php-fpm) before junction")
			}
			if s.docRoot == "" {
				b.note(st.file, st.line, fmt.Sprintf("fastcgi.server %q", e.key), "no server.document-root for the application")
				continue
			}
			be := &Backend{Name: nameFor(prefix, "php"), Type: "fastcgi", Root: strings.TrimSuffix(s.docRoot, "/"), SetEnv: s.env}
			for _, a := range addrs {
				be.Instances = append(be.Instances, Instance{Address: a})
			}
			be = b.addBackend(be)
			b.route(cleanPrefix(prefix, false), be)
			// An extension key (".php") stays one in the snippet: lighttpd
			// keeps serving the other files itself.
			front := cleanPrefix(prefix, false)
			if strings.HasPrefix(e.key, ".") {
				front = e.key
			}
			b.pointFront(front, b.scgi())
			continue
		}
		if binPath != "" {
			b.note(st.file, st.line, fmt.Sprintf("fastcgi.server %q bin-path", e.key), "lighttpd starts the CGI runner: give junction's fastcgi listener address \"fd:0\" to be started the same way")
		}
		root, ok := s.scriptRoot(prefix)
		if !ok {
			b.note(st.file, st.line, fmt.Sprintf("fastcgi.server %q", e.key), "no document root or alias for the scripts")
			continue
		}
		be := b.addBackend(&Backend{Name: nameFor(prefix, "scripts"), Type: "cgi", Root: root, URLPrefix: cleanPrefix(prefix, true), SetEnv: s.env})
		l := b.listener("fastcgi", addrs[0])
		b.route(cleanPrefix(prefix, true), be)
		b.pointFront(cleanPrefix(prefix, true), l)
		b.hint("%s:%d: fastcgi.server %q: a CGI runner (fcgiwrap): junction takes over its socket %s", st.file, st.line, e.key, addrs[0])
	}
}
