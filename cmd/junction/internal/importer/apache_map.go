package importer

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// apacheMapper maps Apache mod_cgi (ScriptAlias, ExecCGI directories,
// Action handlers), mod_proxy (fcgi, http, ajp and balancer members),
// mod_env and the server's User and Group.
type apacheMapper struct {
	top     []*directive
	envvars map[string]string // Debian's /etc/apache2/envvars, for ${APACHE_RUN_USER}
	defines map[string]string

	docRoot       string
	scriptAliases []apacheAlias
	aliases       []apacheAlias
	dirs          map[string]*apacheDir
	dirOrder      []string
	actions       map[string]apacheAlias // handler or type → action URL (as url) at file:line
	handlers      map[string]string      // ext → handler name, server-wide
	globalEnv     []EnvVar
	globalPass    []string
	proxies       []apacheProxy
	balancers     map[string]*apacheBalancer
	timeout       time.Duration
}

type apacheAlias struct {
	url, dir string
	d        *directive
}

type apacheDir struct {
	at       *directive // the first <Directory> section for it
	execCGI  bool
	cgiExts  []string
	handlers map[string]string // ext → handler
	setEnv   []EnvVar
	passEnv  []string
	notNeed  []*directive
}

type apacheProxy struct {
	path, target string
	params       map[string]string
	d            *directive
}

type apacheBalancer struct {
	members []apacheProxy
	set     map[string]string
	d       *directive
}

func (m *apacheMapper) load(b *builder, files []string) error {
	l := &apacheLoader{}
	for _, f := range files {
		ds, err := l.load(f, 0, false)
		if err != nil {
			return err
		}
		m.top = append(m.top, ds...)
	}
	m.envvars = readEnvvars(filepath.Join(filepath.Dir(files[0]), "envvars"))
	return nil
}

// readEnvvars reads "export NAME=value" lines of Debian's envvars file;
// anything else in it (shell code) is ignored.
func readEnvvars(file string) map[string]string {
	out := map[string]string{}
	src, err := readFile(file)
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && !strings.ContainsAny(v, "$`") {
			out[k] = strings.Trim(v, `"'`)
		}
	}
	return out
}

var apacheVarRE = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

func (m *apacheMapper) expand(s string) string {
	return apacheVarRE.ReplaceAllStringFunc(s, func(v string) string {
		name := v[2 : len(v)-1]
		if x, ok := m.defines[name]; ok {
			return x
		}
		if x, ok := m.envvars[name]; ok {
			return x
		}
		if x, ok := os.LookupEnv(name); ok {
			return x
		}
		return v
	})
}

func (m *apacheMapper) mapTo(b *builder) {
	m.defines = map[string]string{}
	m.dirs = map[string]*apacheDir{}
	m.actions = map[string]apacheAlias{}
	m.handlers = map[string]string{}
	m.balancers = map[string]*apacheBalancer{}
	m.walk(b, m.top, "", "")
	m.mapScripts(b)
	m.mapProxies(b)
	b.snippets("nginx", "apache")
}

func (m *apacheMapper) dir(p string) *apacheDir {
	p = strings.TrimSuffix(path.Clean(p), "/")
	d, ok := m.dirs[p]
	if !ok {
		d = &apacheDir{handlers: map[string]string{}}
		m.dirs[p] = d
		m.dirOrder = append(m.dirOrder, p)
	}
	return d
}

// walk visits directives in order; dir is the enclosing <Directory>,
// loc the enclosing <Location>.
func (m *apacheMapper) walk(b *builder, ds []*directive, dir, loc string) {
	for _, d := range ds {
		args := make([]string, len(d.Args))
		for i, a := range d.Args {
			args[i] = m.expand(a)
		}
		name := strings.ToLower(d.Name)
		if d.HasBlock {
			m.section(b, d, name, args, dir, loc)
			continue
		}
		m.directive(b, d, name, args, dir, loc)
	}
}

