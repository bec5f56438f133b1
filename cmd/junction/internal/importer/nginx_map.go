package importer

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// nginxMapper maps nginx locations that pass requests to a gateway.
type nginxMapper struct {
	top       []*directive
	upstreams map[string]*directive
}

func (m *nginxMapper) load(b *builder, files []string) error {
	prefix := ""
	for _, f := range files {
		if prefix == "" {
			prefix = path.Dir(f)
		}
		ds, err := loadNginx(f, prefix, 0)
		if err != nil {
			return err
		}
		m.top = append(m.top, ds...)
	}
	return nil
}

// nginxScope is what a level of blocks passes down: nginx inherits root
// and timeouts, and a *_param list only to levels that set none of their own.
type nginxScope struct {
	root    string
	alias   string
	params  map[string][]*directive // by protocol: fastcgi, scgi, uwsgi
	timeout map[string]time.Duration
	index   string
}

func (s nginxScope) child() nginxScope {
	c := s
	c.alias = ""
	c.params = map[string][]*directive{}
	for k, v := range s.params {
		c.params[k] = v
	}
	c.timeout = map[string]time.Duration{}
	for k, v := range s.timeout {
		c.timeout[k] = v
	}
	return c
}

var nginxProtos = []string{"fastcgi", "scgi", "uwsgi"}

func (m *nginxMapper) mapTo(b *builder) {
	m.upstreams = map[string]*directive{}
	m.collectUpstreams(m.top)
	m.walk(b, m.top, nginxScope{params: map[string][]*directive{}, timeout: map[string]time.Duration{}}, "")
	b.snippets("nginx")
}

func (m *nginxMapper) collectUpstreams(ds []*directive) {
	for _, d := range ds {
		if d.Name == "upstream" && d.HasBlock && len(d.Args) == 1 {
			m.upstreams[d.Args[0]] = d
		}
		if d.HasBlock {
			m.collectUpstreams(d.Block)
		}
	}
}

// walk maps one level of blocks; loc is the enclosing location's
// arguments joined ("" outside locations).
func (m *nginxMapper) walk(b *builder, ds []*directive, outer nginxScope, loc string) {
	s := outer.child()
	own := map[string]bool{}
	for _, d := range ds {
		switch {
		case d.Name == "root" && len(d.Args) == 1:
			s.root = d.Args[0]
		case d.Name == "alias" && len(d.Args) == 1:
			s.alias = d.Args[0]
		}
		for _, p := range nginxProtos {
			switch d.Name {
			case p + "_param":
				if !own[p] {
					own[p] = true
					s.params[p] = nil
				}
				s.params[p] = append(s.params[p], d)
			case p + "_read_timeout":
				if t, ok := nginxDuration(d.Args); ok {
					s.timeout[p] = t
				}
			case p + "_index":
				if len(d.Args) == 1 {
					s.index = d.Args[0]
				}
			}
		}
	}
	for _, d := range ds {
		switch {
		case d.Name == "location" && d.HasBlock:
			m.walk(b, d.Block, s, strings.Join(d.Args, " "))
		case d.Name == "if" && d.HasBlock:
			if hasPass(d.Block) {
				b.note(d.File, d.Line, "if", "a pass inside \"if\" depends on the request; junction routes by prefix only")
			}
		case (d.Name == "http" || d.Name == "server") && d.HasBlock:
			m.walk(b, d.Block, s, "")
		}
	}
	for _, d := range ds {
		for _, p := range nginxProtos {
			if d.Name == p+"_pass" && len(d.Args) == 1 {
				m.mapPass(b, d, p, s, loc, ds)
			}
		}
	}
}

func hasPass(ds []*directive) bool {
	for _, d := range ds {
		for _, p := range nginxProtos {
			if d.Name == p+"_pass" {
				return true
			}
		}
	}
	return false
}

// nginxDuration parses nginx's time syntax ("300", "300s", "5m", "1h30m").
func nginxDuration(args []string) (time.Duration, bool) {
	if len(args) != 1 {
		return 0, false
	}
	v := args[0]
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(strings.ReplaceAll(v, "d", "h"))
	if err != nil || d <= 0 || strings.Contains(v, "d") {
		return 0, false
	}
	return d, true
}

