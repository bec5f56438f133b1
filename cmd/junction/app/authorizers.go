package app

import (
	"fmt"
	"log/slog"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/authorizer"
	"github.com/junction-gw/junction/config"
)

// guard wraps the backend of route i in its authorizer, when the route
// names one. The authorizer is new in every generation (it holds only
// idle connections); the generation it belonged to closes it when it is
// replaced.
func (g *generation) guard(i int, r config.Route, b backends.Backend, log *slog.Logger, o *ops) (backends.Backend, error) {
	ac := r.Authorizer
	if ac == nil || b == nil {
		return b, nil
	}
	headers, both := variableForms(g.cfg, r)
	az, err := authorizer.New(b, authorizer.Options{
		Instances:        ac.Instances,
		Script:           ac.Script,
		DialTimeout:      ac.DialTimeout,
		Timeout:          ac.Timeout,
		KeepAlive:        ac.KeepAlive,
		KeepAliveTimeout: ac.KeepAliveTimeout,
		Headers:          headers,
		Both:             both,
		Name:             r.Prefix,
		Logger:           log.With("route", r.Prefix),
		Observer:         o.m.Authorizer(r.Prefix),
		Counts:           o.authzCounts(r.Prefix),
	})
	if err != nil {
		return nil, fmt.Errorf("app: routes[%d].authorizer: %w", i, err)
	}
	g.authorizers[i] = az
	return az, nil
}

// authzCounts returns the outcome counts of the authorizer of the route
// with prefix route: one per prefix for the App's life, so that the status
// page counts since start across reloads, which build authorizers anew
// (as the metrics' counters, labelled by prefix, do).
func (p *ops) authzCounts(route string) *authorizer.Counts {
	p.authzMu.Lock()
	defer p.authzMu.Unlock()
	c := p.authz[route]
	if c == nil {
		if p.authz == nil {
			p.authz = map[string]*authorizer.Counts{}
		}
		c = new(authorizer.Counts)
		p.authz[route] = c
	}
	return c
}

// variableForms says how route r's authorizer passes its variables on. An
// http pool has no environment: they travel as Variable-NAME request
// headers; cgi and fastcgi backends get them as CGI variables. A shadow
// backend of the other kind gets a copy of the request the route's backend
// got, so then both forms are set.
func variableForms(cfg *config.Config, r config.Route) (headers, both bool) {
	isHTTP := func(name string) bool {
		bc := cfg.Backends[name]
		return bc != nil && bc.Type == config.BackendHTTP
	}
	headers = isHTTP(r.Backend)
	both = r.Shadow != nil && isHTTP(r.Shadow.Backend) != headers
	return headers, both
}

// closeAuthorizers closes the kept connections of g's authorizers.
// Requests still running through them finish; their connections close
// when they end.
func (g *generation) closeAuthorizers() {
	if g == nil {
		return
	}
	for _, az := range g.authorizers {
		az.Close()
	}
}