func (m *apacheMapper) section(b *builder, d *directive, name string, args []string, dir, loc string) {
	switch name {
	case "ifmodule":
		if len(args) == 1 && !strings.HasPrefix(args[0], "!") {
			m.walk(b, d.Block, dir, loc)
		}
	case "ifdefine":
		if len(args) == 1 {
			n, neg := strings.CutPrefix(args[0], "!")
			_, def := m.defines[n]
			if def != neg {
				m.walk(b, d.Block, dir, loc)
			}
		}
	case "ifversion", "virtualhost":
		m.walk(b, d.Block, dir, loc)
	case "directory":
		if len(args) == 1 && !strings.HasPrefix(args[0], "~") {
			if x := m.dir(args[0]); x.at == nil {
				x.at = d
			}
			m.walk(b, d.Block, args[0], loc)
			return
		}
		m.noteIfGateway(b, d)
	case "location":
		if len(args) == 1 && !strings.HasPrefix(args[0], "~") {
			m.walk(b, d.Block, dir, args[0])
			return
		}
		m.noteIfGateway(b, d)
	case "proxy":
		if len(args) == 1 && strings.HasPrefix(strings.ToLower(args[0]), "balancer://") {
			bal := m.balancer(args[0], d)
			for _, x := range d.Block {
				xa := make([]string, len(x.Args))
				for i, a := range x.Args {
					xa[i] = m.expand(a)
				}
				switch strings.ToLower(x.Name) {
				case "balancermember":
					if len(xa) >= 1 {
						bal.members = append(bal.members, apacheProxy{target: xa[0], params: apacheParams(xa[1:]), d: x})
					}
				case "proxyset":
					for k, v := range apacheParams(xa) {
						bal.set[k] = v
					}
				}
			}
			return
		}
		m.noteIfGateway(b, d)
	case "files", "filesmatch", "locationmatch", "directorymatch":
		m.noteIfGateway(b, d)
	default:
		m.noteIfGateway(b, d)
	}
}

func (m *apacheMapper) balancer(name string, d *directive) *apacheBalancer {
	key := strings.TrimSuffix(strings.ToLower(name), "/")
	bal, ok := m.balancers[key]
	if !ok {
		bal = &apacheBalancer{set: map[string]string{}, d: d}
		m.balancers[key] = bal
	}
	return bal
}

// noteIfGateway reports a section junction cannot map when it holds
// gateway directives.
func (m *apacheMapper) noteIfGateway(b *builder, d *directive) {
	var walk func(ds []*directive) *directive
	walk = func(ds []*directive) *directive {
		for _, x := range ds {
			switch strings.ToLower(x.Name) {
			case "sethandler", "addhandler", "proxypass", "scriptalias", "action", "options":
				return x
			}
			if x.HasBlock {
				if y := walk(x.Block); y != nil {
					return y
				}
			}
		}
		return nil
	}
	if x := walk(d.Block); x != nil {
		b.note(d.File, d.Line, "<"+d.Name+" "+strings.Join(d.Args, " ")+">", fmt.Sprintf("a regex or file-name section (it holds %s at line %d): junction routes by URL prefix; map it by hand", x.Name, x.Line))
	}
}

func apacheParams(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		out[strings.ToLower(k)] = v
	}
	return out
}

