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
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
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

// NewContext returns a copy of ctx carrying v.
func NewContext(ctx context.Context, v Vars) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// FromContext returns the variables stored in ctx, or nil when the request
// did not come through a CGI-style front end (plain HTTP).
func FromContext(ctx context.Context) Vars {
	v, _ := ctx.Value(ctxKey{}).(Vars)
	return v
}

// ErrDuplicate is wrapped by Request when a non-HTTP_* variable repeats.
var ErrDuplicate = errors.New("vars: repeated variable")

// Check reports a repeated CGI variable. Repeated HTTP_* names are allowed:
// they are how nginx forwards a repeated request header.
func (v Vars) Check() error {
	seen := make(map[string]struct{}, len(v))
	for _, kv := range v {
		if strings.HasPrefix(kv.Name, "HTTP_") {
			continue
		}
		if _, dup := seen[kv.Name]; dup {
			return fmt.Errorf("%w %s", ErrDuplicate, kv.Name)
		}
		seen[kv.Name] = struct{}{}
	}
	return nil
}

// LastWins returns v with each repeated non-HTTP_* variable reduced to its
// last occurrence, and whether anything was dropped. FastCGI front ends use
// it: nginx sends SCRIPT_FILENAME twice when a site includes fastcgi.conf
// and also sets its own fastcgi_param, and php-fpm takes the last value.
// SCGI forbids repeats, so its codec never calls this.
func (v Vars) LastWins() (Vars, bool) {
	last := make(map[string]int, len(v))
	for i, kv := range v {
		if !strings.HasPrefix(kv.Name, "HTTP_") {
			last[kv.Name] = i
		}
	}
	if len(last) == len(v)-countHTTP(v) {
		return v, false
	}
	out := make(Vars, 0, len(last))
	for i, kv := range v {
		if j, ok := last[kv.Name]; ok && j != i {
			continue
		}
		out = append(out, kv)
	}
	return out, true
}

func countHTTP(v Vars) int {
	n := 0
	for _, kv := range v {
		if strings.HasPrefix(kv.Name, "HTTP_") {
			n++
		}
	}
	return n
}

// Request builds the request the variables describe, in the manner of
// net/http/cgi.RequestFromMap, with ctx (carrying v) as its context and
// body as its body. CONTENT_LENGTH is not checked against the body here:
// the codec frames the body and knows its length.
func Request(ctx context.Context, v Vars, body io.ReadCloser) (*http.Request, error) {
	if err := v.Check(); err != nil {
		return nil, err
	}
	method := v.Get("REQUEST_METHOD")
	if method == "" {
		return nil, errors.New("vars: missing REQUEST_METHOD")
	}
	r := &http.Request{
		Method:     method,
		Proto:      "HTTP/1.0",
		ProtoMajor: 1,
		Header:     make(http.Header),
		Body:       body,
	}
	if p := v.Get("SERVER_PROTOCOL"); p != "" {
		if major, minor, ok := http.ParseHTTPVersion(p); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = p, major, minor
		}
	}
	for _, kv := range v {
		name, ok := strings.CutPrefix(kv.Name, "HTTP_")
		if !ok || name == "" {
			continue
		}
		key := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-"))
		if key == "Cookie" && len(r.Header[key]) > 0 {
			// RFC 9113 8.2.3 / RFC 6265: several Cookie fields are one list.
			r.Header[key][0] += "; " + kv.Value
			continue
		}
		r.Header[key] = append(r.Header[key], kv.Value)
	}
	if ct := v.Get("CONTENT_TYPE"); ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if cl := v.Get("CONTENT_LENGTH"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("vars: bad CONTENT_LENGTH %q", cl)
		}
		r.ContentLength = n
	}
	if r.ContentLength == 0 && body != nil {
		r.Body = http.NoBody
	}
	r.Host = r.Header.Get("Host")
	r.Header.Del("Host")
	if r.Host == "" {
		r.Host = v.Get("SERVER_NAME")
		if port := v.Get("SERVER_PORT"); port != "" && r.Host != "" && port != "80" && port != "443" {
			r.Host = net.JoinHostPort(r.Host, port)
		}
	}
	uri := v.Get("REQUEST_URI")
	if uri == "" {
		uri = (&url.URL{Path: v.Get("SCRIPT_NAME") + v.Get("PATH_INFO")}).EscapedPath()
		if q := v.Get("QUERY_STRING"); q != "" {
			uri += "?" + q
		}
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("vars: bad REQUEST_URI %q: %w", uri, err)
	}
	r.URL = u
	r.RequestURI = uri
	if addr := v.Get("REMOTE_ADDR"); addr != "" {
		port := v.Get("REMOTE_PORT")
		if port == "" {
			port = "0"
		}
		r.RemoteAddr = net.JoinHostPort(addr, port)
	}
	if h := v.Get("HTTPS"); strings.EqualFold(h, "on") || h == "1" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	return r.WithContext(NewContext(ctx, v)), nil
}
