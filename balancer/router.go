// Package balancer decides where a request goes: routes by path prefix to a
// backend, follows CGI local redirects, and (for app pools) chooses among
// instances.
package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
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

func (rt *Router) match(path string) backends.Backend {
	for _, r := range rt.Routes {
		if strings.HasPrefix(path, r.Prefix) {
			return r.Backend
		}
	}
	return rt.Default
}

// Serve dispatches r and follows local redirects (RFC 3875 6.2.2) through
// the same routes. An error means nothing was written.
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
		next, err := redirected(r, lr.Location)
		if err != nil {
			return err
		}
		r = next
	}
}

// ServeHTTP dispatches r and writes an error page when nothing was written.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := rt.Serve(w, r); err != nil {
		backends.WriteError(w, r, err, rt.Logger)
	}
}

// pathVars are the front-server variables that describe the original URL;
// they do not apply to the redirect target.
var pathVars = []string{
	"SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED",
	"DOCUMENT_URI", "REQUEST_URI", "QUERY_STRING", "CONTENT_LENGTH", "CONTENT_TYPE",
	"REQUEST_METHOD", "REDIRECT_URL",
}

// redirected builds the GET request for a local redirect to location.
func redirected(r *http.Request, location string) (*http.Request, error) {
	u, err := url.ParseRequestURI(location)
	if err != nil || !strings.HasPrefix(location, "/") {
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("bad local redirect %q", location)}
	}
	ctx := r.Context()
	if v := vars.FromContext(ctx); v != nil {
		nv := v.Without(pathVars...)
		nv = append(nv,
			vars.Var{Name: "REQUEST_METHOD", Value: http.MethodGet},
			vars.Var{Name: "REQUEST_URI", Value: location},
			vars.Var{Name: "QUERY_STRING", Value: u.RawQuery},
			// Apache sets REDIRECT_STATUS=200 and REDIRECT_URL on internal redirects.
			vars.Var{Name: "REDIRECT_URL", Value: r.URL.Path},
		)
		ctx = vars.NewContext(ctx, nv)
	}
	next := r.Clone(ctx)
	next.Method = http.MethodGet
	next.URL = u
	next.RequestURI = location
	next.Body = http.NoBody
	next.ContentLength = 0
	next.Header.Del("Content-Length")
	next.Header.Del("Content-Type")
	next.Header.Del("Transfer-Encoding")
	return next, nil
}
