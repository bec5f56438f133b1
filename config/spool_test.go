package config

import (
	"strings"
	"testing"
)

func TestSpoolKeys(t *testing.T) {
	tests := []struct {
		name      string
		listener  string
		holds     bool
		buffering string
		maxSpool  Size
	}{
		{"defaults scgi", `{protocol: scgi, address: "127.0.0.1:4000", backend: scripts}`, true, "auto", 128 << 20},
		{"defaults fastcgi", `{protocol: fastcgi, address: "127.0.0.1:4000", backend: scripts}`, true, "auto", 128 << 20},
		{"defaults http", `{protocol: http, address: "127.0.0.1:4000", backend: scripts}`, true, "auto", 128 << 20},
		{"defaults ajp", `{protocol: ajp, address: "127.0.0.1:4000", backend: scripts}`, false, "auto", 128 << 20},
		// Unquoted on and off are YAML 1.1 booleans; they must arrive as the words.
		{"yaml on", `{protocol: ajp, address: "127.0.0.1:4000", backend: scripts, response_buffering: on}`, true, "on", 128 << 20},
		{"yaml off", `{protocol: scgi, address: "127.0.0.1:4000", backend: scripts, response_buffering: off}`, false, "off", 128 << 20},
		{"case and size", `{protocol: scgi, address: "127.0.0.1:4000", backend: scripts, response_buffering: "OFF", max_spool_bytes: 1048576}`, false, "off", 1 << 20},
		{"size with a unit", `{protocol: scgi, address: "127.0.0.1:4000", backend: scripts, max_spool_bytes: 256MiB}`, true, "auto", 256 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte("listeners:\n  - "+tt.listener+"\nbackends:\n  scripts: {type: cgi, root: /srv}\n"), "yaml")
			if err != nil {
				t.Fatal(err)
			}
			l := cfg.Listeners[0]
			if l.ResponseBuffering != tt.buffering || l.MaxSpoolBytes != tt.maxSpool || l.HoldsResponses() != tt.holds {
				t.Errorf("response_buffering %q, max_spool_bytes %d, holds %v; want %q, %d, %v",
					l.ResponseBuffering, l.MaxSpoolBytes, l.HoldsResponses(), tt.buffering, tt.maxSpool, tt.holds)
			}
		})
	}
}

func TestSpoolKeysErrors(t *testing.T) {
	_, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts, response_buffering: sometimes, max_spool_bytes: -1}
backends:
  scripts: {type: cgi, root: /srv}
`), "yaml")
	for _, want := range []string{`listeners[0].response_buffering: "sometimes" is not one of auto, on, off`, "listeners[0].max_spool_bytes: -1 must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}
