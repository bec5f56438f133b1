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
	bc := g.cfg.Backends[r.Backend]
	az, err := authorizer.New(b, authorizer.Options{
		Instances:        ac.Instances,
		Script:           ac.Script,
		DialTimeout:      ac.DialTimeout,
		Timeout:          ac.Timeout,
		KeepAlive:        ac.KeepAlive,
		KeepAliveTimeout: ac.KeepAliveTimeout,
		// An http pool has no environment: the variables travel as
		// Variable-NAME request headers. cgi and fastcgi backends get them
		// as CGI variables.
		Headers:  bc != nil && bc.Type == config.BackendHTTP,
		Name:     r.Prefix,
		Logger:   log.With("route", r.Prefix),
		Observer: o.m.Authorizer(r.Prefix),
	})
	if err != nil {
		return nil, fmt.Errorf("app: routes[%d].authorizer: %w", i, err)
	}
	g.authorizers = append(g.authorizers, az)
	return az, nil
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