// standardParams are CGI variables junction derives itself; sending them
// (as the stock *_params files do) needs no mapping.
var standardParams = map[string]bool{
	"QUERY_STRING": true, "REQUEST_METHOD": true, "CONTENT_TYPE": true, "CONTENT_LENGTH": true,
	"SCRIPT_NAME": true, "REQUEST_URI": true, "DOCUMENT_URI": true, "DOCUMENT_ROOT": true,
	"SERVER_PROTOCOL": true, "REQUEST_SCHEME": true, "HTTPS": true, "GATEWAY_INTERFACE": true,
	"SERVER_SOFTWARE": true, "REMOTE_ADDR": true, "REMOTE_PORT": true, "REMOTE_USER": true,
	"SERVER_ADDR": true, "SERVER_PORT": true, "SERVER_NAME": true, "REDIRECT_STATUS": true,
	"HTTP_HOST": true, "SCRIPT_FILENAME": true, "PATH_INFO": true, "PATH_TRANSLATED": true, "SCGI": true,
}

// locationPrefix reduces a location's arguments to a URL prefix. ok is
// false for named locations; exact is set for a regular expression that
// only approximates (the front server keeps selecting).
func locationPrefix(loc string) (prefix string, regex, ok bool) {
	args := strings.Fields(loc)
	switch {
	case len(args) == 0:
		return "/", false, true
	case len(args) == 1 && strings.HasPrefix(args[0], "@"):
		return "", false, false
	case len(args) == 1:
		return args[0], false, true
	case args[0] == "=" || args[0] == "^~":
		return args[1], false, true
	case args[0] == "~" || args[0] == "~*":
		return regexPrefix(args[1]), true, true
	}
	return "", false, false
}

