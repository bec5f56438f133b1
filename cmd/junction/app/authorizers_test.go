package app

import (
	"fmt"
	"path/filepath"
	"testing"
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
