package importer

import (
	"bufio"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// prop is one line of a Java properties file as mod_jk reads it.
type prop struct {
	key, value string
	file       string
	line       int
}

// cSpace is C's isspace in the "C" locale, the blanks mod_jk trims.
const cSpace = " \t\n\v\f\r"

var jkVarRE = regexp.MustCompile(`\$\(([A-Za-z0-9_.]+)\)`)

// parseProperties reads mod_jk's properties format: "key=value" lines,
// "#" comments, a trailing "\" continuing a line (trailing blanks after it
// do not count: mod_jk trims a line before it looks), and $(name)
// replaced by an earlier property's value. Blanks are C's isspace set,
// mod_jk's, the same for the continuation test and the trimming: a line
// whose "\" is followed by a vertical tab continues, as it does there.
func parseProperties(file, src string, prior map[string]string) ([]prop, error) {
	var out []prop
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), maxFileSize)
	n := 0
	for sc.Scan() {
		n++
		start := n
		line := strings.TrimRight(sc.Text(), cSpace)
		for strings.HasSuffix(line, "\\") && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, "\\") + strings.Trim(sc.Text(), cSpace)
		}
		line = strings.Trim(line, cSpace)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key=value, got %q", file, start, line)
		}
		k, v = strings.Trim(k, cSpace), strings.Trim(v, cSpace)
		v = jkVarRE.ReplaceAllStringFunc(v, func(x string) string {
			if r, ok := prior[x[2:len(x)-1]]; ok {
				return r
			}
			return x
		})
		prior[k] = v
		out = append(out, prop{key: k, value: v, file: file, line: start})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, nil
}

// jkWorker is one worker of workers.properties.
type jkWorker struct {
	name            string
	typ             string
	host            string
	port            int
	lbfactor        int
	route           string
	members         []string
	method          string
	activation      string
	file            string
	line            int
	stickyDisabled  bool
	stickySessionAt *prop
}

// jkMount is a JkMount (or uriworkermap.properties) line.
type jkMount struct {
	pattern, worker string
	file            string
	line            int
}

// modjkMapper maps mod_jk: workers.properties, JkMount lines (in Apache
// configuration or uriworkermap.properties).
type modjkMapper struct {
	props  []prop
	mounts []jkMount
	vars   map[string]string
}

func (m *modjkMapper) load(b *builder, files []string) error {
	m.vars = map[string]string{}
	for _, f := range files {
		if err := m.loadOne(b, f); err != nil {
			return err
		}
	}
	return nil
}

func (m *modjkMapper) loadOne(b *builder, f string) error {
	src, err := readFile(f)
	if err != nil {
		return err
	}
	if filepath.Ext(f) == ".properties" {
		ps, err := parseProperties(f, string(src), m.vars)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if strings.HasPrefix(p.key, "/") || strings.HasPrefix(p.key, "!") || strings.HasPrefix(p.key, "-") {
				m.mounts = append(m.mounts, jkMount{pattern: p.key, worker: p.value, file: p.file, line: p.line})
				continue
			}
			m.props = append(m.props, p)
		}
		return nil
	}
	l := &apacheLoader{}
	ds, err := l.load(f, 0, false)
	if err != nil {
		return err
	}
	var walk func(ds []*directive, loc string) error
	walk = func(ds []*directive, loc string) error {
		for _, d := range ds {
			switch {
			case d.HasBlock && strings.EqualFold(d.Name, "location") && len(d.Args) == 1:
				if err := walk(d.Block, d.Args[0]); err != nil {
					return err
				}
			case d.HasBlock:
				if err := walk(d.Block, loc); err != nil {
					return err
				}
			case strings.EqualFold(d.Name, "JkMount") && len(d.Args) == 2:
				m.mounts = append(m.mounts, jkMount{pattern: d.Args[0], worker: d.Args[1], file: d.File, line: d.Line})
			case strings.EqualFold(d.Name, "JkMount") && len(d.Args) == 1 && loc != "":
				m.mounts = append(m.mounts, jkMount{pattern: loc, worker: d.Args[0], file: d.File, line: d.Line})
			case strings.EqualFold(d.Name, "JkUnMount"):
				b.note(d.File, d.Line, d.Name, "an exclusion: keep it in the front server")
			case strings.EqualFold(d.Name, "JkWorkersFile") && len(d.Args) == 1:
				wf := d.Args[0]
				if !filepath.IsAbs(wf) {
					wf = filepath.Join(filepath.Dir(d.File), wf)
				}
				if err := m.loadOne(b, wf); err != nil {
					return fmt.Errorf("%s:%d: JkWorkersFile: %w", d.File, d.Line, err)
				}
			}
		}
		return nil
	}
	return walk(ds, "")
}

