package ajp13

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/junction-gw/junction/vars"
)

// Variables junction adds beyond what the web server sent.
const (
	// VarRoute is the variable holding the listener's own route (Server.Route).
	VarRoute = "JUNCTION_ROUTE"
	// VarSessionRoute holds the route attribute the web server sent: the
	// route mod_proxy_balancer or mod_jk picked from the session id.
	VarSessionRoute = "AJP_SESSION_ROUTE"
)

// reqAttributeVars is the allow-list of req_attribute names that become
// variables. Every other name (javax.servlet.include.*, names set with
// SetEnv AJP_*, anything else) is dropped: attributes must never choose a
// file or override what junction decides (Ghostcat, CVE-2020-1938).
var reqAttributeVars = map[string]string{
	"AJP_REMOTE_PORT":  "REMOTE_PORT",  // mod_proxy_ajp, mod_jk
	"AJP_LOCAL_ADDR":   "SERVER_ADDR",  // mod_proxy_ajp 2.4.42+, mod_jk
	"AJP_SSL_PROTOCOL": "SSL_PROTOCOL", // mod_jk
}

// lazyVars is the vars.Source of a forward request: its CGI-style
// variables, rendered only when a backend asks (vars.NewLazyContext).
type lazyVars struct {
	f     *forwardRequest
	route string // the listener's Route
	uri   string // f.requestURI(), made once
}

// Vars renders all the variables.
func (l *lazyVars) Vars() vars.Vars {
	v := make(vars.Vars, 0, 12+len(l.f.attrs))
	l.render(true, func(name, value string) { v = append(v, vars.Var{Name: name, Value: value}) })
	return v
}

// Lookup renders the one variable asked for (REMOTE_USER for the access
// log), without allocating unless it is a number.
func (l *lazyVars) Lookup(name string) (value string, ok bool) {
	numbers := name == "SERVER_PORT" || name == "SSL_CIPHER_USEKEYSIZE"
	l.render(numbers, func(n, v string) {
		if !ok && n == name {
			value, ok = v, true
		}
	})
	return value, ok
}

// check applies vars.CheckVar to every value Vars renders, so a value
// that breaks the request rules is refused (400) before any handler runs,
// as the other codecs refuse it when they build the request.
func (l *lazyVars) check() error {
	var err error
	l.render(false, func(name, value string) {
		if err == nil {
			err = vars.CheckVar(name, value)
		}
	})
	return err
}

// render passes the request's variables to add in order. Only the fixed
// fields, allow-listed attributes and the body headers are rendered: the
// names SCRIPT_NAME, SCRIPT_FILENAME, PATH_INFO, PATH_TRANSLATED and
// DOCUMENT_ROOT are never produced, and neither are HTTP_* variables
// (backends make those from r.Header, with vars.HeaderVar). With numbers
// false, SERVER_PORT and SSL_CIPHER_USEKEYSIZE are left out (they need
// formatting and no check).
func (l *lazyVars) render(numbers bool, add func(name, value string)) {
	f := l.f
	query := ""
	if a, ok := f.attr(attrQueryString); ok {
		query = a.value
	}
	add("REQUEST_METHOD", f.method)
	add("SERVER_PROTOCOL", f.protocol)
	add("REQUEST_URI", l.uri)
	add("QUERY_STRING", query)
	add("REMOTE_ADDR", f.remoteAddr)
	if f.remoteHost != "" {
		add("REMOTE_HOST", f.remoteHost)
	}
	add("SERVER_NAME", f.serverName)
	if numbers {
		add("SERVER_PORT", strconv.Itoa(int(f.serverPort)))
	}
	if f.isSSL {
		add("HTTPS", "on")
	}
	// Each CGI name appears once: the first occurrence wins. A few flags
	// instead of a map keep this allocation-free.
	var seen struct{ remotePort, serverAddr, sslProtocol, contentType, contentLength bool }
	once := func(name string) bool {
		var p *bool
		switch name {
		case "REMOTE_PORT":
			p = &seen.remotePort
		case "SERVER_ADDR":
			p = &seen.serverAddr
		case "SSL_PROTOCOL":
			p = &seen.sslProtocol
		case "CONTENT_TYPE":
			p = &seen.contentType
		case "CONTENT_LENGTH":
			p = &seen.contentLength
		}
		if *p {
			return false
		}
		*p = true
		return true
	}
	for _, a := range f.attrs {
		switch a.code {
		case attrRemoteUser:
			add("REMOTE_USER", a.value)
		case attrAuthType:
			add("AUTH_TYPE", a.value)
		case attrRoute:
			add(VarSessionRoute, a.value)
		case attrSSLCert:
			add("SSL_CLIENT_CERT", a.value)
		case attrSSLCipher:
			add("SSL_CIPHER", a.value)
		case attrSSLSession:
			add("SSL_SESSION_ID", a.value)
		case attrSSLKeySize:
			if numbers {
				add("SSL_CIPHER_USEKEYSIZE", strconv.Itoa(int(a.keySize)))
			}
		case attrReqAttribute:
			name, ok := reqAttributeVars[a.name]
			if !ok || name == "REMOTE_PORT" && !validPort(a.value) {
				continue
			}
			if once(name) {
				add(name, a.value)
			}
		}
	}
	if l.route != "" {
		add(VarRoute, l.route)
	}
	for _, h := range f.headers {
		// Only the first: a repeat is refused later (Content-Length) or
		// ignored (Content-Type), and CGI names must be unique.
		switch {
		case strings.EqualFold(h.name, "Content-Type"):
			if once("CONTENT_TYPE") {
				add("CONTENT_TYPE", h.value)
			}
		case strings.EqualFold(h.name, "Content-Length"):
			if once("CONTENT_LENGTH") {
				add("CONTENT_LENGTH", h.value)
			}
		}
	}
}