// regexPrefix is the literal prefix an anchored regular expression
// requires ("^/cgi-bin/(a|b)\.sh$" → "/cgi-bin/"), cut at the last "/";
// "/" when there is none.
func regexPrefix(re string) string {
	if !strings.HasPrefix(re, "^/") {
		return "/"
	}
	var lit strings.Builder
	for i := 1; i < len(re); i++ {
		c := re[i]
		if c == '\\' && i+1 < len(re) && strings.IndexByte(`./-_~`, re[i+1]) >= 0 {
			lit.WriteByte(re[i+1])
			i++
			continue
		}
		if strings.IndexByte(`.[]()*+?{}|^$\`, c) >= 0 {
			break
		}
		lit.WriteByte(c)
	}
	p := lit.String()
	// "^/x/a?" must not require its last literal: cut at the last "/".
	return p[:strings.LastIndexByte(p, '/')+1]
}

var nginxVarRE = regexp.MustCompile(`\$(\{[a-zA-Z0-9_]+\}|[a-zA-Z0-9_]+)`)

// paramValue returns the value of the last NAME param in ps.
func paramValue(ps []*directive, name string) (string, *directive) {
	var v string
	var at *directive
	for _, d := range ps {
		if len(d.Args) >= 2 && strings.EqualFold(d.Args[0], name) {
			v, at = d.Args[1], d
		}
	}
	return v, at
}

// scriptDir works out the directory of scripts and its URL prefix from a
// SCRIPT_FILENAME value, the root or alias in force and the location's
// prefix. ok is false when the value is not of a known shape.
func scriptDir(sf string, s nginxScope, prefix string) (dir string, ok bool) {
	docroot := s.root
	if s.alias != "" {
		docroot = s.alias
	}
	if sf == "" {
		sf = "$document_root$fastcgi_script_name"
	}
	if s.alias != "" && (sf == "$request_filename" || sf == "$document_root$fastcgi_script_name") {
		return strings.TrimSuffix(s.alias, "/"), s.alias != ""
	}
	if sf == "$request_filename" {
		sf = "$document_root$uri"
	}
	for _, v := range []string{"$fastcgi_script_name", "$uri", "$document_uri", "${fastcgi_script_name}", "${uri}"} {
		if base, ok := strings.CutSuffix(sf, v); ok {
			base = strings.ReplaceAll(base, "${document_root}", "$document_root")
			base = strings.ReplaceAll(base, "$document_root", docroot)
			if base == "" && docroot == "" || nginxVarRE.MatchString(base) {
				return "", false
			}
			return strings.TrimSuffix(base, "/") + strings.TrimSuffix(prefix, "/"), true
		}
	}
	return "", false
}

// fcgiApp tells a FastCGI application server (php-fpm) from a CGI runner
// (fcgiwrap): by the address and the location, since the wire looks alike.
func fcgiApp(addr, loc string) bool {
	l := strings.ToLower(addr + " " + loc)
	return strings.Contains(l, "php") || strings.Contains(l, "fpm")
}

func (m *nginxMapper) mapPass(b *builder, d *directive, proto string, s nginxScope, loc string, block []*directive) {
	prefix, regex, ok := locationPrefix(loc)
	if !ok || loc == "" {
		b.note(d.File, d.Line, d.Name, "not inside a prefix or regex location; junction routes by URL prefix")
		return
	}
	if regex {
		b.note(d.File, d.Line, "location "+loc, fmt.Sprintf("a regex location: junction routes its prefix %q, nginx keeps choosing which requests reach junction", prefix))
	}
	addrs, weights := m.addresses(b, d)
	if len(addrs) == 0 {
		return
	}
	if proto == "uwsgi" {
		b.note(d.File, d.Line, d.Name, "junction does not speak the uwsgi protocol and the scripts are configured in uWSGI: import its ini file with \"junction import uwsgi\"")
		return
	}
	sf, sfAt := paramValue(s.params[proto], "SCRIPT_FILENAME")
	app := proto == "fastcgi" && fcgiApp(d.Args[0]+" "+strings.Join(addrs, " "), loc)
	if app {
		m.mapFPM(b, d, s, loc, prefix, sf, addrs, weights, block)
		return
	}
	if proto == "scgi" && sfAt == nil {
		// nginx sends no SCRIPT_FILENAME over SCGI unless told to: without
		// one, the server finds its scripts itself (uWSGI) or is an
		// application.
		b.note(d.File, d.Line, d.Name, "no scgi_param SCRIPT_FILENAME: an SCGI application (junction pools speak HTTP and FastCGI) or a runner that finds its scripts itself (uWSGI: import its ini file)")
		return
	}
	if dr, _ := paramValue(s.params[proto], "DOCUMENT_ROOT"); sfAt == nil && dr != "" && !nginxVarRE.MatchString(dr) {
		// fcgiwrap finds DOCUMENT_ROOT + SCRIPT_NAME without a
		// SCRIPT_FILENAME.
		s.root, s.alias = dr, ""
	}
	dir, ok := scriptDir(sf, s, prefix)
	if !ok {
		line := d.Line
		if sfAt != nil {
			line = sfAt.Line
		}
		b.note(d.File, line, proto+"_param SCRIPT_FILENAME", fmt.Sprintf("%q: cannot tell where the scripts live (expected $document_root$fastcgi_script_name, /dir$fastcgi_script_name or $request_filename)", sf))
		return
	}
	be := &Backend{Name: nameFor(prefix, "scripts"), Type: "cgi", Root: dir, URLPrefix: cleanPrefix(prefix, true), Timeout: s.timeout[proto]}
	be = b.addBackend(be)
	l := b.listener(proto, addrs[0])
	if len(addrs) > 1 {
		b.note(d.File, d.Line, d.Name, fmt.Sprintf("upstream %s has %d servers: junction replaces the gateway at %s only", d.Args[0], len(addrs), addrs[0]))
	}
	b.route(cleanPrefix(prefix, false), be)
	// The snippet keeps the location as nginx had it (a regex too).
	b.pointFront(loc, l)
	b.hint("%s:%d: %s %s: a CGI runner (fcgiwrap, uWSGI): junction takes over its socket; nginx stays as it is", d.File, d.Line, d.Name, d.Args[0])
	m.noteGateway(b, block, proto, false)
}

// mapFPM maps a location passing to a FastCGI application server: junction
// becomes a pool in front of it, reached over SCGI.
func (m *nginxMapper) mapFPM(b *builder, d *directive, s nginxScope, loc, prefix, sf string, addrs []string, weights []int, block []*directive) {
	docroot := s.root
	if s.alias != "" {
		docroot = s.alias
	}
	if base, ok := strings.CutSuffix(sf, "$fastcgi_script_name"); ok && !strings.Contains(base, "$document_root") && !nginxVarRE.MatchString(base) {
		docroot = base
	}
	if docroot == "" || !strings.HasPrefix(docroot, "/") {
		b.note(d.File, d.Line, d.Name, "no absolute root or SCRIPT_FILENAME: cannot tell the application's document root")
		return
	}
	be := &Backend{Name: nameFor(prefix, "php"), Type: "fastcgi", Root: strings.TrimSuffix(docroot, "/"), Timeout: s.timeout["fastcgi"], Index: s.index}
	if be.Root == "" {
		be.Root = "/"
	}
	if be.Index == "index.php" {
		be.Index = ""
	}
	for i, a := range addrs {
		be.Instances = append(be.Instances, Instance{Address: a, Weight: weights[i]})
	}
	be = b.addBackend(be)
	b.route(cleanPrefix(prefix, false), be)
	b.pointFront(loc, b.scgi())
	b.hint("%s:%d: %s %s: a FastCGI application (php-fpm): junction becomes a pool in front of it, nginx reaches junction over SCGI", d.File, d.Line, d.Name, d.Args[0])
	for _, p := range s.params["fastcgi"] {
		if len(p.Args) < 2 || standardParams[strings.ToUpper(p.Args[0])] {
			continue
		}
		if nginxVarRE.MatchString(p.Args[1]) {
			b.note(p.File, p.Line, p.Name+" "+p.Args[0], "its value depends on the request: add it as scgi_param in the snippet")
			continue
		}
		be.SetEnv = append(be.SetEnv, EnvVar{Name: p.Args[0], Value: p.Args[1]})
	}
	m.noteGateway(b, block, "fastcgi", true)
}

// noteGateway reports the location's gateway directives that do not map.
func (m *nginxMapper) noteGateway(b *builder, block []*directive, proto string, changed bool) {
	for _, d := range block {
		switch d.Name {
		case proto + "_pass", proto + "_param", proto + "_read_timeout", proto + "_index":
		case "fastcgi_split_path_info":
			b.note(d.File, d.Line, d.Name, "not needed: junction splits the path at the script it finds under root")
		default:
			if changed && strings.HasPrefix(d.Name, proto+"_") {
				b.note(d.File, d.Line, d.Name, "an nginx setting of the old protocol: use its scgi_ equivalent in the snippet")
			}
		}
	}
}

// addresses resolves a pass target to instance addresses and weights: an
// upstream's servers, or the address itself.
func (m *nginxMapper) addresses(b *builder, d *directive) ([]string, []int) {
	target := d.Args[0]
	if nginxVarRE.MatchString(target) {
		b.note(d.File, d.Line, d.Name, "the address depends on the request")
		return nil, nil
	}
	target = strings.TrimPrefix(target, "http://")
	if up, ok := m.upstreams[target]; ok {
		var addrs []string
		var weights []int
		for _, s := range up.Block {
			if s.Name != "server" || len(s.Args) == 0 {
				if s.Name != "keepalive" && s.Name != "server" {
					b.note(s.File, s.Line, s.Name, "an nginx upstream setting; junction's pool has its own (max_conns, keepalive, health)")
				}
				continue
			}
			w := 0
			backup := false
			for _, a := range s.Args[1:] {
				if v, ok := strings.CutPrefix(a, "weight="); ok {
					w, _ = strconv.Atoi(v)
				}
				backup = backup || a == "backup"
			}
			if backup {
				b.note(s.File, s.Line, "server "+s.Args[0]+" backup", "backup servers are not imported; add backup: true to the instance by hand")
				continue
			}
			addrs = append(addrs, nginxAddr(s.Args[0]))
			weights = append(weights, w)
		}
		return addrs, weights
	}
	return []string{nginxAddr(target)}, []int{0}
}

// nginxAddr makes an nginx address a junction one ("localhost" gets port 80).
func nginxAddr(a string) string {
	if strings.HasPrefix(a, "unix:") {
		return a
	}
	if !strings.Contains(a, ":") || strings.HasSuffix(a, "]") {
		return a + ":80"
	}
	return a
}
