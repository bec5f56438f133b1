package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	if len(cfg.Listeners) != 2 {
		t.Fatalf("listeners = %d, want 2", len(cfg.Listeners))
	}
	got := map[string]string{}
	for _, l := range cfg.Listeners {
		got[l.Protocol] = l.Address
		if l.Backend != "scripts" {
			t.Errorf("%s listener backend = %q, want scripts", l.Protocol, l.Backend)
		}
	}
	if got["http"] != "127.0.0.1:8080" || got["scgi"] != "127.0.0.1:4000" {
		t.Errorf("listeners = %v", got)
	}
	b := cfg.Backends["scripts"]
	wd, _ := os.Getwd()
	if b == nil || b.Type != "cgi" || b.Root != filepath.Join(wd, "examples/cgi-bin") {
		t.Errorf("backend scripts = %+v", b)
	}
}

func TestParseFormats(t *testing.T) {
	tests := []struct {
		format, data string
	}{
		{"yaml", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s, read_timeout: 5s}
backends:
  s: {type: cgi, script: /srv/app.cgi, timeout: 2m}
`},
		{"toml", `
[[listeners]]
protocol = "scgi"
address = "127.0.0.1:4000"
backend = "s"
read_timeout = "5s"

[backends.s]
type = "cgi"
script = "/srv/app.cgi"
timeout = "2m"
`},
		{"json", `{"listeners": [{"protocol": "scgi", "address": "127.0.0.1:4000", "backend": "s", "read_timeout": "5s"}],
 "backends": {"s": {"type": "cgi", "script": "/srv/app.cgi", "timeout": "2m"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			l := cfg.Listeners[0]
			if l.Protocol != "scgi" || l.Address != "127.0.0.1:4000" || l.ReadTimeout != 5*time.Second {
				t.Errorf("listener = %+v", l)
			}
			if l.IdleTimeout != defaultIdleTimeout || l.MaxHeaderBytes != defaultMaxHeaderBytes {
				t.Errorf("defaults not applied: %+v", l)
			}
			b := cfg.Backends["s"]
			if b.Script != "/srv/app.cgi" || b.Timeout != 2*time.Minute || b.MaxQueue != defaultMaxConcurrent {
				t.Errorf("backend = %+v", b)
			}
		})
	}
}

// valid is a minimal good file that the error cases below modify.
const valid = `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts}
backends:
  scripts: {type: cgi, root: /srv/cgi-bin}
`

func TestParseErrorsNameTheirKey(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // substrings; each must appear in the error
	}{
		{"unknown top-level key", valid + "lsteners: []\n", []string{"lsteners: unknown key"}},
		{"unknown nested key", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, read_timout: 5s}
backends:
  scripts: {type: cgi, root: /srv, tmeout: 1s}
`, []string{"listeners[0].read_timout: unknown key", "backends.scripts.tmeout: unknown key"}},
		{"bad protocol", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts}
  - {protocol: gopher, address: "127.0.0.1:70", backend: scripts}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{`listeners[1].protocol: "gopher"`}},
		{"bad addresses", `
listeners:
  - {protocol: scgi, address: "localhost", backend: scripts}
  - {protocol: http, address: "127.0.0.1:99999", backend: scripts}
  - {protocol: http, address: "unix:", backend: scripts}
  - {protocol: http, backend: scripts}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{"listeners[0].address:", "listeners[1].address:", "listeners[2].address:", "listeners[3].address: required"}},
		{"missing backend reference", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: nope}
routes:
  - {prefix: other/, backend: gone}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{`listeners[0].backend: no backend named "nope"`, `routes[0].prefix:`, `routes[0].backend: no backend named "gone"`}},
		{"cgi root and script", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: a}
backends:
  a: {type: cgi, root: /srv, script: /srv/x.cgi}
  b: {type: cgi}
  c: {type: php}
`, []string{"backends.a.script: set either", "backends.b: one of root or script", `backends.c.type: "php"`}},
		{"negative and unparsable timeouts", `
shutdown_timeout: -1s
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, idle_timeout: -5s}
backends:
  scripts: {type: cgi, root: /srv, timeout: -1m}
