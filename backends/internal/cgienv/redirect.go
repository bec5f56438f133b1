package cgienv

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// LocalRedirect returns what a CGI-style backend returns when its script
// answered with a local redirect to location (RFC 3875 section 6.2.2):
// a *backends.LocalRedirect carrying the request to serve instead, or a
// 502 *backends.Error when location is not an absolute path. The CGI and
// FastCGI backends build it here, in one place, because only they know
// which variables describe the URL; a router just dispatches the request.
//
// The follow-up request is a GET for location with no body (no
// Content-Length, Content-Type or Transfer-Encoding header) and the
// original's other headers, host, remote address and TLS state. Its
// variables are the front server's (when it sent any) without those that
// described the original URL and body (urlVars), plus
// REQUEST_METHOD=GET, REQUEST_URI and QUERY_STRING for location, and, as
// Apache httpd sets them on an internal redirect, REDIRECT_STATUS=200,
// REDIRECT_URL (the original path) and REDIRECT_QUERY_STRING (the
// original query, when there was one).
func LocalRedirect(r *http.Request, location string) error {
	u, err := vars.ParseRequestURI(location)
	if err != nil || !strings.HasPrefix(location, "/") || strings.HasPrefix(location, "//") {
		return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("cgi: bad local redirect %q", location)}
	}
	front := vars.FromContext(r.Context())
	v := make(vars.Vars, 0, len(front)+6)
	for _, kv := range front {
		if !urlVar(kv.Name) {
			v = append(v, kv)
		}
	}
	v = append(v,
		vars.Var{Name: "REQUEST_METHOD", Value: http.MethodGet},
		vars.Var{Name: "REQUEST_URI", Value: location},
		vars.Var{Name: "QUERY_STRING", Value: u.RawQuery},
		vars.Var{Name: "REDIRECT_STATUS", Value: "200"},
		vars.Var{Name: "REDIRECT_URL", Value: r.URL.Path},
	)
	if r.URL.RawQuery != "" {
		v = append(v, vars.Var{Name: "REDIRECT_QUERY_STRING", Value: r.URL.RawQuery})
	}
	next := r.Clone(vars.NewContext(r.Context(), v))
	next.Method = http.MethodGet
	next.URL = u
	next.RequestURI = location
	next.Body = http.NoBody
	next.GetBody = nil
	next.ContentLength = 0
	next.TransferEncoding = nil
	next.Trailer = nil
	next.Form, next.PostForm, next.MultipartForm = nil, nil, nil
	next.Header.Del("Content-Length")
	next.Header.Del("Content-Type")
	next.Header.Del("Transfer-Encoding")
	return &backends.LocalRedirect{Location: location, Request: next}
}

// urlVar reports whether a front server's variable described the original
// URL or body, and so does not apply to a local redirect's target (the
// CGI backend would run the old script, and a script would see the old
// URI, for a request that is now another one).
func urlVar(name string) bool {
	switch name {
	case "SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "DOCUMENT_URI",
		"REQUEST_URI", "QUERY_STRING", "CONTENT_LENGTH", "CONTENT_TYPE", "REQUEST_METHOD",
		"REDIRECT_STATUS", "REDIRECT_URL", "REDIRECT_QUERY_STRING":
		return true
	}
	return false
}
