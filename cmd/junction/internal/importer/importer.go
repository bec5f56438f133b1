// Package importer reads the configuration of the gateways people run
// today (nginx locations passing to fcgiwrap or uWSGI, Apache mod_cgi and
// mod_proxy, lighttpd mod_cgi and mod_fastcgi, uWSGI's CGI plugin, mod_jk's
// workers.properties) and turns it into a junction configuration: the
// `junction import KIND FILE...` command.
//
// Each format has a real parser of its own (nginx blocks with quoting and
// includes, Apache directives and sections with Include globs, lighttpd's
// configuration language with arrays, "=>", "+=" and conditionals, uWSGI
// ini files, Java properties) and a mapper from what it found to a Config.
// What has no junction equivalent is reported as a Note
// ("file:line: directive: why"), never dropped silently; what the web
// server alone handles (listen ports, logging, TLS) stays with it and is
// not reported.
//
// Scope and limits: conditionals and regular expressions are mapped only
// where they reduce to a URL prefix ("^/cgi-bin/"); files are read, never
// executed (lighttpd's include_shell is reported); a gateway socket whose
// protocol junction speaks (FastCGI, SCGI, HTTP) becomes junction's
// listener, otherwise junction gets a new SCGI listener (Options.Listen).
package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Kinds are the accepted input kinds, in the order the usage lists them.
var Kinds = []string{"nginx", "apache", "lighttpd", "uwsgi", "modjk"}

// DefaultListen is the address of the SCGI listener junction gets when the
// old setup had no gateway socket in a protocol junction speaks.
const DefaultListen = "127.0.0.1:4000"

// ErrUnknownKind is returned for a KIND outside Kinds (a usage error).
var ErrUnknownKind = errors.New("importer: unknown kind")

// ErrNothingMapped is returned when the input held nothing junction can
// serve; the notes still say why.
var ErrNothingMapped = errors.New("importer: nothing could be mapped")

// maxIncludeDepth bounds nested includes; real configurations nest two or
// three levels, a cycle would nest for ever.
const maxIncludeDepth = 16

// maxFileSize bounds one configuration file read (real ones are kilobytes).
const maxFileSize = 8 << 20

// Options are the command's flags.
type Options struct {
	// User is the identity scripts ran as when the input does not say
	// (fcgiwrap's user lives in its systemd unit). The input's own
	// (Apache User, lighttpd server.username, uWSGI uid) wins.
	User string
	// Listen is the address of the new SCGI listener. Default
	// DefaultListen.
	Listen string
}

// Note is one directive that was not mapped, and why.
type Note struct {
	File      string
	Line      int
	Directive string
	Why       string
}

func (n Note) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", n.File, n.Line, n.Directive, n.Why)
}

// Snippet is configuration for a front server to point it at junction.
type Snippet struct {
	// Server names the front server ("nginx", "apache", "lighttpd").
	Server string
	// Where says where the text goes ("inside server { }").
	Where string
	// Text is the configuration itself.
	Text string
}

// Result is an imported configuration with what did not map.
type Result struct {
	Config   Config
	Notes    []Note
	Hints    []string
	Snippets []Snippet
}

// Config is the junction configuration an import produced: the subset of
// junction's keys an import can fill.
type Config struct {
	User, Group string
	Listeners   []Listener
	Routes      []Route
	Backends    []*Backend
}

// Listener is one junction listener.
type Listener struct {
	Protocol, Address, Backend string
	SocketMode                 string
	SocketOwner, SocketGroup   string
	// takeover marks the old gateway's own socket (not the new SCGI one).
	takeover bool
}

// Route sends a URL prefix to a backend.
type Route struct {
	Prefix, Backend string
}

// Backend is a cgi backend or an http/fastcgi pool.
type Backend struct {
	Name, Type         string
	Root, URLPrefix    string
	Script             string
	Interpreters       []Interpreter
	Timeout            time.Duration
	MaxConcurrent      int
	SetEnv             []EnvVar
	PassEnv            []string
	Instances          []Instance
	Balance            string
	StripPrefix, Index string
}

// Interpreter runs the scripts with extension Ext as Command... SCRIPT.
type Interpreter struct {
	Ext     string
	Command []string
}

