// Package vars carries the CGI-style variables a front server sent with a
// request (SCGI headers, FastCGI PARAMS, AJP attributes rendered as
// meta-variables) and turns them into junction's common request model, an
// *http.Request.
//
// The variables ride along in the request context, so a backend can still
// see exactly what nginx, Apache or lighttpd said: SCRIPT_FILENAME,
// DOCUMENT_ROOT, HTTPS, custom scgi_param / fastcgi_param values. Backends
// must treat them as advice from the front server, never as authority over
// which file runs (see backends/cgi for the rules).
package vars

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Var is one name/value pair as the front server sent it.
type Var struct {
	Name, Value string
}

// Vars is the ordered list of variables a front server sent. Names are
// unique except for HTTP_* names, which a front server repeats when a
// request header was repeated (nginx does).
type Vars []Var

// Lookup returns the first value of name and whether it was present.
func (v Vars) Lookup(name string) (string, bool) {
	for _, kv := range v {
		if kv.Name == name {
			return kv.Value, true
		}
	}
	return "", false
}

// Get returns the first value of name, or "".
func (v Vars) Get(name string) string {
	s, _ := v.Lookup(name)
	return s
}

// Without returns a copy of v without the named variables.
func (v Vars) Without(names ...string) Vars {
	out := make(Vars, 0, len(v))
next:
	for _, kv := range v {
		for _, n := range names {
			if kv.Name == n {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

type ctxKey struct{}

// varsCtx carries Vars in one allocation (context.WithValue would need a
// second one to box the slice). With build set, the variables are made
// the first time they are asked for.
type varsCtx struct {
	context.Context
	build func() Vars
	mu    sync.Mutex // guards v and built while build is set
	built bool
	v     Vars
}

// vars returns the variables, building them on the first call.
func (c *varsCtx) vars() Vars {
	if c.build == nil {
		return c.v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.built {
		c.v, c.built = c.build(), true
	}
	return c.v
}

func (c *varsCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// NewContext returns a copy of ctx carrying v.
func NewContext(ctx context.Context, v Vars) context.Context {
	return &varsCtx{Context: ctx, v: v}
}

// NewLazyContext returns a copy of ctx whose variables build makes, once,
// when FromContext first asks. A front end whose requests are not
// variables on the wire (AJP13) renders them only for the backends that
// read them (CGI, FastCGI), not for every proxied request.
func NewLazyContext(ctx context.Context, build func() Vars) context.Context {
	return &varsCtx{Context: ctx, build: build}
}

// FromContext returns the variables stored in ctx, or nil when the request
// did not come through a CGI-style front end (plain HTTP).
func FromContext(ctx context.Context) Vars {
	if c, ok := ctx.Value(ctxKey{}).(*varsCtx); ok {
		return c.vars()
	}
	return nil
}

// ErrDuplicate is wrapped by Request when a non-HTTP_* variable repeats.
var ErrDuplicate = errors.New("vars: repeated variable")

// Check reports a repeated CGI variable. Repeated HTTP_* names are allowed:
// they are how nginx forwards a repeated request header.
func (v Vars) Check() error {
	if i := v.duplicate(); i >= 0 {
		return fmt.Errorf("%w %s", ErrDuplicate, v[i].Name)
	}
	return nil
}

// duplicate returns the index of the first non-HTTP_* variable whose name
// appeared before, or -1. A front server sends a few dozen variables, so
// the quadratic scan is cheaper than a map and allocates nothing.
func (v Vars) duplicate() int {
	for i := 1; i < len(v); i++ {
		name := v[i].Name
		if strings.HasPrefix(name, "HTTP_") {
			continue
		}
		if name == "" {
			for j := 0; j < i; j++ {
				if v[j].Name == "" {
					return i
				}
			}
			continue
		}
		// Names of one length mostly differ in their last byte
		// (SERVER_NAME, SERVER_PORT): checking it first skips the
		// comparison call for nearly every pair.
		last := name[len(name)-1]
		for j := 0; j < i; j++ {
			if n := v[j].Name; len(n) == len(name) && n[len(n)-1] == last && n == name {
				return i
			}
		}
	}
	return -1
}

// LastWins returns v with each repeated non-HTTP_* variable reduced to its
// last occurrence, and whether anything was dropped. FastCGI front ends use
// it: nginx sends SCRIPT_FILENAME twice when a site includes fastcgi.conf
// and also sets its own fastcgi_param, and php-fpm takes the last value.
// SCGI forbids repeats, so its codec never calls this.
func (v Vars) LastWins() (Vars, bool) {
	if v.duplicate() < 0 {
		return v, false
	}
	out := make(Vars, 0, len(v))
next:
	for i, kv := range v {
		if !strings.HasPrefix(kv.Name, "HTTP_") {
			for _, later := range v[i+1:] {
				if later.Name == kv.Name {
					continue next
				}
			}
		}
		out = append(out, kv)
	}
	return out, true
}

// Request builds the request the variables describe, in the manner of
// net/http/cgi.RequestFromMap, with ctx (carrying v) as its context and
// body as its body. CONTENT_LENGTH is not checked against the body here:
// the codec frames the body and knows its length.
//
// It runs once per request on every CGI-style front end, so it keeps
// allocations few: header values share one backing array and common
// header names come from a table.
func Request(ctx context.Context, v Vars, body io.ReadCloser) (*http.Request, error) {
	if err := v.Check(); err != nil {
		return nil, err
	}
	var method, proto, host, serverName, serverPort, uri, cl, ct, remoteAddr, remotePort, https string
	headers := 0
	for _, kv := range v {
		switch kv.Name {
		case "REQUEST_METHOD":
			method = kv.Value
		case "SERVER_PROTOCOL":
			proto = kv.Value
		case "HTTP_HOST":
			if host == "" {
				host = kv.Value
			}
		case "SERVER_NAME":
			serverName = kv.Value
		case "SERVER_PORT":
			serverPort = kv.Value
		case "REQUEST_URI":
			uri = kv.Value
		case "CONTENT_LENGTH":
			cl = kv.Value
		case "CONTENT_TYPE":
			ct = kv.Value
		case "REMOTE_ADDR":
			remoteAddr = kv.Value
		case "REMOTE_PORT":
			remotePort = kv.Value
		case "HTTPS":
			https = kv.Value
		default:
			if len(kv.Name) > len("HTTP_") && strings.HasPrefix(kv.Name, "HTTP_") {
				headers++
			}
		}
	}
	if method == "" {
		return nil, errors.New("vars: missing REQUEST_METHOD")
	}
	r := http.Request{
		Method:     method,
		Proto:      "HTTP/1.0",
		ProtoMajor: 1,
		ProtoMinor: 0,
		Header:     make(http.Header, headers+1),
		Body:       body,
	}
	if proto != "" {
		if major, minor, ok := http.ParseHTTPVersion(proto); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = proto, major, minor
		}
	}
	values := make([]string, 0, headers+1) // one backing array for all single values
	for _, kv := range v {
		name, ok := strings.CutPrefix(kv.Name, "HTTP_")
		if !ok || name == "" || name == "HOST" {
			continue
		}
		key := headerKey(name)
		if prev, ok := r.Header[key]; ok {
			if key == "Cookie" {
				// RFC 6265 5.4: several Cookie fields are one list.
				prev[0] += "; " + kv.Value
			} else {
				r.Header[key] = append(prev, kv.Value)
			}
			continue
		}
		values = append(values, kv.Value)
		n := len(values)
		r.Header[key] = values[n-1 : n : n]
	}
	if ct != "" {
		values = append(values, ct)
		n := len(values)
		r.Header["Content-Type"] = values[n-1 : n : n]
	}
	if cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("vars: bad CONTENT_LENGTH %q", cl)
		}
		r.ContentLength = n
	}
	if r.ContentLength == 0 && body != nil {
		r.Body = http.NoBody
	}
	r.Host = host
	if r.Host == "" {
		r.Host = serverName
		if serverPort != "" && r.Host != "" && serverPort != "80" && serverPort != "443" {
			r.Host = net.JoinHostPort(r.Host, serverPort)
		}
	}
	if uri == "" {
		uri = (&url.URL{Path: v.Get("SCRIPT_NAME") + v.Get("PATH_INFO")}).EscapedPath()
		if q := v.Get("QUERY_STRING"); q != "" {
			uri += "?" + q
		}
	}
	u, err := ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("vars: bad REQUEST_URI %q: %w", uri, err)
	}
	r.URL = u
	r.RequestURI = uri
	if remoteAddr != "" {
		if remotePort == "" {
			remotePort = "0"
		}
		r.RemoteAddr = net.JoinHostPort(remoteAddr, remotePort)
	}
	if strings.EqualFold(https, "on") || https == "1" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	return r.WithContext(NewContext(ctx, v)), nil
}

// ParseRequestURI is url.ParseRequestURI with a shortcut for the usual
// request target: a path of characters that never need escaping and an
// optional query without '#' or control characters. Such a URI parses to
// just its Path and RawQuery (RawPath stays empty, the path being its own
// escaped form); anything else goes to url.ParseRequestURI.
func ParseRequestURI(uri string) (*url.URL, error) {
	path, query, hasQuery := strings.Cut(uri, "?")
	if path == "" || path[0] != '/' || !plainPath(path) || !plainQuery(query) {
		return url.ParseRequestURI(uri)
	}
	u := &url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" {
		u.ForceQuery = true
	}
	return u, nil
}

// plainPath reports whether p holds only characters that url's path
// escaping leaves alone (RFC 3986 unreserved, and the sub-delims and
// separators it keeps).
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/$&+,:;=@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// plainQuery reports whether q has no '#', '?' (ParseRequestURI treats a
// lone trailing '?' specially), control character, space or non-ASCII byte.
func plainQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '?' {
			return false
		}
	}
	return true
}

// commonHeaders maps the CGI form of frequent request headers to their
// canonical names, so the usual request needs no allocation per name.
var commonHeaders = func() map[string]string {
	m := make(map[string]string)
	for _, h := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Dnt",
		"Forwarded", "If-Modified-Since", "If-None-Match", "Origin", "Pragma", "Priority", "Referer",
		"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
		"Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Upgrade-Insecure-Requests", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Requested-With",
	} {
		m[strings.ToUpper(strings.ReplaceAll(h, "-", "_"))] = h
	}
	return m
}()

// headerKey turns the part of a CGI name after HTTP_ ("X_FORWARDED_FOR")
// into a canonical header name ("X-Forwarded-For").
func headerKey(name string) string {
	if k, ok := commonHeaders[name]; ok {
		return k
	}
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case c == '_' || c == '-':
			b[i] = '-'
			upper = true
			continue
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = false
	}
	return string(b)
}