`, []string{"shutdown_timeout:", "listeners[0].idle_timeout:", "backends.scripts.timeout:"}},
		{"duration syntax", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, read_timeout: soon}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{`listeners[0].read_timeout: "soon" is not a duration`}},
		{"duration without unit", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, read_timeout: 30, write_timeout: 0}
backends:
  scripts: {type: cgi, root: /srv, timeout: 1.5}
`, []string{"listeners[0].read_timeout: 30 has no unit", "backends.scripts.timeout: 1.5 has no unit"}},
		{"socket options", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, socket_mode: "0660", socket_group: www-data}
  - {protocol: scgi, address: "unix:/run/j.sock", backend: scripts, socket_mode: "01777"}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{"listeners[0].socket_mode: applies to unix", "listeners[0].socket_group: applies to unix", "listeners[1].socket_mode: 1777"}},
		{"socket mode syntax", `
listeners:
  - {protocol: scgi, address: "unix:/run/j.sock", backend: scripts, socket_mode: "0999"}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{"listeners[0].socket_mode: socket mode \"0999\""}},
		{"ajp", `
listeners:
  - {protocol: ajp, address: "0.0.0.0:8009", backend: scripts, packet_size: 100}
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, secret: x}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{"listeners[0].packet_size: 100", "listeners[0].secret: required", "listeners[1].secret: applies to protocol ajp"}},
		{"fastcgi", `
listeners:
  - {protocol: fastcgi, address: "127.0.0.1:9000", backend: scripts, max_requests_per_conn: 8}
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, multiplex: true}
backends:
  scripts: {type: cgi, root: /srv}
`, []string{"listeners[0].max_requests_per_conn: 8 needs multiplex", "listeners[1].multiplex: applies to protocol fastcgi"}},
		{"log and metrics", valid + `
log: {level: loud, format: xml}
metrics: {address: nowhere}
`, []string{`log.level: "loud"`, `log.format: "xml"`, "metrics.address:"}},
		{"access log and privileges", valid + `
log: {access: apache, access_file: /var/log/junction.log}
group: www-data
`, []string{`log.access: "apache"`, "group: \"www-data\" is set without user"}},
		{"access file without access log", valid + `
log: {access_file: /var/log/junction.log}
`, []string{"log.access_file: set, but log.access is off"}},
		{"env names", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts}
backends:
  scripts: {type: cgi, root: /srv, pass_env: [TZ, "A=B"], set_env: {"1X": y}}
`, []string{"backends.scripts.pass_env[1]:", "backends.scripts.set_env.1X:"}},
		{"no listeners", `
backends:
  scripts: {type: cgi, root: /srv}
`, []string{"listeners: at least one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), "yaml")
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

func TestSeveralErrorsAtOnce(t *testing.T) {
	_, err := Parse([]byte(`
log: {level: loud}
listeners:
  - {protocol: gopher, address: nowhere, backend: nope}
backends:
  scripts: {type: cgi}
`), "yaml")
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v is not a joined error", err)
	}
	if n := len(joined.Unwrap()); n != 5 {
		t.Errorf("got %d problems, want 5:\n%v", n, err)
	}
}

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{"PORT": "4001", "ROOT": "/srv/cgi", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want, wantErr string
	}{
		{"address: 127.0.0.1:${PORT}", "address: 127.0.0.1:4001", ""},
		{"root: $ROOT/x", "root: /srv/cgi/x", ""},
		{"secret: a$$b", "secret: a$b", ""},
		{"root: ${NOPE:-/fallback}", "root: /fallback", ""},
		{"root: ${EMPTY:-/fallback}", "root: /fallback", ""},
		{"a: $MISSING_ONE\nb: ${MISSING_TWO}", "", "MISSING_TWO"},
		{"a: $MISSING_ONE", "", "MISSING_ONE"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expandEnv(tt.in, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestEnvExpansionInsideValues: a variable's value is data. One holding
// '#', quotes or a newline must arrive whole in the one value it stands in
// (expanding the file's text cut a secret at its '#'), comments are not
// expanded, and an undefined variable names its key.
func TestEnvExpansionInsideValues(t *testing.T) {
	const secret = "s3#cr\"et'\nlisteners: []"
	t.Setenv("JUNCTION_TEST_SECRET", secret)
	t.Setenv("JUNCTION_TEST_ROOT", "/srv/cgi # not a comment")
	data := `
# a comment with $UNDEFINED_IN_COMMENT
listeners:
  - protocol: scgi
    address: 127.0.0.1:4000
    backend: scripts
backends:
  scripts:
    type: cgi
    root: ${JUNCTION_TEST_ROOT}
    set_env: {TOKEN: "${JUNCTION_TEST_SECRET}", PRICE: "$$5"}
`
	cfg, err := decode([]byte(data), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Backends["scripts"]
	if got := b.SetEnv["token"]; got != secret {
		t.Errorf("TOKEN = %q, want %q", got, secret)
	}
	if got := b.SetEnv["price"]; got != "$5" {
		t.Errorf("PRICE = %q, want $5", got)
	}
	if b.Root != "/srv/cgi # not a comment" {
		t.Errorf("root = %q", b.Root)
	}
	if len(cfg.Listeners) != 1 {
		t.Errorf("listeners = %d, want 1", len(cfg.Listeners))
	}

	_, err = decode([]byte("listeners:\n  - protocol: scgi\n    address: 127.0.0.1:${JUNCTION_TEST_UNSET_PORT}\n"), "yaml")
	if err == nil || !strings.Contains(err.Error(), "listeners[0].address: environment variable JUNCTION_TEST_UNSET_PORT is not set") {
		t.Errorf("err = %v, want one naming listeners[0].address and the variable", err)
	}
}

func TestLoadResolvesRelativePathsAndEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("JUNCTION_TEST_PORT", "4100")
	path := filepath.Join(dir, "junction.toml")
	data := `