func (m *apacheMapper) directive(b *builder, d *directive, name string, args []string, dir, loc string) {
	switch name {
	case "define":
		if len(args) >= 1 {
			v := ""
			if len(args) > 1 {
				v = args[1]
			}
			m.defines[args[0]] = v
		}
	case "user":
		if len(args) == 1 {
			b.setUser(args[0], m.group(), "Apache User")
		}
	case "documentroot":
		if len(args) == 1 {
			m.docRoot = args[0]
		}
	case "scriptalias":
		if len(args) == 2 {
			m.scriptAliases = append(m.scriptAliases, apacheAlias{url: args[0], dir: args[1], d: d})
		}
	case "alias":
		if len(args) == 2 {
			m.aliases = append(m.aliases, apacheAlias{url: args[0], dir: args[1], d: d})
		}
	case "options":
		if hasExecCGI(args) && dir != "" {
			x := m.dir(dir)
			x.execCGI = true
			x.notNeed = append(x.notNeed, d)
		}
	case "addhandler":
		if len(args) >= 2 {
			for _, ext := range args[1:] {
				ext = "." + strings.TrimPrefix(ext, ".")
				if dir != "" {
					m.dir(dir).handlers[ext] = args[0]
				} else {
					m.handlers[ext] = args[0]
				}
			}
			if strings.EqualFold(args[0], "cgi-script") {
				b.note(d.File, d.Line, d.Name+" "+strings.Join(args, " "), "not needed: junction runs any executable file under the backend's root (keep other files out of it, or let the front server serve them)")
			}
		}
	case "sethandler":
		if len(args) == 1 {
			m.setHandler(b, d, args[0], dir, loc)
		}
	case "action":
		if len(args) >= 2 {
			m.actions[args[0]] = apacheAlias{url: args[1], d: d}
		}
	case "setenv":
		if len(args) >= 1 {
			v := ""
			if len(args) > 1 {
				v = strings.Join(args[1:], " ")
			}
			e := EnvVar{Name: args[0], Value: v}
			if dir != "" {
				m.dir(dir).setEnv = append(m.dir(dir).setEnv, e)
			} else {
				m.globalEnv = append(m.globalEnv, e)
			}
		}
	case "passenv":
		if dir != "" {
			m.dir(dir).passEnv = append(m.dir(dir).passEnv, args...)
		} else {
			m.globalPass = append(m.globalPass, args...)
		}
	case "cgiscripttimeout":
		if len(args) == 1 {
			if t, ok := nginxDuration(args); ok {
				m.timeout = t
			}
		}
	case "proxypass":
		switch {
		case len(args) >= 2 && loc == "":
			m.proxies = append(m.proxies, apacheProxy{path: args[0], target: args[1], params: apacheParams(args[2:]), d: d})
		case len(args) >= 1 && loc != "":
			m.proxies = append(m.proxies, apacheProxy{path: loc, target: args[0], params: apacheParams(args[1:]), d: d})
		}
	case "scriptaliasmatch", "proxypassmatch", "aliasmatch":
		b.note(d.File, d.Line, d.Name, "a regex mapping: junction routes by URL prefix; map it by hand")
	case "proxypassreverse":
		b.note(d.File, d.Line, d.Name, "junction does not rewrite the Location headers its instances send; keep it in the front server if needed")
	case "unsetenv", "setenvif", "setenvifnocase", "scriptlog", "scriptloglength", "scriptlogbuffer", "cgivar", "cgipassauth", "suexecusergroup", "script":
		b.note(d.File, d.Line, d.Name, "no junction equivalent")
	}
}

func (m *apacheMapper) group() string {
	var g string
	var find func(ds []*directive)
	find = func(ds []*directive) {
		for _, d := range ds {
			if strings.EqualFold(d.Name, "group") && len(d.Args) == 1 && !d.HasBlock {
				g = m.expand(d.Args[0])
			}
			if d.HasBlock && !strings.EqualFold(d.Name, "virtualhost") {
				find(d.Block)
			}
		}
	}
	find(m.top)
	return g
}

func hasExecCGI(args []string) bool {
	for _, a := range args {
		if strings.EqualFold(a, "ExecCGI") || strings.EqualFold(a, "+ExecCGI") {
			return true
		}
	}
	return false
}

// setHandler maps SetHandler cgi-script (a directory or location of
// scripts) and SetHandler "proxy:..." (a FastCGI application).
func (m *apacheMapper) setHandler(b *builder, d *directive, h, dir, loc string) {
	switch {
	case strings.EqualFold(h, "cgi-script"):
		if dir != "" {
			m.dir(dir).cgiExts = append(m.dir(dir).cgiExts, "*")
			return
		}
		if loc != "" && m.docRoot != "" {
			x := m.dir(filepath.Join(m.docRoot, loc))
			x.cgiExts = append(x.cgiExts, "*")
			x.execCGI = true
			return
		}
		b.note(d.File, d.Line, d.Name, "cgi-script outside a <Directory> or <Location>: map it by hand")
	case strings.HasPrefix(strings.ToLower(h), "proxy:"):
		p := loc
		if p == "" {
			p = "/"
		}
		m.proxies = append(m.proxies, apacheProxy{path: p, target: h[len("proxy:"):], params: map[string]string{}, d: d})
	}
}

// urlOf finds the URL path a directory is served under: an Alias onto it
// or onto a parent, or the DocumentRoot.
func (m *apacheMapper) urlOf(dir string) (string, bool) {
	dir = strings.TrimSuffix(path.Clean(dir), "/")
	for _, a := range m.aliases {
		ad := strings.TrimSuffix(path.Clean(a.dir), "/")
		if rel, ok := strings.CutPrefix(dir, ad); ok && (rel == "" || rel[0] == '/') {
			return cleanPrefix(strings.TrimSuffix(a.url, "/")+rel, true), true
		}
	}
	if m.docRoot != "" {
		dr := strings.TrimSuffix(path.Clean(m.docRoot), "/")
		if rel, ok := strings.CutPrefix(dir, dr); ok && (rel == "" || rel[0] == '/') {
			return cleanPrefix(rel, true), true
		}
	}
	return "", false
}