// EnvVar is one set_env entry.
type EnvVar struct{ Name, Value string }

// Instance is a pool member.
type Instance struct {
	Address string
	Weight  int
	Route   string
}

// Import reads files as KIND and maps them. The error is ErrUnknownKind
// for a bad kind, a read or parse error naming the file, or
// ErrNothingMapped (with the Result's notes saying why).
func Import(kind string, files []string, opt Options) (*Result, error) {
	if opt.Listen == "" {
		opt.Listen = DefaultListen
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("importer: no input file")
	}
	var m mapper
	switch kind {
	case "nginx":
		m = &nginxMapper{}
	case "apache":
		m = &apacheMapper{}
	case "lighttpd":
		m = &lighttpdMapper{}
	case "uwsgi":
		m = &uwsgiMapper{}
	case "modjk":
		m = &modjkMapper{}
	default:
		return nil, fmt.Errorf("%w %q (one of %s)", ErrUnknownKind, kind, strings.Join(Kinds, ", "))
	}
	b := &builder{opt: opt}
	if err := m.load(b, files); err != nil {
		return nil, err
	}
	m.mapTo(b)
	res := b.finish()
	if len(res.Config.Backends) == 0 {
		return res, ErrNothingMapped
	}
	return res, nil
}

// mapper is one input kind.
type mapper interface {
	// load reads and parses files (following includes).
	load(b *builder, files []string) error
	// mapTo fills b.
	mapTo(b *builder)
}

// builder collects a Result.
type builder struct {
	opt      Options
	res      Result
	identity string // where the user came from, for the hint
	fronts   []front
}

// note records a directive that was not mapped.
func (b *builder) note(file string, line int, directive, why string) {
	n := Note{File: file, Line: line, Directive: directive, Why: why}
	if !slices.Contains(b.res.Notes, n) {
		b.res.Notes = append(b.res.Notes, n)
	}
}

// hint records a free line for standard error.
func (b *builder) hint(format string, args ...any) {
	b.res.Hints = append(b.res.Hints, fmt.Sprintf(format, args...))
}

// setUser records the identity the input names (the first one wins).
func (b *builder) setUser(user, group, from string) {
	if b.res.Config.User != "" || user == "" {
		return
	}
	b.res.Config.User, b.res.Config.Group, b.identity = user, group, from
}

// addBackend adds be under a unique name derived from be.Name and returns
// it; an equal backend already present is returned instead.
func (b *builder) addBackend(be *Backend) *Backend {
	for _, o := range b.res.Config.Backends {
		if sameBackend(o, be) {
			return o
		}
	}
	base := sanitizeName(be.Name)
	name := base
	for i := 2; b.backend(name) != nil; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	be.Name = name
	b.res.Config.Backends = append(b.res.Config.Backends, be)
	return be
}

func sameBackend(a, b *Backend) bool {
	x, y := *a, *b
	x.Name, y.Name = "", ""
	return fmt.Sprintf("%#v", x) == fmt.Sprintf("%#v", y)
}

func (b *builder) backend(name string) *Backend {
	for _, o := range b.res.Config.Backends {
		if strings.EqualFold(o.Name, name) {
			return o
		}
	}
	return nil
}

// route sends prefix to backend; a prefix of "/" makes it the default of
// every listener instead. The first route of a prefix wins.
func (b *builder) route(prefix string, be *Backend) {
	for _, r := range b.res.Config.Routes {
		if r.Prefix == prefix {
			return
		}
	}
	b.res.Config.Routes = append(b.res.Config.Routes, Route{Prefix: prefix, Backend: be.Name})
}

// listener adds a listener at addr speaking proto (once per address) and
// returns it.
func (b *builder) listener(proto, addr string) *Listener {
	for i := range b.res.Config.Listeners {
		if l := &b.res.Config.Listeners[i]; l.Address == addr {
			return l
		}
	}
	b.res.Config.Listeners = append(b.res.Config.Listeners, Listener{Protocol: proto, Address: addr, takeover: true})
	return &b.res.Config.Listeners[len(b.res.Config.Listeners)-1]
}

// scgi returns the new SCGI listener (Options.Listen).
func (b *builder) scgi() *Listener {
	l := b.listener("scgi", b.opt.Listen)
	l.takeover = false
	return l
}