func (m *modjkMapper) workers(b *builder) map[string]*jkWorker {
	ws := map[string]*jkWorker{}
	get := func(name string, p prop) *jkWorker {
		w, ok := ws[name]
		if !ok {
			w = &jkWorker{name: name, typ: "ajp13", port: 8009, host: "localhost", lbfactor: 1, file: p.file, line: p.line}
			ws[name] = w
		}
		return w
	}
	for _, p := range m.props {
		rest, ok := strings.CutPrefix(p.key, "worker.")
		if !ok || rest == "list" || strings.HasPrefix(rest, "list") {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i <= 0 {
			continue
		}
		name, attr := rest[:i], rest[i+1:]
		if strings.Contains(name, ".") {
			// worker.TEMPLATE.X templates and worker.X.reference: rare.
			b.note(p.file, p.line, p.key, "worker templates are not imported")
			continue
		}
		w := get(name, p)
		switch attr {
		case "type":
			w.typ = p.value
		case "host":
			w.host = p.value
		case "port":
			if n, err := strconv.Atoi(p.value); err == nil {
				w.port = n
			}
		case "lbfactor", "lb_factor":
			if n, err := strconv.Atoi(p.value); err == nil && n > 0 {
				w.lbfactor = n
			}
		case "route", "jvm_route":
			w.route = p.value
		case "balance_workers", "balanced_workers":
			for _, x := range strings.Split(p.value, ",") {
				if x = strings.TrimSpace(x); x != "" {
					w.members = append(w.members, x)
				}
			}
		case "method":
			w.method = p.value
		case "activation":
			w.activation = strings.ToUpper(p.value)
		case "sticky_session":
			w.stickyDisabled = p.value == "false" || p.value == "0"
			pp := p
			w.stickySessionAt = &pp
		case "connection_pool_timeout", "socket_keepalive", "ping_mode", "ping_timeout", "connect_timeout", "prepost_timeout", "reply_timeout", "retries", "recovery_options", "max_packet_size", "connection_pool_size", "connection_pool_minsize", "socket_timeout", "secret", "redirect", "distance", "domain", "lock", "retry_interval", "recover_time":
			b.note(p.file, p.line, p.key, "an AJP connection setting; junction's pool has its own (dial_timeout, timeout, health)")
		}
	}
	return ws
}

func (m *modjkMapper) mapTo(b *builder) {
	ws := m.workers(b)
	pools := map[string]*Backend{}
	for _, mt := range m.mounts {
		if strings.HasPrefix(mt.pattern, "!") || strings.HasPrefix(mt.pattern, "-") {
			b.note(mt.file, mt.line, mt.pattern, "an exclusion: keep it in the front server")
			continue
		}
		w, ok := ws[mt.worker]
		if !ok {
			b.note(mt.file, mt.line, "JkMount "+mt.pattern+" "+mt.worker, "no such worker in workers.properties")
			continue
		}
		prefix, ok := jkPrefix(mt.pattern)
		if !ok {
			b.note(mt.file, mt.line, "JkMount "+mt.pattern, "not a path prefix (PATH/* or PATH): junction routes by URL prefix")
			continue
		}
		be, ok := pools[w.name]
		if !ok {
			be = m.pool(b, w, ws)
			if be == nil {
				continue
			}
			be = b.addBackend(be)
			pools[w.name] = be
		}
		b.route(prefix, be)
		b.pointFront(prefix, b.scgi())
	}
	if len(pools) > 0 {
		b.hint("junction pools speak HTTP, not AJP: the instances above are the workers' AJP host:port; point each at its member's HTTP connector (same route and weight)")
	}
	b.snippets("apache", "nginx")
}

// jkPrefix reduces "/app/*" and "/app" to a route prefix.
func jkPrefix(p string) (string, bool) {
	if rest, ok := strings.CutSuffix(p, "/*"); ok && !strings.ContainsAny(rest, "*?") {
		return cleanPrefix(rest, true), true
	}
	if p == "/*" {
		return "/", true
	}
	if !strings.ContainsAny(p, "*?|") && strings.HasPrefix(p, "/") {
		return p, true
	}
	return "", false
}

// pool makes the http pool of an lb worker (or of a single ajp13 worker).
func (m *modjkMapper) pool(b *builder, w *jkWorker, ws map[string]*jkWorker) *Backend {
	be := &Backend{Name: w.name, Type: "http", Balance: "weighted_round_robin"}
	switch w.typ {
	case "lb":
		switch strings.ToUpper(w.method) {
		case "", "R", "REQUEST":
		case "B", "BUSYNESS":
			be.Balance = "least_conn"
		default:
			b.note(w.file, w.line, "worker."+w.name+".method="+w.method, "no junction equivalent: weighted_round_robin is used")
		}
		if w.stickyDisabled && w.stickySessionAt != nil {
			b.note(w.stickySessionAt.file, w.stickySessionAt.line, w.stickySessionAt.key, "junction always honours a JSESSIONID route while its instance is available")
		}
		for _, name := range w.members {
			mw, ok := ws[name]
			if !ok {
				b.note(w.file, w.line, "worker."+w.name+".balance_workers", "member "+name+" is not defined")
				continue
			}
			if mw.typ != "ajp13" && mw.typ != "ajp14" {
				b.note(mw.file, mw.line, "worker."+name+".type="+mw.typ, "only ajp13 members are imported")
				continue
			}
			if mw.activation == "S" || mw.activation == "D" {
				b.note(mw.file, mw.line, "worker."+name+".activation="+mw.activation, "a stopped or disabled member is left out")
				continue
			}
			be.Instances = append(be.Instances, m.instance(mw))
		}
	case "ajp13", "ajp14":
		be.Instances = []Instance{m.instance(w)}
		be.Balance = ""
	default:
		b.note(w.file, w.line, "worker."+w.name+".type="+w.typ, "no junction equivalent (junction's status page is on metrics.address)")
		return nil
	}
	if len(be.Instances) == 0 {
		return nil
	}
	return be
}

func (m *modjkMapper) instance(w *jkWorker) Instance {
	route := w.route
	if route == "" {
		route = w.name
	}
	host := w.host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return Instance{Address: host + ":" + strconv.Itoa(w.port), Weight: w.lbfactor, Route: route}
}
