package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// max_conns: auto where a number goes (backend, instance), keepalive with
// it, keepalive: auto, and the keys that go with them.
func TestMaxConnsAuto(t *testing.T) {
	t.Setenv("JUNCTION_TEST_CONNS", "6")
	cfg, err := Parse([]byte(poolListener+`
backends:
  app: {type: http, instances: ["127.0.0.1:8101"], max_conns: 3}
  php:
    type: fastcgi
    instances: ["unix:/run/php/fpm.sock", {address: "127.0.0.1:9000", max_conns: "${JUNCTION_TEST_CONNS}"}]
    root: /srv/php
    max_conns: auto
    max_conns_fallback: 4
    keepalive: 4
    health: {status_path: /fpm-status}
  cgi:
    type: fastcgi
    instances: [{address: "127.0.0.1:9001", max_conns: AUTO}, "127.0.0.1:9002"]
    root: /srv/php
    max_conns: 2
    max_conns_fallback: 2
    keepalive: auto
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if app := cfg.Backends["app"]; app.MaxConns != 3 || app.MaxConns.Auto() || app.Health.Interval != 0 {
		t.Errorf("app = %+v", app)
	}
	php := cfg.Backends["php"]
	if !php.MaxConns.Auto() || php.MaxConns.String() != "auto" || php.MaxConnsFallback != 4 || php.KeepAlive != 4 ||
		php.Instances[1].MaxConns != 6 || php.Instances[0].MaxConns != 0 {
		t.Errorf("php = %+v", php)
	}
	if h := php.Health; h.StatusPath != "/fpm-status" || h.Interval != defaultHealthInterval {
		t.Errorf("php health = %+v: status_path turns checks on", h)
	}
	c := cfg.Backends["cgi"]
	if !c.Instances[0].MaxConns.Auto() || c.MaxConns != 2 || !c.KeepAlive.Auto() || c.Health.Interval != defaultHealthInterval {
		t.Errorf("cgi = %+v (auto on an instance turns checks on)", c)
	}

	// TOML and JSON write it as a string too.
	for _, f := range []struct{ format, data string }{
		{"toml", `
[[listeners]]
protocol = "scgi"
address = "127.0.0.1:4000"
backend = "php"
[backends.php]
type = "fastcgi"
instances = ["127.0.0.1:9000"]
root = "/srv"
max_conns = "auto"
max_conns_fallback = 3
keepalive = "auto"
[backends.php.health]
interval = "2s"
`},
		{"json", `{"listeners": [{"protocol": "scgi", "address": "127.0.0.1:4000", "backend": "php"}],
"backends": {"php": {"type": "fastcgi", "instances": ["127.0.0.1:9000"], "root": "/srv", "max_conns": "auto", "max_conns_fallback": 3, "keepalive": "auto", "health": {"interval": "2s"}}}}`},
	} {
		cfg, err := Parse([]byte(f.data), f.format)
		if err != nil {
			t.Fatalf("%s: %v", f.format, err)
		}
		if php := cfg.Backends["php"]; !php.MaxConns.Auto() || !php.KeepAlive.Auto() || php.MaxConnsFallback != 3 || php.Health.Interval != 2*time.Second {
			t.Errorf("%s: php = %+v", f.format, php)
		}
	}
}

func TestMaxConnsAutoErrors(t *testing.T) {
	for _, tt := range []struct {
		name, backends string
		want           []string
	}{
		{"validate", `
  app: {type: http, instances: [{address: "127.0.0.1:1", max_conns: auto}], max_conns: auto, max_conns_fallback: 2, health: {status_path: /s}}
  a: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, max_conns: auto}
  b: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, max_conns: 4, max_conns_fallback: 2}
  c: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, max_conns: auto, max_conns_fallback: -1, health: {status_path: "status?json"}}
  d: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, health: {status_path: /status}}
  e: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, keepalive: auto}
  f: {type: fastcgi, instances: [{address: "127.0.0.1:2", max_conns: -2}], root: /srv, keepalive: -3}
  g: {type: cgi, root: /srv, max_conns: auto, max_conns_fallback: 1}`,
			[]string{
				"backends.app.max_conns: auto applies to type fastcgi only",
				"backends.app.instances[0].max_conns: auto applies to type fastcgi only",
				"backends.app.max_conns_fallback: applies to type fastcgi only",
				"backends.app.health.status_path: applies to type fastcgi only",
				"backends.a.max_conns_fallback: required with max_conns: auto",
				"backends.b.max_conns_fallback: applies with max_conns: auto only",
				"backends.c.max_conns_fallback: -1: want a positive count",
				`backends.c.health.status_path: "status?json" must start with /`,
				"backends.d.health.status_path: applies with max_conns: auto only",
				"backends.e.instances[0].max_conns: required with keepalive",
				"backends.f.instances[0].max_conns: -2 must not be negative",
				"backends.f.keepalive: -3 must not be negative",
				"backends.g.max_conns: applies to types http and fastcgi",
				"backends.g.max_conns_fallback: applies to types http and fastcgi",
			}},
		{"decode", `
  a: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, max_conns: lots}
  b: {type: fastcgi, instances: ["127.0.0.1:2"], root: /srv, keepalive: 2.5}`,
			[]string{`backends.a.max_conns: "lots": want a number or auto`, "backends.b.keepalive: 2.5: want a whole number or auto"}},
	} {
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

// The example file shows max_conns: auto with its companions.
func TestExampleMaxConnsAuto(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "examples", "junction.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	php := cfg.Backends["php"]
	if php == nil || !php.MaxConns.Auto() || php.MaxConnsFallback == 0 || !php.KeepAlive.Auto() || php.Health.StatusPath == "" {
		t.Errorf("examples/junction.yaml php = %+v", php)
	}
}