// finish settles defaults: every listener gets a default backend, routes
// that only repeat it go, the identity is filled in, and notes are sorted.
func (b *builder) finish() *Result {
	c := &b.res.Config
	if c.User == "" && b.opt.User != "" {
		c.User, b.identity = b.opt.User, "--user"
	}
	if len(c.Backends) > 0 {
		if len(c.Listeners) == 0 {
			b.scgi()
		}
		def := ""
		var routes []Route
		for _, r := range c.Routes {
			if r.Prefix == "/" && def == "" {
				def = r.Backend
				continue
			}
			routes = append(routes, r)
		}
		c.Routes = routes
		for i := range c.Listeners {
			l := &c.Listeners[i]
			if l.Backend == "" {
				l.Backend = def
			}
			if l.Backend == "" && len(c.Routes) == 0 {
				l.Backend = c.Backends[0].Name
			}
		}
		if c.User == "" {
			b.hint("identity: the input does not say which user ran the scripts; pass --user NAME (started as root, junction refuses to run scripts as root)")
		}
		for i := range c.Listeners {
			l := &c.Listeners[i]
			if !l.takeover || !strings.HasPrefix(l.Address, "unix:") || l.SocketMode != "" || l.SocketOwner != "" {
				continue
			}
			// junction binds as root: without these the socket would be
			// root's and the web server's workers could not connect.
			// Debian's fcgiwrap.socket is www-data's with mode 0660.
			l.SocketMode, l.SocketOwner = "0660", c.User
			b.hint("%s: owned by %s with mode 0660 (as Debian's fcgiwrap.socket is www-data's, 0660): add socket_group: GROUP if the web server runs as another user", l.Address, ownerName(c.User))
		}
	}
	slices.SortStableFunc(b.res.Notes, func(x, y Note) int {
		if x.File != y.File {
			return strings.Compare(x.File, y.File)
		}
		return x.Line - y.Line
	})
	return &b.res
}

func ownerName(u string) string {
	if u == "" {
		return "junction's user"
	}
	return u
}

// sanitizeName turns s into a backend name: lower case letters, digits,
// "-" and "_"; "backend" if nothing is left.
func sanitizeName(s string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			sb.WriteRune(r)
		case sb.Len() > 0 && !strings.HasSuffix(sb.String(), "_"):
			sb.WriteByte('_')
		}
	}
	n := strings.Trim(sb.String(), "_-")
	if n == "" {
		return "backend"
	}
	return n
}

// nameFor derives a backend name from a URL prefix ("/cgi-bin/" →
// "cgi-bin") or falls back to def.
func nameFor(prefix, def string) string {
	if n := sanitizeName(strings.Trim(prefix, "/")); n != "backend" {
		return n
	}
	return def
}

// readFile reads one configuration file, bounded.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return os.ReadFile(path)
}

// expandInclude resolves an include pattern: absolute, or relative to the
// including file's directory, else to each of the fallback directories
// (nginx's and Apache's own prefix). Globs are expanded and sorted; a
// pattern without glob characters that matches nothing is returned as is
// (its read fails and names it).
func expandInclude(pattern, from string, fallback ...string) ([]string, error) {
	var cands []string
	if filepath.IsAbs(pattern) {
		cands = []string{pattern}
	} else {
		cands = append(cands, filepath.Join(filepath.Dir(from), pattern))
		for _, d := range fallback {
			if d != "" {
				cands = append(cands, filepath.Join(d, pattern))
			}
		}
	}
	glob := strings.ContainsAny(pattern, "*?[")
	for _, c := range cands {
		if !glob {
			if _, err := os.Stat(c); err == nil {
				return []string{c}, nil
			}
			continue
		}
		m, err := filepath.Glob(c)
		if err != nil {
			return nil, fmt.Errorf("bad include pattern %q: %w", pattern, err)
		}
		if len(m) > 0 {
			slices.Sort(m)
			return m, nil
		}
	}
	if glob {
		return nil, nil
	}
	return cands[:1], nil
}

// cleanPrefix makes p a route prefix: "/" first, and "/" last when dir.
func cleanPrefix(p string, dir bool) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if dir && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}
