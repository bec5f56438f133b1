package app

import (
	"fmt"
	"reflect"

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

// buildCGIRoutes gives each route that overrides its cgi backend's
// settings the backend's view with them, reusing prev's where neither
// changed.
func (g *generation) buildCGIRoutes(prev *generation) error {
	g.cgiRoutes = map[string]*cgiRoute{}
	var errs []error
	for i, r := range g.cfg.Routes {
		unit := g.cgis[r.Backend]
		if unit == nil || !r.HasOverrides() {
			continue
		}
		if prev != nil {
			if old := prev.cgiRoutes[r.Prefix]; old != nil && old.unit == unit && reflect.DeepEqual(old.cfg, r) {
				g.cgiRoutes[r.Prefix] = old
				g.routes[i].Backend = namedBackend{name: r.Backend, b: old.view, timed: true}
				continue
			}
		}
		view, err := unit.backend.Route(cgi.RouteOptions{
			Timeout:       r.Timeout,
			MaxConcurrent: r.MaxConcurrent,
			Limits:        cgiLimits(r.Limits),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("app: routes[%d]: %w", i, err))
			continue
		}
		g.cgiRoutes[r.Prefix] = &cgiRoute{unit: unit, cfg: r, view: view}
		g.routes[i].Backend = namedBackend{name: r.Backend, b: view, timed: true}
	}
	return joinErrs(errs)
}
