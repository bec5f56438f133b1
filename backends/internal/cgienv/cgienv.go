// Package cgienv builds the environment of a CGI script (RFC 3875 section 4.1)
// from an *http.Request, the variables the front server sent with it
// (package vars) and the script junction resolved. It is the one builder
// used by junction's CGI and FastCGI backends.
//
// Where values come from, from lowest to highest precedence:
//
//  1. the configured base: PassEnv names copied from junction's own
//     environment, then SetEnv values, and PATH (DefaultPath unless one of
//     those set it);
//  2. values junction derives from the request: REMOTE_ADDR, REMOTE_PORT,
//     REMOTE_HOST (= REMOTE_ADDR), SERVER_NAME, SERVER_PORT,
//     SERVER_PROTOCOL, REQUEST_URI, DOCUMENT_ROOT, HTTPS and
//     REQUEST_SCHEME, REDIRECT_STATUS=200 (for php-cgi's
//     cgi.force_redirect);
//  3. the front server's variables, which describe the client and the
//     server better than junction can (SERVER_ADDR, REMOTE_ADDR, HTTPS,
//     SSL_*, REMOTE_USER, AUTH_TYPE, custom params), except the names in
//     points 4 and 5;
//  4. values only junction decides: SCRIPT_FILENAME, SCRIPT_NAME,
//     PATH_INFO, PATH_TRANSLATED (DOCUMENT_ROOT + PATH_INFO, only when
//     PATH_INFO is not empty), REQUEST_METHOD, QUERY_STRING,
//     CONTENT_LENGTH, CONTENT_TYPE, GATEWAY_INTERFACE, SERVER_SOFTWARE,
//     and HTTP_* built from r.Header (never from the front server's raw
//     variables).
//  5. Never taken from the front server: names that change how the
//     script's interpreter, loader or shell behaves (see Denied), and names
//     that are not valid environment names.
//
// HTTP_* variables follow vars.HeaderVar, the one mapping junction has:
// the header name is upper-cased with "-" turned into "_". Header names
// that already contain "_" are dropped (as Apache httpd 2.4 and nginx do),
// so "X_Foo" can never pose as "X-Foo". The Proxy header is never passed
// (HTTP_PROXY, httpoxy, CVE-2016-5385). Repeated values are joined with
// ", " (Cookie with "; "). Content-Type and Content-Length appear only as
// CONTENT_TYPE and CONTENT_LENGTH.
//
// LocalRedirect builds the follow-up request of a script's local redirect
// (RFC 3875 section 6.2.2) for both backends.
//
// Values containing NUL are dropped: they cannot be passed to execve.
// The output is sorted by name.
package cgienv

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/junction-gw/junction/vars"
)

