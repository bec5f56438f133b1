package config

import (
	"strings"
	"testing"
	"time"
)

// TestWriteTimeout: a listener's write_timeout defaults to 60s (per
// write, as nginx's send_timeout and Apache's Timeout), except on the
// plain-HTTP listener, whose server can only bound the whole response; -1
// turns it off; 0 means the default.
func TestWriteTimeout(t *testing.T) {
	tests := []struct {
		name   string
		format string
		data   string
		want   []time.Duration // per listener
	}{
		{"defaults", "yaml", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s}
  - {protocol: fastcgi, address: "127.0.0.1:4001", backend: s}
  - {protocol: ajp, address: "127.0.0.1:4002", backend: s}
  - {protocol: http, address: "127.0.0.1:4003", backend: s}
backends:
  s: {type: cgi, root: /srv}
`, []time.Duration{defaultWriteTimeout, defaultWriteTimeout, defaultWriteTimeout, 0}},
		{"zero means the default", "yaml", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s, write_timeout: 0}
  - {protocol: scgi, address: "127.0.0.1:4001", backend: s, write_timeout: 0s}
backends:
  s: {type: cgi, root: /srv}
`, []time.Duration{defaultWriteTimeout, defaultWriteTimeout}},
		{"set", "yaml", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s, write_timeout: 5m}
  - {protocol: http, address: "127.0.0.1:4001", backend: s, write_timeout: 10m}
backends:
  s: {type: cgi, root: /srv}
`, []time.Duration{5 * time.Minute, 10 * time.Minute}},
		{"-1 turns it off", "yaml", `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s, write_timeout: -1}
  - {protocol: ajp, address: "127.0.0.1:4001", backend: s, write_timeout: "-1"}
  - {protocol: http, address: "127.0.0.1:4002", backend: s, write_timeout: -1}
backends:
  s: {type: cgi, root: /srv}
`, []time.Duration{TimeoutOff, TimeoutOff, TimeoutOff}},
		{"-1 in TOML", "toml", `
[[listeners]]
protocol = "fastcgi"
address = "127.0.0.1:4000"
backend = "s"
write_timeout = -1

[backends.s]
type = "cgi"
root = "/srv"
`, []time.Duration{TimeoutOff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for i, want := range tt.want {
				if got := cfg.Listeners[i].WriteTimeout; got != want {
					t.Errorf("listeners[%d] (%s): write_timeout = %v, want %v", i, cfg.Listeners[i].Protocol, got, want)
				}
			}
		})
	}
}

func TestWriteTimeoutErrors(t *testing.T) {
	for _, v := range []string{"-2s", "-1s", "-5"} {
		t.Run(v, func(t *testing.T) {
			data := `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s, write_timeout: ` + v + `}
backends:
  s: {type: cgi, root: /srv}
`
			cfg, err := Parse([]byte(data), "yaml")
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), "listeners[0].write_timeout") {
				t.Errorf("write_timeout: %s: err = %v, want one naming listeners[0].write_timeout", v, err)
			}
		})
	}
	// -1 is for write_timeout only.
	cfg, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s, read_timeout: -1}
backends:
  s: {type: cgi, root: /srv}
`), "yaml")
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "listeners[0].read_timeout") {
		t.Errorf("read_timeout: -1: err = %v, want one naming listeners[0].read_timeout", err)
	}
}
