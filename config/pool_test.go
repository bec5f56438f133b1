package config

import (
	"strings"
	"testing"
	"time"
)

const poolListener = `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: app}
`

func TestPoolAcceptanceConfig(t *testing.T) {
	cfg, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: app}
routes:
  - {prefix: /php/, backend: php}
backends:
  app: {type: http, instances: ["127.0.0.1:8101", "127.0.0.1:8102"], balance: round_robin}
  php: {type: fastcgi, instances: ["unix:/run/php/fpm.sock"], root: /srv/php}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	app := cfg.Backends["app"]
	if got := []Instance{{Address: "127.0.0.1:8101"}, {Address: "127.0.0.1:8102"}}; len(app.Instances) != 2 ||
		app.Instances[0] != got[0] || app.Instances[1] != got[1] {
		t.Errorf("app instances = %+v", app.Instances)
	}
	if app.Balance != "round_robin" || app.DialTimeout != defaultDialTimeout ||
		app.ResponseHeaderTimeout != defaultBackendTimeout || app.StripPrefix != "" {
		t.Errorf("app defaults = %+v", app)
	}
	if app.Health.Interval != 0 || app.Health.FailThreshold != defaultFailThreshold || app.Health.Fall != defaultFall {
		t.Errorf("app health = %+v (want passive only)", app.Health)
	}
	if app.MaxConcurrent != 0 || app.MaxHeaderBytes != 0 || app.URLPrefix != "" {
		t.Errorf("cgi defaults leaked into an http backend: %+v", app)
	}
	php := cfg.Backends["php"]
	if php.Root != "/srv/php" || php.Instances[0].Address != "unix:/run/php/fpm.sock" ||
		php.MaxHeaderBytes != defaultMaxHeaderBytes || php.ResponseHeaderTimeout != 0 {
		t.Errorf("php = %+v", php)
	}
	if len(cfg.Version) != 12 {
		t.Errorf("version = %q, want 12 hex digits", cfg.Version)
	}
}

func TestPoolFullForms(t *testing.T) {
	tests := []struct {
		format, data string
	}{
		{"yaml", poolListener + `
backends:
  app:
    type: http
    instances:
      - 127.0.0.1:8101
      - {address: "127.0.0.1:8102", weight: 3, max_conns: 8, backup: true, route: b}
    balance: hash
    hash_key: cookie:sid
    health: {path: /healthz, fall: 5}
    spawn: null
`},
		{"toml", `
[[listeners]]
protocol = "scgi"
address = "127.0.0.1:4000"
backend = "app"
[backends.app]
type = "http"
instances = ["127.0.0.1:8101", {address = "127.0.0.1:8102", weight = 3, max_conns = 8, backup = true, route = "b"}]
balance = "hash"
hash_key = "cookie:sid"
[backends.app.health]
path = "/healthz"
fall = 5
`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Backends["app"]
			want := Instance{Address: "127.0.0.1:8102", Weight: 3, MaxConns: 8, Backup: true, Route: "b"}
			if len(b.Instances) != 2 || b.Instances[1] != want || b.Instances[0].Address != "127.0.0.1:8101" {
				t.Errorf("instances = %+v", b.Instances)
			}
			if b.Health.Interval != defaultHealthInterval || b.Health.Timeout != 5*time.Second || b.Health.Fall != 5 || b.Health.Rise != defaultRise {
				t.Errorf("health = %+v", b.Health)
			}
		})
	}
}