// DefaultPath is the PATH a script gets unless the configuration gives one.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// Options configure a Builder.
type Options struct {
	// PassEnv lists names copied from junction's own environment (when
	// set there). Nothing else of junction's environment reaches scripts.
	PassEnv []string
	// SetEnv holds fixed values; they override PassEnv.
	SetEnv map[string]string
	// ServerSoftware is SERVER_SOFTWARE; "" means "junction/" + the
	// module version when known.
	ServerSoftware string
	// OmitPath leaves PATH out unless PassEnv or SetEnv set it (for
	// FastCGI parameters, where the application has its own PATH).
	OmitPath bool
	// OwnDocumentRoot makes DOCUMENT_ROOT always Script.DocumentRoot, also
	// over a DOCUMENT_ROOT the front server sent: that one names the front
	// server's files, not those of an application instance that may run on
	// another host (FastCGI). PATH_TRANSLATED follows it.
	OwnDocumentRoot bool
	// LookupEnv reads junction's environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Script is what junction resolved for a request.
type Script struct {
	// Filename is the absolute path of the script (SCRIPT_FILENAME).
	Filename string
	// Name is the URL path that names the script (SCRIPT_NAME).
	Name string
	// PathInfo is the rest of the URL path after Name (PATH_INFO).
	PathInfo string
	// DocumentRoot is DOCUMENT_ROOT, unless the front server sent one and
	// Options.OwnDocumentRoot is not set.
	DocumentRoot string
}

// Builder builds script environments. It is safe for concurrent use.
type Builder struct {
	base     []vars.Var // sorted, unique
	software string
	ownRoot  bool
}

// New validates o and returns a Builder.
func New(o Options) (*Builder, error) {
	lookup := o.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	m := make(map[string]string)
	var errs []error
	for _, name := range o.PassEnv {
		if !ValidName(name) {
			errs = append(errs, fmt.Errorf("cgienv: pass_env: invalid name %q", name))
			continue
		}
		if v, ok := lookup(name); ok {
			m[name] = v
		}
	}
	for name, v := range o.SetEnv {
		if !ValidName(name) {
			errs = append(errs, fmt.Errorf("cgienv: set_env: invalid name %q", name))
			continue
		}
		if strings.IndexByte(v, 0) >= 0 {
			errs = append(errs, fmt.Errorf("cgienv: set_env: %s: value contains NUL", name))
			continue
		}
		m[name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, ok := m["PATH"]; !ok && !o.OmitPath {
		m["PATH"] = DefaultPath
	}
	b := &Builder{software: o.ServerSoftware, ownRoot: o.OwnDocumentRoot}
	if b.software == "" {
		b.software = "junction"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.software += "/" + bi.Main.Version
		}
	}
	for k, v := range m {
		b.base = append(b.base, vars.Var{Name: k, Value: v})
	}
	slices.SortFunc(b.base, func(a, c vars.Var) int { return strings.Compare(a.Name, c.Name) })
	return b, nil
}

// Env returns the environment for r and s as sorted "NAME=value" strings.
func (b *Builder) Env(r *http.Request, s Script) []string {
	vs := b.Vars(r, s)
	env := make([]string, len(vs))
	for i, kv := range vs {
		env[i] = kv.Name + "=" + kv.Value
	}
	return env
}

// Vars returns the environment for r and s as pairs sorted by name.
func (b *Builder) Vars(r *http.Request, s Script) vars.Vars {
	e := make(env, 0, len(b.base)+24+len(r.Header))
	e = append(e, b.base...)

	// 2. Derived from the request; the front server may override.
	host, port := splitHostPort(r.RemoteAddr)
	e.set("REMOTE_ADDR", host)
	e.set("REMOTE_PORT", port)
	sname, sport := splitHostPort(r.Host)
	if sport == "" {
		sport = "80"
		if r.TLS != nil {
			sport = "443"
		}
	}
	e.set("SERVER_NAME", sname)
	e.set("SERVER_PORT", sport)
	e.set("SERVER_PROTOCOL", r.Proto)
	if uri := r.RequestURI; strings.HasPrefix(uri, "/") {
		e.set("REQUEST_URI", uri)
	} else if r.URL != nil {
		// Absolute-form targets ("http://host/path") become origin-form.
		e.set("REQUEST_URI", r.URL.RequestURI())
	}
	e.set("DOCUMENT_ROOT", s.DocumentRoot)
	if r.TLS != nil {
		e.set("HTTPS", "on")
		e.set("REQUEST_SCHEME", "https")
	} else {
		e.set("REQUEST_SCHEME", "http")
	}
	e.set("REDIRECT_STATUS", "200")

	// 3. The front server's view.
	front := vars.FromContext(r.Context())
	for _, kv := range front {
		if b.ownRoot && kv.Name == "DOCUMENT_ROOT" {
			continue
		}
		if fromFrontServer(kv.Name) && strings.IndexByte(kv.Value, 0) < 0 {
			e.set(kv.Name, kv.Value)
		}
	}
	if _, ok := front.Lookup("REMOTE_HOST"); !ok {
		// RFC 3875 4.1.9: REMOTE_ADDR when the host name is not known.
		e.set("REMOTE_HOST", e.get("REMOTE_ADDR"))
	}

	// 4. Junction's decisions.
	e.set("GATEWAY_INTERFACE", "CGI/1.1")
	e.set("SERVER_SOFTWARE", b.software)
	e.set("REQUEST_METHOD", r.Method)
	e.set("SCRIPT_FILENAME", s.Filename)
	e.set("SCRIPT_NAME", s.Name)
	e.set("PATH_INFO", s.PathInfo)
	if s.PathInfo != "" {
		root := e.get("DOCUMENT_ROOT")
		pi := s.PathInfo
		if pi[0] != '/' {
			pi = "/" + pi
		}
		e.set("PATH_TRANSLATED", strings.TrimSuffix(root, "/")+pi)
	}
	q := ""
	if r.URL != nil {
		q = r.URL.RawQuery
	}
	e.set("QUERY_STRING", q)
	if r.ContentLength > 0 {
		e.set("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		e.set("CONTENT_TYPE", ct)
	}
	if r.Host != "" {
		e.set("HTTP_HOST", r.Host)
	}
	for k, vs := range r.Header {
		// Host is r.Host (above); Content-Type and Content-Length are not
		// HTTP_* variables (vars.HeaderVar).
		if name, ok := vars.HeaderVar(k); ok && name != "HTTP_HOST" {
			sep := ", "
			if name == "HTTP_COOKIE" {
				sep = "; "
			}
			e.set(name, strings.Join(vs, sep))
		}
	}
	out := vars.Vars(e)
	slices.SortFunc(out, func(a, c vars.Var) int { return strings.Compare(a.Name, c.Name) })
	// Drop values with NUL (a header can carry one through some codecs).
	return slices.DeleteFunc(out, func(kv vars.Var) bool { return strings.IndexByte(kv.Value, 0) >= 0 })
}

// env is a small ordered set; a linear scan beats a map for ~40 names.
type env []vars.Var

func (e *env) set(name, value string) {
	for i := range *e {
		if (*e)[i].Name == name {
			(*e)[i].Value = value
			return
		}
	}
	*e = append(*e, vars.Var{Name: name, Value: value})
}

func (e env) get(name string) string {
	for _, kv := range e {
		if kv.Name == name {
			return kv.Value
		}
	}
	return ""
}

func splitHostPort(s string) (host, port string) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return s, ""
	}
	return h, p
}

// ValidName reports whether name is a portable environment variable name:
// ASCII letters, digits and "_", not starting with a digit.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// decided are the names only junction sets.
var decided = map[string]bool{
	"SCRIPT_FILENAME": true, "SCRIPT_NAME": true, "PATH_INFO": true, "PATH_TRANSLATED": true,
	"REQUEST_METHOD": true, "QUERY_STRING": true, "CONTENT_LENGTH": true, "CONTENT_TYPE": true,
	"GATEWAY_INTERFACE": true, "SERVER_SOFTWARE": true,
}

// fromFrontServer reports whether the front server may set name.
func fromFrontServer(name string) bool {
	return ValidName(name) && !strings.HasPrefix(name, "HTTP_") && !decided[name] && !Denied(name)
}