// validPort reports whether s is a decimal TCP port.
func validPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// requestURI is the raw req_uri as sent plus "?query" when the web server
// sent a query string.
func (f *forwardRequest) requestURI() string {
	if a, ok := f.attr(attrQueryString); ok && a.value != "" {
		return f.uri + "?" + a.value
	}
	return f.uri
}

// errBadRequest is wrapped by httpRequest for a request that was framed
// correctly but cannot be served (the codec answers 400 and closes).
var errBadRequest = errors.New("bad request")

// httpRequest builds the *http.Request for f. The body is attached by the
// caller. Headers keep the names the web server sent (unlike the HTTP_*
// variables, which cannot tell "-" from "_").
//
// The request is checked as every codec checks it (vars.Validate, and
// vars.CheckVar for each variable it will render); a violation is an
// errBadRequest, answered 400. The request's CGI-style variables (lazyVars,
// with route) are made only when a backend asks for them
// (vars.FromContext): the HTTP backend never does.
func (f *forwardRequest) httpRequest(ctx context.Context, route string) (*http.Request, error) {
	major, minor, ok := http.ParseHTTPVersion(f.protocol)
	if !ok {
		return nil, fmt.Errorf("ajp13: protocol %q: %w", f.protocol, errBadRequest)
	}
	uri := f.requestURI()
	var u *url.URL
	var err error
	if f.method == "OPTIONS" && f.uri == "*" {
		u = &url.URL{Path: "*"}
	} else if u, err = vars.ParseRequestURI(uri); err != nil || !strings.HasPrefix(f.uri, "/") {
		return nil, fmt.Errorf("ajp13: req_uri %q: %w", uri, errBadRequest)
	}
	// A value, not a pointer: WithContext below makes the one heap copy.
	r := http.Request{
		Method:     f.method,
		URL:        u,
		Proto:      f.protocol,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     make(http.Header, len(f.headers)),
		RequestURI: uri,
		Body:       http.NoBody,
	}
	values := make([]string, len(f.headers)) // one backing array for single values
	for i, h := range f.headers {
		key := h.name
		if h.code == 0 {
			key = textproto.CanonicalMIMEHeaderKey(h.name)
		}
		if prev, ok := r.Header[key]; ok {
			r.Header[key] = append(prev, h.value)
			continue
		}
		values[i] = h.value
		r.Header[key] = values[i : i+1 : i+1]
	}
	r.Host = r.Header.Get("Host")
	r.Header.Del("Host")
	if r.Host == "" && f.serverName != "" {
		r.Host = f.serverName
		if p := f.serverPort; p != 0 && p != 80 && p != 443 {
			r.Host = net.JoinHostPort(f.serverName, strconv.Itoa(int(p)))
		}
	}
	if err := setBodyLength(&r); err != nil {
		return nil, err
	}
	port := "0"
	if p := f.remotePort(); p != "" {
		port = p
	}
	if f.remoteAddr != "" {
		r.RemoteAddr = net.JoinHostPort(f.remoteAddr, port)
	}
	if f.isSSL {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	lv := &lazyVars{f: f, route: route, uri: uri}
	if err := vars.Validate(&r, nil); err != nil {
		return nil, fmt.Errorf("ajp13: %w: %w", errBadRequest, err)
	}
	if err := lv.check(); err != nil {
		return nil, fmt.Errorf("ajp13: %w: %w", errBadRequest, err)
	}
	return r.WithContext(vars.NewLazyContext(ctx, lv)), nil
}

// remotePort is the REMOTE_PORT the variables render: the first
// allow-listed attribute naming it whose value is a valid port, or "".
func (f *forwardRequest) remotePort() string {
	for _, a := range f.attrs {
		if a.code == attrReqAttribute && reqAttributeVars[a.name] == "REMOTE_PORT" && validPort(a.value) {
			return a.value
		}
	}
	return ""
}

// setBodyLength applies the request body policy: a Content-Length gives
// the exact length; Transfer-Encoding: chunked (the web server already
// decoded the chunks) gives ContentLength -1 and a streamed body; neither
// means no body.
func setBodyLength(r *http.Request) error {
	te := r.Header.Values("Transfer-Encoding")
	cls := r.Header.Values("Content-Length")
	if len(te) > 0 {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") || len(cls) > 0 {
			return fmt.Errorf("ajp13: transfer-encoding %q with content-length %q: %w", te, cls, errBadRequest)
		}
		r.Header.Del("Transfer-Encoding")
		r.TransferEncoding = []string{"chunked"}
		r.ContentLength = -1
		return nil
	}
	if len(cls) == 0 {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(cls[0]), 10, 64)
	if len(cls) != 1 || err != nil || n < 0 {
		return fmt.Errorf("ajp13: content-length %q: %w", cls, errBadRequest)
	}
	r.ContentLength = n
	return nil
}
