package app

import (
	"fmt"
	"reflect"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/cgi"
	"github.com/junction-gw/junction/config"
)

// cgiRoute is a route with its own settings on a cgi backend: the
// backend's view built from them, kept across reloads while neither the
// backend nor the route changes (so that a route's max_concurrent holds
// for the scripts already running, too).
type cgiRoute struct {
	unit *cgiUnit
	cfg  config.Route
	view *cgi.Route
}

// cgiLimits maps the file's limits onto the cgi backend's.
func cgiLimits(l *config.Limits) cgi.Limits {
	if l == nil {
		return cgi.Limits{}
	}
	return cgi.Limits{
		CPU:       l.CPU,
		Memory:    int64(l.Memory),
		Processes: l.Processes,
		OpenFiles: l.OpenFiles,
		FileSize:  int64(l.FileSize),
		Nice:      l.Nice,
	}
}

// routeBackend returns the backend route i (r) serves with: its cgi
// backend's view with the route's own settings when the route sets any
// (prev's, when neither the backend nor the route changed), else the
// backend itself.
func (g *generation) routeBackend(prev *generation, i int, r config.Route) (backends.Backend, error) {
	unit := g.cgis[r.Backend]
	if unit == nil || !r.HasOverrides() {
		return g.backends[r.Backend], nil
	}
	if prev != nil {
		if old := prev.cgiRoutes[r.Prefix]; old != nil && old.unit == unit && reflect.DeepEqual(old.cfg, r) {
			g.cgiRoutes[r.Prefix] = old
			return namedBackend{name: r.Backend, b: old.view, timed: true}, nil
		}
	}
	view, err := unit.backend.Route(cgi.RouteOptions{
		Timeout:       r.Timeout,
		MaxConcurrent: r.MaxConcurrent,
		Limits:        cgiLimits(r.Limits),
	})
	if err != nil {
		return nil, fmt.Errorf("app: routes[%d]: %w", i, err)
	}
	g.cgiRoutes[r.Prefix] = &cgiRoute{unit: unit, cfg: r, view: view}
	return namedBackend{name: r.Backend, b: view, timed: true}, nil
}