// mapScripts makes the cgi backends: ScriptAlias targets, and directories
// with ExecCGI and a cgi-script or Action handler.
func (m *apacheMapper) mapScripts(b *builder) {
	covered := map[string]bool{}
	for _, sa := range m.scriptAliases {
		dir := strings.TrimSuffix(path.Clean(sa.dir), "/")
		covered[dir] = true
		prefix := cleanPrefix(sa.url, true)
		be := &Backend{Name: nameFor(sa.url, "scripts"), Type: "cgi", Timeout: m.timeout}
		if st, err := os.Stat(sa.dir); err == nil && st.Mode().IsRegular() && !strings.HasSuffix(sa.url, "/") {
			be.Script, be.URLPrefix, prefix = sa.dir, sa.url, cleanPrefix(sa.url, false)
		} else {
			be.Root, be.URLPrefix = dir, prefix
		}
		m.finishScripts(b, be, dir)
		be = b.addBackend(be)
		b.route(strings.TrimSuffix(prefix, "/")+"/", be)
		if be.Script != "" {
			b.route(prefix, be)
		}
		b.pointFront(prefix, b.scgi())
	}
	if m.docRoot != "" {
		// Server-wide Action handlers apply to the document root.
		dr := strings.TrimSuffix(path.Clean(m.docRoot), "/")
		if x := m.dir(dr); len(m.interpreters(b, &apacheDir{})) > 0 && !x.execCGI {
			b.hint("the document root runs Action handlers: send only their extensions to junction (nginx: location ~ \\.php$), let the front server serve the other files")
		}
	}
	for _, dir := range m.dirOrder {
		x := m.dirs[dir]
		if covered[dir] {
			continue
		}
		interp := m.interpreters(b, x)
		if !(x.execCGI && (len(x.cgiExts) > 0 || m.hasCGIHandler(x))) && len(interp) == 0 {
			continue
		}
		prefix, ok := m.urlOf(dir)
		if !ok {
			if x.at != nil {
				b.note(x.at.File, x.at.Line, "<Directory "+dir+">", "scripts here but no Alias or DocumentRoot serves the directory")
			}
			continue
		}
		be := &Backend{Name: nameFor(prefix, "scripts"), Type: "cgi", Root: dir, URLPrefix: prefix, Timeout: m.timeout}
		m.finishScripts(b, be, dir)
		be = b.addBackend(be)
		b.route(prefix, be)
		b.pointFront(prefix, b.scgi())
	}
}

func (m *apacheMapper) hasCGIHandler(x *apacheDir) bool {
	for _, h := range x.handlers {
		if strings.EqualFold(h, "cgi-script") {
			return true
		}
	}
	for _, h := range m.handlers {
		if strings.EqualFold(h, "cgi-script") {
			return true
		}
	}
	return false
}

// finishScripts adds a directory's environment and interpreters to be.
func (m *apacheMapper) finishScripts(b *builder, be *Backend, dir string) {
	be.SetEnv = append(be.SetEnv, m.globalEnv...)
	be.PassEnv = append(be.PassEnv, m.globalPass...)
	if x, ok := m.dirs[dir]; ok {
		be.SetEnv = append(be.SetEnv, x.setEnv...)
		be.PassEnv = append(be.PassEnv, x.passEnv...)
		be.Interpreters = m.interpreters(b, x)
		for _, d := range x.notNeed {
			b.note(d.File, d.Line, d.Name+" "+strings.Join(d.Args, " "), "not needed: every executable under the backend's root runs")
		}
		x.notNeed = nil
	}
}

// interpreters turns Action handlers into interpreters: AddHandler H .ext
// with Action H /cgi-bin/prog runs prog SCRIPT for .ext files.
func (m *apacheMapper) interpreters(b *builder, x *apacheDir) []Interpreter {
	hs := map[string]string{}
	for k, v := range m.handlers {
		hs[k] = v
	}
	for k, v := range x.handlers {
		hs[k] = v
	}
	var out []Interpreter
	for _, ext := range sortedKeys(hs) {
		a, ok := m.actions[hs[ext]]
		if !ok {
			continue
		}
		prog, ok := m.scriptPath(a.url)
		if !ok {
			b.note(a.d.File, a.d.Line, a.d.Name+" "+strings.Join(a.d.Args, " "), "the action URL is not under a ScriptAlias: cannot tell which program it runs")
			continue
		}
		out = append(out, Interpreter{Ext: ext, Command: []string{prog}})
	}
	return out
}

