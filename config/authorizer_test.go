package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthorizerConfig(t *testing.T) {
	cfg, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000"}
routes:
  - prefix: /private/
    backend: scripts
    authorizer: {instances: ["unix:/run/php/auth.sock", "127.0.0.1:9001"], script: /srv/auth/check.php}
  - {prefix: /, backend: scripts}
backends:
  scripts: {type: cgi, root: /srv/cgi-bin}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Routes[0].Authorizer
	if a == nil {
		t.Fatal("routes[0].authorizer not decoded")
	}
	want := Authorizer{Instances: []string{"unix:/run/php/auth.sock", "127.0.0.1:9001"}, Script: "/srv/auth/check.php",
		DialTimeout: defaultDialTimeout, Timeout: defaultAuthorizerTimeout, KeepAliveTimeout: defaultAuthorizerKeepAliveTimeout}
	if a.Script != want.Script || len(a.Instances) != 2 || a.Instances[0] != want.Instances[0] || a.Instances[1] != want.Instances[1] ||
		a.DialTimeout != want.DialTimeout || a.Timeout != want.Timeout || a.KeepAlive != 0 || a.KeepAliveTimeout != want.KeepAliveTimeout {
		t.Errorf("authorizer = %+v, want %+v", *a, want)
	}
	if cfg.Routes[1].Authorizer != nil {
		t.Error("a route without authorizer got one")
	}
}

func TestAuthorizerRelativeSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "junction.yaml")
	if err := os.WriteFile(file, []byte(`
listeners: [{protocol: scgi, address: "127.0.0.1:4000"}]
routes:
  - {prefix: /, backend: s, authorizer: {instances: ["unix:run/auth.sock"], script: /a.php, keepalive: 4, timeout: 2s}}
backends: {s: {type: cgi, root: /srv}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Routes[0].Authorizer
	if a.Instances[0] != "unix:"+filepath.Join(dir, "run/auth.sock") || a.KeepAlive != 4 || a.Timeout != 2*time.Second {
		t.Errorf("authorizer = %+v", *a)
	}
}

func TestAuthorizerErrorsNameTheirKey(t *testing.T) {
	head := `
listeners: [{protocol: scgi, address: "127.0.0.1:4000"}]
backends: {s: {type: cgi, root: /srv}}
routes:
  - prefix: /
    backend: s
    authorizer: `
	for _, tt := range []struct{ authorizer, want string }{
		{`{}`, "routes[0].authorizer.instances: at least one"},
		{`{instances: ["127.0.0.1:9000"]}`, "routes[0].authorizer.script: required"},
		{`{instances: ["127.0.0.1:9000"], script: check.php}`, "routes[0].authorizer.script: \"check.php\" must be an absolute path"},
		{`{instances: ["127.0.0.1:9000"], script: /a/../b.php}`, "routes[0].authorizer.script: \"/a/../b.php\" is not a clean path"},
		{`{instances: [":9000"], script: /a.php}`, "routes[0].authorizer.instances[0]: \":9000\" needs a host"},
		{`{instances: ["nowhere"], script: /a.php}`, "routes[0].authorizer.instances[0]:"},
		{`{instances: ["127.0.0.1:9000", "127.0.0.1:9000"], script: /a.php}`, "routes[0].authorizer.instances[1]: \"127.0.0.1:9000\" is listed twice"},
		{`{instances: ["127.0.0.1:9000"], script: /a.php, timeout: -1s}`, "routes[0].authorizer.timeout:"},
		{`{instances: ["127.0.0.1:9000"], script: /a.php, dial_timeout: -2s}`, "routes[0].authorizer.dial_timeout:"},
		{`{instances: ["127.0.0.1:9000"], script: /a.php, keepalive: -1}`, "routes[0].authorizer.keepalive: -1 must not be negative"},
		{`{instances: ["127.0.0.1:9000"], script: /a.php, role: authorizer}`, "role"},
	} {
		_, err := Parse([]byte(head+tt.authorizer+"\n"), "yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("authorizer %s: error %v, want it to contain %q", tt.authorizer, err, tt.want)
		}
	}
}
