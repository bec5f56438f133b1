package app

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/junction-gw/junction/backends/cgi"
)

// TestCGIRouteOverrides: a route that overrides its cgi backend's
// settings gets the backend's view with them; a reload that changes
// neither keeps the view (and so the route's max_concurrent count), one
// that changes the route builds a new view.
func TestCGIRouteOverrides(t *testing.T) {
	root := t.TempDir()
	conf := func(routeMax int) string {
		return fmt.Sprintf(`
listeners:
  - {protocol: http, address: "127.0.0.1:0", backend: scripts}
routes:
  - {prefix: /cgi-bin/slow/, backend: scripts, timeout: 5m, max_concurrent: %d, limits: {cpu: 60s}}
  - {prefix: /cgi-bin/, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, limits: {cpu: 10s}}
`, routeMax, root)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := parse(t, conf(2))
	o, err := newOps(cfg, Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	g, _, _, err := buildGeneration(cfg, nil, log, o)
	if err != nil {
		t.Fatal(err)
	}
	view := func(g *generation, i int) any { return g.routes[i].Backend.(namedBackend).b }
	if _, ok := view(g, 0).(*cgi.Route); !ok {
		t.Fatalf("route 0 backend %T, want *cgi.Route", view(g, 0))
	}
	if b, ok := view(g, 1).(*cgi.Backend); !ok || b != g.cgis["scripts"].backend {
		t.Errorf("route 1 backend %T, want the backend itself", view(g, 1))
	}

	same, _, _, err := buildGeneration(parse(t, conf(2)), g, log, o)
	if err != nil {
		t.Fatal(err)
	}
	if view(same, 0) != view(g, 0) {
		t.Error("an unchanged route got a new view on reload")
	}
	changed, _, _, err := buildGeneration(parse(t, conf(3)), same, log, o)
	if err != nil {
		t.Fatal(err)
	}
	if view(changed, 0) == view(same, 0) {
		t.Error("a changed route kept its old view")
	}
}
