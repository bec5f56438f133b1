package importer

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// uopt is one option of a uWSGI ini file (options may repeat).
type uopt struct {
	key, value string
	file       string
	line       int
}

// parseINI reads the [section] options of a uWSGI ini file: "key = value"
// lines, ";" and "#" comment lines, other sections skipped. uWSGI's magic
// variables %d (the file's directory, with a trailing "/") and %n (its
// name without extension) and %(key) (an option set before) are expanded.
// Includes are not followed here.
func parseINI(file, src, section string, prior []uopt) ([]uopt, error) {
	var out []uopt
	cur := section // options before any [section] header belong to uwsgi
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), maxFileSize)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: section header %q does not end with \"]\"", file, n, line)
			}
			cur = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		if cur != section {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			// A bare key is a boolean option set to true.
			k, v = line, "true"
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			return nil, fmt.Errorf("%s:%d: option without a name", file, n)
		}
		// Trimmed again: an expansion at either end may be empty.
		v = strings.TrimSpace(expandUWSGI(v, file, append(prior, out...)))
		out = append(out, uopt{key: k, value: v, file: file, line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, nil
}

func expandUWSGI(v, file string, prior []uopt) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' || i+1 >= len(v) {
			b.WriteByte(v[i])
			continue
		}
		switch v[i+1] {
		case 'd':
			b.WriteString(filepath.Dir(file) + "/")
			i++
		case 'n':
			b.WriteString(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
			i++
		case '%':
			b.WriteByte('%')
			i++
		case '(':
			end := strings.IndexByte(v[i:], ')')
			if end < 0 {
				b.WriteByte(v[i])
				continue
			}
			name := v[i+2 : i+end]
			val := ""
			for _, o := range prior {
				if o.key == name {
					val = o.value
				}
			}
			b.WriteString(val)
			i += end
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

// loadINI reads file (FILE or FILE:SECTION) and the ini files its "ini"
// options include, in place.
func loadINI(spec string, from string, prior []uopt, depth int) ([]uopt, error) {
	if depth > maxIncludeDepth {
		return nil, fmt.Errorf("%s: includes nested deeper than %d (a cycle?)", spec, maxIncludeDepth)
	}
	file, section := spec, "uwsgi"
	if i := strings.LastIndexByte(spec, ':'); i > 0 && !strings.Contains(spec[i:], "/") {
		file, section = spec[:i], spec[i+1:]
	}
	if from != "" && !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(from), file)
	}
	src, err := readFile(file)
	if err != nil {
		return nil, err
	}
	opts, err := parseINI(file, string(src), section, prior)
	if err != nil {
		return nil, err
	}
	var out []uopt
	for _, o := range opts {
		if o.key == "ini" {
			inc, err := loadINI(o.value, file, append(prior, out...), depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: ini: %w", o.file, o.line, err)
			}
			out = append(out, inc...)
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// uwsgiMapper maps an ini file using uWSGI's CGI plugin.
type uwsgiMapper struct {
	opts []uopt
}

func (m *uwsgiMapper) load(b *builder, files []string) error {
	for _, f := range files {
		opts, err := loadINI(f, "", m.opts, 0)
		if err != nil {
			return err
		}
		m.opts = append(m.opts, opts...)
	}
	return nil
}

// uwsgiIgnored are options for uWSGI's own process management, logging
// and protocol plumbing: junction has its own or needs none.
var uwsgiIgnored = map[string]string{
	"master": "junction supervises its scripts itself", "vacuum": "junction removes its sockets itself",
	"die-on-term": "junction stops on SIGTERM", "enable-threads": "not needed",
	"plugin": "not needed: CGI is built in", "plugins": "not needed: CGI is built in",
	"modifier1":              "not needed: a junction listener serves its backend directly",
	"scgi-modifier1":         "not needed: a junction listener serves its backend directly",
	"fastcgi-modifier1":      "not needed: a junction listener serves its backend directly",
	"cgi-allowed-ext":        "not needed: junction runs any executable file under root",
	"cgi-close-stdin-on-eof": "not needed: a script's stdin always ends after the request body",
	"disable-logging":        "junction logs no requests by default (log.access)",
	"listen":                 "junction uses the system's listen backlog",
}

func (m *uwsgiMapper) mapTo(b *builder) {
	var uid, gid string
	var dirs []uopt
	var helpers []Interpreter
	var timeout time.Duration
	procs, threads := 0, 0
	var env []EnvVar
	var sockets []uopt
	mode, owner, group := "", "", ""
	for _, o := range m.opts {
		switch o.key {
		case "uid":
			uid = o.value
		case "gid":
			gid = o.value
		case "cgi":
			dirs = append(dirs, o)
		case "cgi-helper":
			ext, cmd, ok := strings.Cut(o.value, "=")
			if !ok || !strings.HasPrefix(ext, ".") || strings.TrimSpace(cmd) == "" {
				b.note(o.file, o.line, o.key+" = "+o.value, "want .EXT=COMMAND")
				continue
			}
			argv := strings.Fields(cmd)
			if !filepath.IsAbs(argv[0]) {
				// uWSGI finds a bare name on its PATH; junction wants the
				// absolute path, found here on this machine's PATH.
				abs, err := exec.LookPath(argv[0])
				if err != nil || !filepath.IsAbs(abs) {
					b.note(o.file, o.line, o.key+" = "+o.value, fmt.Sprintf("%q is not on PATH here: write its absolute path", argv[0]))
					continue
				}
				argv[0] = abs
			}
			helpers = append(helpers, Interpreter{Ext: ext, Command: argv})
		case "cgi-timeout":
			n, err := strconv.Atoi(o.value)
			if err != nil || n <= 0 {
				b.note(o.file, o.line, o.key, "not a number of seconds")
				continue
			}
			timeout = time.Duration(n) * time.Second
		case "processes", "workers", "threads":
			n, err := strconv.Atoi(o.value)
			if err != nil || n <= 0 {
				b.note(o.file, o.line, o.key, "not a positive number")
				continue
			}
			if o.key == "threads" {
				threads = n
			} else {
				procs = n
			}
		case "env":
			k, v, ok := strings.Cut(o.value, "=")
			if !ok {
				b.note(o.file, o.line, o.key+" = "+o.value, "want NAME=value")
				continue
			}
			env = append(env, EnvVar{Name: k, Value: v})
		case "socket", "uwsgi-socket", "scgi-socket", "scgi", "fastcgi-socket", "http-socket":
			sockets = append(sockets, o)
		case "chmod-socket":
			mode = o.value
			if mode == "true" {
				mode = "666"
			}
			mode = "0" + strings.TrimLeft(mode, "0")
		case "chown-socket":
			owner, group, _ = strings.Cut(o.value, ":")
		default:
			why, ok := uwsgiIgnored[o.key]
			if !ok {
				why = "no junction equivalent"
			}
			b.note(o.file, o.line, o.key, why)
		}
	}
	b.setUser(uid, gid, "uWSGI uid")
	if len(dirs) == 0 {
		return
	}
	var ls []*Listener
	for _, s := range sockets {
		var l *Listener
		addr := s.value
		if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "@") {
			addr = "unix:" + addr
		} else if strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1" + addr
		}
		switch s.key {
		case "socket", "uwsgi-socket":
			b.note(s.file, s.line, s.key+" = "+s.value, "junction does not speak the uwsgi protocol: it gets an SCGI listener at "+b.opt.Listen+" (see the snippet)")
			l = b.scgi()
		case "scgi-socket", "scgi":
			l = b.listener("scgi", addr)
		case "fastcgi-socket":
			l = b.listener("fastcgi", addr)
		case "http-socket":
			l = b.listener("http", addr)
		}
		if strings.HasPrefix(l.Address, "unix:") {
			l.SocketMode, l.SocketOwner, l.SocketGroup = mode, owner, group
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		ls = append(ls, b.scgi())
	}
	concurrency := 0
	if procs > 0 {
		concurrency = procs * max(threads, 1)
	}
	for _, d := range dirs {
		mount, dir, ok := strings.Cut(d.value, "=")
		if !ok {
			mount, dir = "/", d.value
		}
		be := &Backend{Name: nameFor(mount, "scripts"), Type: "cgi", Interpreters: helpers, Timeout: timeout, MaxConcurrent: concurrency, SetEnv: env}
		if strings.HasSuffix(dir, "/") || filepath.Ext(dir) == "" {
			be.Root, be.URLPrefix = strings.TrimSuffix(dir, "/"), cleanPrefix(mount, true)
		} else {
			be.Script, be.URLPrefix = dir, strings.TrimSuffix(cleanPrefix(mount, false), "/")
		}
		be = b.addBackend(be)
		prefix := cleanPrefix(mount, true)
		b.route(prefix, be)
		for _, l := range ls {
			b.pointFront(prefix, l)
		}
	}
	b.snippets("nginx")
}
