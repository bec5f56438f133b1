package app

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-gw/junction/cmd/junction/internal/status"
)

// TestAuthorizerRouteAndReload checks the wiring: a route with an
// authorizer asks it before its backend (here one that cannot be reached:
// 502, the backend untouched), a route without one does not, and a reload
// that removes or adds the authorizer takes effect.
func TestAuthorizerRouteAndReload(t *testing.T) {
	app1 := named(t, "app1")
	down := "unix:" + filepath.Join(t.TempDir(), "nobody.sock")
	guarded := fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: "127.0.0.1:0"}
routes:
  - {prefix: /private/, backend: app, authorizer: {instances: [%q], script: /srv/auth/check.php}}
  - {prefix: /, backend: app}
backends:
  app: {type: http, instances: [%q]}
`, down, app1)
	open := fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: "127.0.0.1:0"}
routes:
  - {prefix: /private/, backend: app}
  - {prefix: /, backend: app}
backends:
  app: {type: http, instances: [%q]}
`, app1)
	a, _, _ := startApp(t, parse(t, guarded))
	url := "http://" + a.Addrs()[0].String()
	check := func(path string, wantCode int) {
		t.Helper()
		if code, body := get(t, url+path); code != wantCode {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, wantCode)
		}
	}
	check("/private/x", 502)
	check("/public/x", 200)
	if err := a.Reload(parse(t, open)); err != nil {
		t.Fatal(err)
	}
	check("/private/x", 200)
	if err := a.Reload(parse(t, guarded)); err != nil {
		t.Fatal(err)
	}
	check("/private/x", 502)
	check("/public/x", 200)
}

// TestVariableForms: a guarded route's authorizer passes its variables in
// the form its backend reads, and in both when its shadow is of the other
// kind (the copy carries the request as the backend got it).
func TestVariableForms(t *testing.T) {
	cfg := parse(t, `
listeners:
  - {protocol: http, address: "127.0.0.1:0"}
backends:
  scripts: {type: cgi, allow_root: true, root: /tmp}
  app: {type: http, instances: ["127.0.0.1:1"]}
  app2: {type: http, instances: ["127.0.0.1:2"]}
routes:
  - {prefix: /a/, backend: scripts, authorizer: {instances: ["127.0.0.1:3"], script: /auth.php}}
  - {prefix: /b/, backend: app, authorizer: {instances: ["127.0.0.1:3"], script: /auth.php}}
  - {prefix: /c/, backend: scripts, shadow: {backend: app}, authorizer: {instances: ["127.0.0.1:3"], script: /auth.php}}
  - {prefix: /d/, backend: app, shadow: {backend: scripts}, authorizer: {instances: ["127.0.0.1:3"], script: /auth.php}}
  - {prefix: /e/, backend: app, shadow: {backend: app2}, authorizer: {instances: ["127.0.0.1:3"], script: /auth.php}}
`)
	for i, want := range []struct{ headers, both bool }{{false, false}, {true, false}, {false, true}, {true, true}, {true, false}} {
		if h, b := variableForms(cfg, cfg.Routes[i]); h != want.headers || b != want.both {
			t.Errorf("%s: headers %v both %v, want %+v", cfg.Routes[i].Prefix, h, b, want)
		}
	}
}

// TestStatusShowsAuthorizerAndRouteSettings: the status page lists a
// route's authorizer with its outcome counts, which carry on across a
// reload (authorizers are built anew), and a cgi route's own settings;
// a route with neither shows none.
func TestStatusShowsAuthorizerAndRouteSettings(t *testing.T) {
	down := "unix:" + filepath.Join(t.TempDir(), "nobody.sock")
	conf := fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: "127.0.0.1:0"}
routes:
  - prefix: /private/
    backend: scripts
    authorizer: {instances: [%q], script: /srv/auth/check.php}
    timeout: 90s
    max_concurrent: 2
    limits: {memory: 64MiB, nice: 5}
  - {prefix: /, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, max_concurrent: 4}
`, down, t.TempDir())
	a, _, _ := startApp(t, parse(t, conf))
	url := "http://" + a.Addrs()[0].String()
	check := func(wantErrors int64) {
		t.Helper()
		if code, body := get(t, url+"/private/x"); code != 502 {
			t.Fatalf("GET /private/x = %d %q, want 502 (authorizer down)", code, body)
		}
		s := a.Status()
		if len(s.Routes) != 2 {
			t.Fatalf("routes %+v", s.Routes)
		}
		r := s.Routes[0]
		if az := r.Authorizer; az == nil || len(az.Instances) != 1 || az.Instances[0] != down || az.Script != "/srv/auth/check.php" ||
			az.Errors != wantErrors || az.Allowed != 0 || az.Denied != 0 {
			t.Errorf("route %s authorizer %+v, want %s with %d errors", r.Pattern, az, down, wantErrors)
		}
		if c := r.CGI; c == nil || c.TimeoutSeconds != 90 || c.MaxConcurrent != 2 || c.Limits == nil ||
			*c.Limits != (status.Limits{MemoryBytes: 64 << 20, Nice: 5}) {
			t.Errorf("route %s cgi settings %+v", r.Pattern, c)
		}
		if r := s.Routes[1]; r.Authorizer != nil || r.CGI != nil {
			t.Errorf("route %s shows an authorizer %+v or settings %+v it has not", r.Pattern, r.Authorizer, r.CGI)
		}
	}
	check(1)
	if err := a.Reload(parse(t, conf)); err != nil {
		t.Fatal(err)
	}
	check(2)

	rec := httptest.NewRecorder()
	a.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	for _, want := range []string{
		"authorizer " + down + " · /srv/auth/check.php · allowed 0, denied 0, errors 2",
		"own settings: timeout 1m30s · max_concurrent 2 · limits memory 64 MiB, nice 5",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/status lacks %q", want)
		}
	}
}
