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
)

// errNoMethod is the cause of Request's error for variables without
// REQUEST_METHOD.
var errNoMethod = errors.New("no REQUEST_METHOD")

// Request builds the request the variables describe, in the manner of
// net/http/cgi.RequestFromMap, with ctx (carrying v) as its context and
// body as its body. CONTENT_LENGTH is not checked against the body here:
// the codec frames the body and knows its length.
//
// The request is checked as Validate checks it; any error is an
// *InvalidError, which the codec answers 400 Bad Request. A repeated
// non-HTTP_* variable wraps ErrDuplicate.
//
// It runs once per request on every CGI-style front end, so it keeps
// allocations few: header values share one backing array and common
// header names come from a table.
func Request(ctx context.Context, v Vars, body io.ReadCloser) (*http.Request, error) {
	if i := v.duplicate(); i >= 0 {
		return nil, &InvalidError{Part: "variable", Name: v[i].Name, Err: ErrDuplicate}
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
		return nil, &InvalidError{Part: "method", Err: errNoMethod}
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
			return nil, &InvalidError{Part: "variable", Name: "CONTENT_LENGTH", Err: fmt.Errorf("%.32q is not a length", cl)}
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
	source := "REQUEST_URI"
	if uri == "" {
		source = "SCRIPT_NAME"
		uri = (&url.URL{Path: v.Get("SCRIPT_NAME") + v.Get("PATH_INFO")}).EscapedPath()
		if q := v.Get("QUERY_STRING"); q != "" {
			uri += "?" + q
		}
	}
	u, err := ParseRequestURI(uri)
	if err != nil {
		return nil, &InvalidError{Part: "request target", Name: source, Err: err}
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
	if err := validate(&r, v, false); err != nil {
		return nil, err
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
