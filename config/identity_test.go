package config

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckIdentity(t *testing.T) {
	cgi := func(mod func(*Backend)) *Config {
		b := &Backend{Type: BackendCGI, Root: "/srv/cgi"}
		if mod != nil {
			mod(b)
		}
		return &Config{Backends: map[string]*Backend{"scripts": b, "app": {Type: BackendHTTP}}}
	}
	for _, tt := range []struct {
		name     string
		cfg      *Config
		euid     int
		warnings []string
		err      string
	}{
		{name: "not root", cfg: cgi(nil), euid: 1000},
		{name: "root, nothing set", cfg: cgi(nil), euid: 0, err: "backends.scripts: junction runs as root"},
		{name: "root, backend user", cfg: cgi(func(b *Backend) { b.User = "www-data" }), euid: 0},
		{name: "root, backend user root", cfg: cgi(func(b *Backend) { b.User = "root" }), euid: 0, err: "backends.scripts.user"},
		// Other names of uid 0: the backend's user and the top-level one
		// are resolved as junction resolves them.
		{name: "root, backend user 00", cfg: cgi(func(b *Backend) { b.User = "00" }), euid: 0, err: "backends.scripts.user"},
		{name: "root, backend user +0", cfg: cgi(func(b *Backend) { b.User = "+0" }), euid: 0, err: "backends.scripts.user"},
		{name: "root, top-level user 00", cfg: func() *Config { c := cgi(nil); c.User = "00"; return c }(), euid: 0,
			err: "backends.scripts: junction runs as root"},
		{name: "root, allow_root", cfg: cgi(func(b *Backend) { b.AllowRoot = true }), euid: 0,
			warnings: []string{"backends.scripts.allow_root: scripts run as root"}},
		{name: "root, top-level user", cfg: func() *Config { c := cgi(nil); c.User = "nobody"; return c }(), euid: 0},
		{name: "not root, allow_root is quiet", cfg: cgi(func(b *Backend) { b.AllowRoot = true }), euid: 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := tt.cfg.CheckIdentity(tt.euid)
			if !slices.Equal(w, tt.warnings) {
				t.Errorf("warnings %q, want %q", w, tt.warnings)
			}
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestAllowRootOnlyForCGI(t *testing.T) {
	_, err := Parse([]byte(`
listeners: [{protocol: scgi, address: "127.0.0.1:4000", backend: app}]
backends:
  app: {type: http, instances: ["127.0.0.1:9000"], allow_root: true}
`), "yaml")
	if err == nil || !strings.Contains(err.Error(), "backends.app.allow_root") {
		t.Errorf("err = %v, want one naming backends.app.allow_root", err)
	}
}
