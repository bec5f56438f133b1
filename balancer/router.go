// Package balancer decides where a request goes: routes by path prefix to a
// backend, follows CGI local redirects, and (for app pools) chooses among
// instances.
package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/junction-gw/junction/backends"
)

// Route sends requests whose path starts with Prefix to Backend.
type Route struct {
	Prefix  string
	Backend backends.Backend
}

// Router dispatches requests to the first matching route, else to Default.
// It implements both backends.Backend and http.Handler.
type Router struct {
	// Routes are tried in order; the first prefix match wins.
	Routes []Route
	// Default serves requests no route matches. Nil means 404.
	Default backends.Backend
	// MaxRedirects bounds CGI local redirects per request (default 10,
	// Apache's LimitInternalRecursion).
	MaxRedirects int
	// Logger receives one line per failed request.
	Logger *slog.Logger
}

// ErrTooManyRedirects is returned when local redirects loop.
var ErrTooManyRedirects = errors.New("balancer: too many local redirects")

func (rt *Router) match(p string) backends.Backend {
	p = routePath(p)
	for _, r := range rt.Routes {
		if strings.HasPrefix(p, r.Prefix) {
			return r.Backend
		}
	}
	return rt.Default
}

// routePath is the path routes are matched against: p with its empty,
// "." and ".." segments resolved (a trailing slash kept), as nginx
// matches locations against its normalized URI. Backends see such paths
// resolved too (nginx's DOCUMENT_URI and SCRIPT_NAME; the CGI backend
// skips empty and "." segments), so "/cgi-bin//reports/x.cgi" must not
// pass by the route of "/cgi-bin/reports/" (its limits, timeout,
// max_concurrent, authorizer) to a backend that runs reports/x.cgi.
func routePath(p string) string {
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// A Router is a Backend (a route may lead to another router) and a Handler.
var (
	_ backends.Backend = (*Router)(nil)
	_ http.Handler     = (*Router)(nil)
)

// Serve dispatches r and follows local redirects (RFC 3875 6.2.2) through
// the same routes: the backend that returned the *backends.LocalRedirect
// built its request (a GET for the new path, with the CGI variables made
// for it), and Serve dispatches that request as it is. An error means
// nothing was written.
func (rt *Router) Serve(w http.ResponseWriter, r *http.Request) error {
	limit := rt.MaxRedirects
	if limit <= 0 {
		limit = 10
	}
	for depth := 0; ; depth++ {
		b := rt.match(r.URL.Path)
		if b == nil {
			return &backends.Error{Status: http.StatusNotFound, Err: fmt.Errorf("no route for %q", r.URL.Path)}
		}
		err := b.Serve(w, r)
		var lr *backends.LocalRedirect
		if !errors.As(err, &lr) {
			return err
		}
		if depth >= limit {
			return &backends.Error{Status: http.StatusInternalServerError, Err: fmt.Errorf("%w (%d) at %q", ErrTooManyRedirects, limit, lr.Location)}
		}
		if lr.Request == nil || lr.Request.URL == nil {
			return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("balancer: local redirect to %q without a request", lr.Location)}
		}
		r = lr.Request
	}
}

// ServeHTTP dispatches r and writes an error page when nothing was written.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := rt.Serve(w, r); err != nil {
		backends.WriteError(w, r, err, rt.Logger)
	}
}