// scriptPath resolves a URL path under a ScriptAlias to its file.
func (m *apacheMapper) scriptPath(u string) (string, bool) {
	for _, sa := range m.scriptAliases {
		p := strings.TrimSuffix(sa.url, "/")
		if rel, ok := strings.CutPrefix(u, p); ok && strings.HasPrefix(rel, "/") {
			return filepath.Join(sa.dir, rel), true
		}
	}
	return "", false
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

// proxyTarget splits "unix:/path|fcgi://host/x" and "fcgi://host:port/x"
// into scheme, junction address and path.
func proxyTarget(t string) (scheme, addr, p string, err error) {
	sock := ""
	if rest, ok := strings.CutPrefix(t, "unix:"); ok {
		s, u, ok := strings.Cut(rest, "|")
		if !ok {
			return "", "", "", fmt.Errorf("%q: a unix socket needs |scheme://", t)
		}
		sock, t = s, u
	}
	u, err := url.Parse(t)
	if err != nil {
		return "", "", "", err
	}
	scheme = strings.ToLower(u.Scheme)
	addr = u.Host
	if sock != "" {
		addr = "unix:" + sock
	} else if u.Port() == "" {
		def := map[string]string{"http": "80", "https": "443", "ajp": "8009", "fcgi": "8000", "scgi": "4000"}
		addr = u.Host + ":" + def[scheme]
	}
	return scheme, addr, u.Path, nil
}

func (m *apacheMapper) mapProxies(b *builder) {
	for _, p := range m.proxies {
		d := p.d
		where := d.Name + " " + strings.Join(d.Args, " ")
		if p.target == "!" {
			b.note(d.File, d.Line, where, "an exclusion: keep it in the front server")
			continue
		}
		scheme, addr, tpath, err := proxyTarget(p.target)
		if err != nil {
			b.note(d.File, d.Line, where, err.Error())
			continue
		}
		prefix := cleanPrefix(p.path, false)
		switch scheme {
		case "fcgi":
			m.mapFCGI(b, p, addr, tpath, prefix)
		case "http", "ajp":
			be := &Backend{Name: nameFor(prefix, "app"), Type: "http", Instances: []Instance{{Address: addr}}}
			if !m.pathMap(b, p, be, tpath, prefix) {
				continue
			}
			if scheme == "ajp" {
				b.hint("%s:%d: %s: junction pools speak HTTP: point the instance at the application's HTTP connector instead of its AJP port %s", d.File, d.Line, d.Name, addr)
			}
			m.addPool(b, be, prefix)
		case "balancer":
			m.mapBalancer(b, p, addr, tpath, prefix)
		case "scgi":
			b.note(d.File, d.Line, where, "an SCGI application: junction pools speak HTTP and FastCGI")
		default:
			b.note(d.File, d.Line, where, fmt.Sprintf("scheme %q: no junction equivalent", scheme))
		}
	}
}

// pathMap sets strip_prefix so the instance sees the path it saw from
// Apache; false (noted) when the mapping is not a plain prefix removal.
func (m *apacheMapper) pathMap(b *builder, p apacheProxy, be *Backend, tpath, prefix string) bool {
	from := strings.TrimSuffix(prefix, "/")
	to := strings.TrimSuffix(tpath, "/")
	switch {
	case from == to:
	case to == "":
		be.StripPrefix = from
	default:
		b.note(p.d.File, p.d.Line, p.d.Name+" "+strings.Join(p.d.Args, " "), fmt.Sprintf("maps %s to %s on the instance: junction can only remove a prefix (strip_prefix)", prefix, tpath))
		return false
	}
	return true
}

func (m *apacheMapper) addPool(b *builder, be *Backend, prefix string) {
	be = b.addBackend(be)
	b.route(prefix, be)
	b.pointFront(prefix, b.scgi())
}

func (m *apacheMapper) mapFCGI(b *builder, p apacheProxy, addr, tpath, prefix string) {
	d := p.d
	if !fcgiApp(addr+" "+tpath+" "+d.File, "") {
		// A CGI runner such as fcgiwrap: Apache sends
		// SCRIPT_FILENAME=proxy:fcgi://host/DIR/script; junction takes
		// over its socket with DIR as the root.
		if tpath == "" || tpath == "/" {
			b.note(d.File, d.Line, d.Name, "no script directory in the fcgi:// URL: cannot tell where the scripts live")
			return
		}
		be := &Backend{Name: nameFor(prefix, "scripts"), Type: "cgi", Root: strings.TrimSuffix(tpath, "/"), URLPrefix: cleanPrefix(prefix, true), Timeout: m.timeout}
		m.finishScripts(b, be, be.Root)
		be = b.addBackend(be)
		l := b.listener("fastcgi", addr)
		b.route(prefix, be)
		b.pointFront(prefix, l)
		b.hint("%s:%d: %s: a CGI runner (fcgiwrap): junction takes over its socket %s", d.File, d.Line, d.Name, addr)
		return
	}
	root := strings.TrimSuffix(tpath, "/")
	if root == "" {
		root = strings.TrimSuffix(m.docRoot, "/")
	}
	if root == "" {
		b.note(d.File, d.Line, d.Name, "no document root (none in the fcgi:// URL, no DocumentRoot)")
		return
	}
	be := &Backend{Name: nameFor(prefix, "php"), Type: "fastcgi", Root: root, Instances: []Instance{{Address: addr}}}
	if tpath != "" && prefix != "/" {
		be.StripPrefix = strings.TrimSuffix(prefix, "/")
	}
	m.addPool(b, be, prefix)
}

func (m *apacheMapper) mapBalancer(b *builder, p apacheProxy, name, tpath, prefix string) {
	d := p.d
	host, _, _ := strings.Cut(name, ":")
	bal, ok := m.balancers["balancer://"+strings.ToLower(host)]
	if !ok || len(bal.members) == 0 {
		b.note(d.File, d.Line, d.Name+" "+strings.Join(d.Args, " "), "no <Proxy balancer://...> with BalancerMember lines for it")
		return
	}
	params := map[string]string{}
	for k, v := range bal.set {
		params[k] = v
	}
	for k, v := range p.params {
		params[k] = v
	}
	be := &Backend{Name: nameFor(prefix, "app"), Type: "http"}
	scheme0 := ""
	for _, mem := range bal.members {
		scheme, addr, mpath, err := proxyTarget(mem.target)
		if err != nil {
			b.note(mem.d.File, mem.d.Line, mem.d.Name, err.Error())
			continue
		}
		if scheme0 == "" {
			scheme0 = scheme
			tpath = mpath + tpath
		} else if scheme != scheme0 {
			b.note(mem.d.File, mem.d.Line, mem.d.Name, fmt.Sprintf("scheme %s differs from the first member's %s: left out", scheme, scheme0))
			continue
		}
		w := 0
		if lf, ok := mem.params["loadfactor"]; ok {
			w, _ = strconv.Atoi(lf)
		}
		be.Instances = append(be.Instances, Instance{Address: addr, Weight: w, Route: mem.params["route"]})
		if mem.params["status"] != "" {
			b.note(mem.d.File, mem.d.Line, "status="+mem.params["status"], "member status flags are not imported")
		}
	}
	if len(be.Instances) == 0 {
		return
	}
	switch scheme0 {
	case "fcgi":
		be.Type = "fastcgi"
		be.Root = strings.TrimSuffix(tpath, "/")
		if be.Root == "" {
			be.Root = strings.TrimSuffix(m.docRoot, "/")
		}
		if be.Root == "" {
			b.note(d.File, d.Line, d.Name, "a FastCGI balancer with no document root")
			return
		}
	case "ajp":
		b.hint("%s:%d: balancer members speak AJP; junction pools speak HTTP: point the instances at the members' HTTP connectors (same routes and weights)", d.File, d.Line)
	case "http":
		if !m.pathMap(b, p, be, tpath, prefix) {
			return
		}
	default:
		b.note(d.File, d.Line, d.Name, fmt.Sprintf("balancer members speak %s: no junction pool type for it", scheme0))
		return
	}
	switch lb := strings.ToLower(params["lbmethod"]); lb {
	case "", "byrequests":
		be.Balance = "weighted_round_robin"
	case "bybusyness":
		be.Balance = "least_conn"
	default:
		b.note(bal.d.File, bal.d.Line, "lbmethod="+lb, "no junction equivalent: weighted_round_robin is used")
		be.Balance = "weighted_round_robin"
	}
	if ss := params["stickysession"]; ss != "" {
		first, _, _ := strings.Cut(ss, "|")
		if !strings.EqualFold(first, "JSESSIONID") {
			b.note(d.File, d.Line, "stickysession="+ss, "junction's routes follow JSESSIONID (cookie or ;jsessionid=); for another cookie use sticky_cookie")
		}
	}
	m.addPool(b, be, prefix)
}