// keepalive with max_conns on the backend or on every instance is valid.
func TestPoolKeepAlive(t *testing.T) {
	cfg, err := Parse([]byte(poolListener+`
backends:
  app: {type: http, instances: ["127.0.0.1:8101"]}
  php: {type: fastcgi, instances: ["unix:/run/php/fpm.sock"], root: /srv/php, max_conns: 4, keepalive: 4, keepalive_timeout: 5s}
  php2: {type: fastcgi, instances: [{address: "127.0.0.1:9000", max_conns: 2}], root: /srv/php, keepalive: 2}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if php := cfg.Backends["php"]; php.KeepAlive != 4 || php.KeepAliveTimeout != 5*time.Second {
		t.Errorf("php = %+v", php)
	}
	if php2 := cfg.Backends["php2"]; php2.KeepAlive != 2 || php2.KeepAliveTimeout != 0 {
		t.Errorf("php2 = %+v (timeout 0: the backend's default applies)", php2)
	}
}

func TestSpawnDefaults(t *testing.T) {
	cfg, err := Parse([]byte(poolListener+`
backends:
  app: {type: http, spawn: {command: [./app, "-addr", "127.0.0.1:{port}"], count: 2, dir: srv}}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Backends["app"].Spawn
	if s.Mode != SpawnPort || s.Count != 2 || s.RestartBase != defaultRestartBase || s.StopTimeout != defaultStopTimeout ||
		!strings.HasPrefix(s.Dir, "/") {
		t.Errorf("spawn = %+v", s)
	}
}

func TestPoolErrorsNameTheirKey(t *testing.T) {
	tests := []struct {
		name, backends string
		want           []string
	}{
		{"keys of other types", `
  app: {type: http, instances: ["127.0.0.1:1"], root: /srv, index: x.php, url_prefix: /x, max_concurrent: 3, set_env: {A: b}}
  php: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, response_header_timeout: 1s, health: {path: /x}}
  cgi: {type: cgi, root: /srv, instances: ["127.0.0.1:3"], balance: least_conn, strip_prefix: /a}`,
			[]string{"backends.app.root: applies to types cgi and fastcgi", "backends.app.index: applies to type fastcgi",
				"backends.app.url_prefix: applies to type cgi", "backends.app.max_concurrent:", "backends.app.set_env:",
				"backends.php.response_header_timeout: applies to type http", "backends.php.health.path: applies to type http",
				"backends.cgi.instances: applies to types http and fastcgi", "backends.cgi.balance:", "backends.cgi.strip_prefix:"}},
		{"fastcgi root", `
  app: {type: http, instances: ["127.0.0.1:1"]}
  a: {type: fastcgi, instances: ["127.0.0.1:2"]}
  b: {type: fastcgi, instances: ["127.0.0.1:2"], root: srv/php}`,
			[]string{"backends.a.root: required", `backends.b.root: "srv/php" must be an absolute path`}},
		{"instances", `
  app: {type: http}
  b: {type: http, instances: ["localhost", "127.0.0.1:1", "127.0.0.1:1", ":80", {address: "unix:", weight: -1}]}
  c: {type: http, instances: ["127.0.0.1:1"], spawn: {command: [x, "{port}"]}}`,
			[]string{"backends.app.instances: one of instances, spawn or discovery is required",
				"backends.b.instances[0].address:", `backends.b.instances[2].address: "127.0.0.1:1" is listed twice`,
				"backends.b.instances[3].address:", "backends.b.instances[4].address:", "backends.b.instances[4].weight:",
				"backends.c.spawn: set either instances or spawn, not both"}},
		{"balance", `
  app: {type: http, instances: ["127.0.0.1:1"], balance: fastest}
  b: {type: http, instances: ["127.0.0.1:1"], balance: hash}
  c: {type: http, instances: ["127.0.0.1:1"], hash_key: ip, sticky_cookie: "a b"}`,
			[]string{`backends.app.balance: "fastest"`, "backends.b.hash_key:", "backends.c.hash_key: applies to balance: hash only",
				"backends.c.sticky_cookie:"}},
		{"spawn", `
  app: {type: http, spawn: {command: [], count: -1, mode: tcp}}
  b: {type: http, spawn: {command: [./app], env: ["NOEQUALS", "1X=y"], stop_timeout: -1s}}`,
			[]string{"backends.app.spawn.command: required", "backends.app.spawn.count:", `backends.app.spawn.mode: "tcp"`,
				"backends.b.spawn.command: mode port needs {port} or {addr}", "backends.b.spawn.env[0]:", "backends.b.spawn.env[1]:",
				"backends.b.spawn.stop_timeout:"}},
		{"numbers and health", `
  app: {type: http, instances: ["127.0.0.1:1"], max_attempts: -1, queue_size: -2, max_conns: -3, dial_timeout: -1s,
        strip_prefix: app, health: {path: ping, fail_threshold: -2, eject_base: 2m, eject_max: 1m}}
  php: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, index: a/b.php, health: {script: ping.php}}`,
			[]string{"backends.app.max_attempts:", "backends.app.queue_size:", "backends.app.max_conns:", "backends.app.dial_timeout:",
				"backends.app.strip_prefix:", "backends.app.health.path:", "backends.app.health.fail_threshold:",
				"backends.app.health.eject_max:", "backends.php.index:", "backends.php.health.script:"}},
		{"keepalive", `
  app: {type: http, instances: ["127.0.0.1:1"], keepalive: 2}
  a: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, keepalive: 4}
  b: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, keepalive: 8, max_conns: 4, keepalive_timeout: -1s}
  c: {type: fastcgi, spawn: {command: [x, "{port}"]}, root: /srv, keepalive: 1}
  d: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, keepalive: -1}`,
			[]string{"backends.app.keepalive: applies to type fastcgi", "backends.a.instances[0].max_conns: required with keepalive",
				"backends.b.keepalive: 8 is more than max_conns 4", "backends.b.keepalive_timeout:",
				"backends.c.max_conns: required with keepalive", "backends.d.keepalive:"}},
		{"discovery", `
  app: {type: http, instances: ["127.0.0.1:1"], discovery: {dns: "app:80"}}
  b: {type: http, spawn: {command: [x, "{port}"]}, discovery: {srv: _b._tcp.x}}
  c: {type: http, discovery: {refresh: 1s}}
  d: {type: http, discovery: {dns: "d:80", srv: _d._tcp.x}}
  e: {type: http, discovery: {dns: "e"}}
  f: {type: http, discovery: {dns: "f:http"}}
  g: {type: http, discovery: {srv: "_g._tcp.x:80", resolver: "127.0.0.1", refresh: -1s}}
  h: {type: fastcgi, root: /srv, discovery: {dns: "h:9000"}, keepalive: 2}
  cgi: {type: cgi, root: /srv, discovery: {dns: "x:80"}}`,
			[]string{"backends.app.discovery: set either instances or discovery, not both",
				"backends.b.discovery: set either spawn or discovery, not both",
				"backends.c.discovery: set dns", "backends.d.discovery.srv: set either dns or srv, not both",
				"backends.e.discovery.dns:", "want host:port", `backends.f.discovery.dns: dns "f:http": port "http" is not a number`,
				"backends.g.discovery.srv:", "without a port", "backends.g.discovery.resolver:", "backends.g.discovery.refresh:",
				"backends.h.max_conns: required with keepalive",
				"backends.cgi.discovery: applies to types http and fastcgi"}},
		{"unknown keys", `
  app: {type: http, instances: [{address: "127.0.0.1:1", wieght: 2}], health: {pth: /}, spawn: {comand: [x]}}
  b: {type: http, discovery: {dns: "i:80", resolv: "127.0.0.1:53"}}`,
			[]string{"backends.app.instances[0].wieght: unknown key", "backends.app.health.pth: unknown key",
				"backends.app.spawn.comand: unknown key", "backends.b.discovery.resolv: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(poolListener+"backends:"+tt.backends+"\n"), "yaml")
			if err == nil {
				t.Fatal("Parse succeeded; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestVersionFollowsContent(t *testing.T) {
	a := version([]byte("a"))
	if a == version([]byte("b")) || a != version([]byte("a")) || len(a) != 12 {
		t.Errorf("version(a) = %q", a)
	}
}

func TestDiscoveryConfig(t *testing.T) {
	cfg, err := Parse([]byte(poolListener+`
backends:
  app: {type: http, discovery: {srv: _app._tcp.service.consul, resolver: "127.0.0.1:8600"}, balance: hash, hash_key: "cookie:sid"}
  php: {type: fastcgi, root: /srv, discovery: {dns: "php.default.svc.cluster.local:9000", refresh: 500ms}, keepalive: 2, max_conns: 4}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Backends["app"].Discovery; d == nil || *d != (Discovery{SRV: "_app._tcp.service.consul", Resolver: "127.0.0.1:8600", Refresh: defaultDiscoveryRefresh}) {
		t.Errorf("app discovery = %+v", d)
	}
	if d := cfg.Backends["php"].Discovery; d == nil || *d != (Discovery{DNS: "php.default.svc.cluster.local:9000", Refresh: 500 * time.Millisecond}) {
		t.Errorf("php discovery = %+v", d)
	}
}