[[listeners]]
protocol = "scgi"
address = "127.0.0.1:${JUNCTION_TEST_PORT}"
backend = "Scripts"

[[listeners]]
protocol = "fastcgi"
address = "unix:run/j.sock"
socket_mode = "0660"
backend = "scripts"

[backends.scripts]
type = "cgi"
root = "cgi-bin"
set_env = { perl5lib = "/opt/lib" }
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Listeners[0].Address; got != "127.0.0.1:4100" {
		t.Errorf("address = %q", got)
	}
	if got, want := cfg.Listeners[1].Address, "unix:"+filepath.Join(dir, "run/j.sock"); got != want {
		t.Errorf("unix address = %q, want %q", got, want)
	}
	if got := cfg.Listeners[1].SocketMode; got != 0o660 {
		t.Errorf("socket_mode = %v", got)
	}
	if got := cfg.Listeners[1].MaxRequestsPerConn; got != 1 {
		t.Errorf("max_requests_per_conn default = %d", got)
	}
	b := cfg.Backends["scripts"]
	if b.Root != filepath.Join(dir, "cgi-bin") || b.URLPrefix != "/" || b.SetEnv["PERL5LIB"] != "/opt/lib" {
		t.Errorf("backend = %+v", b)
	}
}

func TestSocketModeForms(t *testing.T) {
	tests := []struct {
		value string
		want  FileMode
		ok    bool
	}{
		{`"0660"`, 0o660, true},
		{`"660"`, 0o660, true},
		{`0660`, 0o660, true}, // YAML reads a leading zero as octal
		{`"0o600"`, 0o600, true},
		{`"rw-rw----"`, 0, false},
		{`"0999"`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			cfg, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "unix:/run/j.sock", backend: s, socket_mode: `+tt.value+`}
backends:
  s: {type: cgi, root: /srv}
`), "yaml")
			if !tt.ok {
				if err == nil {
					t.Fatalf("accepted %s as %v", tt.value, cfg.Listeners[0].SocketMode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Listeners[0].SocketMode; got != tt.want {
				t.Errorf("mode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listeners: [\n"), 0o644)
	for _, path := range []string{filepath.Join(dir, "missing.yaml"), bad} {
		if _, err := Load(path); err == nil {
			t.Errorf("Load(%s) succeeded", path)
		}
	}
	if _, err := Parse([]byte(valid), "ini"); err == nil {
		t.Error("Parse accepted format ini")
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	path := filepath.Join("..", "examples", "junction.yaml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs(filepath.Join("..", "examples", "cgi-bin"))
	if got := cfg.Backends["scripts"].Root; got != root {
		t.Errorf("scripts root = %q, want %q (relative to the file)", got, root)
	}
}

func TestKeyPath(t *testing.T) {
	tests := map[string]string{
		"log.level":                 "log.level",
		"listeners[1].read_timeout": "listeners[1].read_timeout",
		"backends[scripts].timeout": "backends.scripts.timeout",
		"backends[s].set_env[PATH]": "backends.s.set_env.PATH",
		"odd[":                      "odd[",
	}
	for in, want := range tests {
		if got := keyPath(in); got != want {
			t.Errorf("keyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOperationsKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "junction.yaml")
	data := `
log: {access: json, access_file: logs/access.log}
metrics: {address: "unix:run/ops.sock"}
user: www-data
group: adm
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts}
backends:
  scripts: {type: cgi, root: /srv}
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Access != "json" || cfg.Log.AccessFile != filepath.Join(dir, "logs/access.log") {
		t.Errorf("log %+v", cfg.Log)
	}
	if cfg.Metrics.Address != "unix:"+filepath.Join(dir, "run/ops.sock") {
		t.Errorf("metrics address %q", cfg.Metrics.Address)
	}
	if cfg.User != "www-data" || cfg.Group != "adm" {
		t.Errorf("user %q group %q", cfg.User, cfg.Group)
	}
	def, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts}
backends:
  scripts: {type: cgi, root: /srv}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if def.Log.Access != "off" || def.Log.AccessFile != "" || def.User != "" {
		t.Errorf("defaults: log %+v user %q", def.Log, def.User)
	}
}
