package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"0": 0, "65536": 65536, "64MiB": 64 << 20, "64 MiB": 64 << 20, "64mib": 64 << 20,
		"1GiB": 1 << 30, "2KiB": 2048, "1TiB": 1 << 40, "10B": 10, "500MB": 500e6, "3kB": 3000, "1GB": 1e9,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "64M", "64m", "1.5GiB", "-1MiB", "64 MiBs", "x", "9999999999TiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

const limitsListener = `
listeners:
  - {protocol: scgi, address: "127.0.0.1:4000", backend: scripts}
`

func TestLimitsConfig(t *testing.T) {
	cfg, err := Parse([]byte(limitsListener+`
routes:
  - {prefix: /cgi-bin/report/, backend: scripts, timeout: 10m, max_concurrent: 2, limits: {cpu: 5m, memory: 1GiB}}
  - {prefix: /cgi-bin/, backend: scripts}
backends:
  scripts:
    type: cgi
    root: /srv/cgi-bin
    user: www-data
    limits: {cpu: 10s, memory: 64MiB, processes: 50, open_files: 256, file_size: 10485760, nice: 10}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{CPU: 10 * time.Second, Memory: 64 << 20, Processes: 50, OpenFiles: 256, FileSize: 10 << 20, Nice: 10}
	if got := cfg.Backends["scripts"].Limits; got == nil || *got != want {
		t.Errorf("backend limits = %+v, want %+v", got, want)
	}
	r := cfg.Routes[0]
	if r.Timeout != 10*time.Minute || r.MaxConcurrent != 2 || r.Limits == nil || *r.Limits != (Limits{CPU: 5 * time.Minute, Memory: 1 << 30}) {
		t.Errorf("route overrides = %+v %+v", r, r.Limits)
	}
	if !r.HasOverrides() || cfg.Routes[1].HasOverrides() {
		t.Errorf("HasOverrides: %v %v", r.HasOverrides(), cfg.Routes[1].HasOverrides())
	}
}

func TestLimitsErrorsNameTheirKey(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"size unit", `backends: {scripts: {type: cgi, root: /x, limits: {memory: 64M}}}`,
			`backends.scripts.limits.memory: "64M" is not a size`},
		{"size fraction", `backends: {scripts: {type: cgi, root: /x, limits: {file_size: 1.5}}}`,
			`backends.scripts.limits.file_size: 1.5 is not a whole number of bytes`},
		{"cpu fraction", `backends: {scripts: {type: cgi, root: /x, limits: {cpu: 1500ms}}}`,
			`backends.scripts.limits.cpu: 1.5s is not a whole number of seconds`},
		{"cpu without unit", `backends: {scripts: {type: cgi, root: /x, limits: {cpu: 10}}}`,
			`backends.scripts.limits.cpu: 10 has no unit`},
		{"nice", `backends: {scripts: {type: cgi, root: /x, limits: {nice: -5}}}`,
			`backends.scripts.limits.nice: -5 is outside 1..19`},
		{"negative", `backends: {scripts: {type: cgi, root: /x, limits: {open_files: -1}}}`,
			`backends.scripts.limits.open_files: -1 must not be negative`},
		{"unknown key", `backends: {scripts: {type: cgi, root: /x, limits: {stack: 1MiB}}}`,
			`backends.scripts.limits.stack: unknown key`},
		{"processes without user", `backends: {scripts: {type: cgi, root: /x, limits: {processes: 10}}}`,
			`backends.scripts.limits.processes: needs the backend's user`},
		{"processes as root", `backends: {scripts: {type: cgi, root: /x, user: root, limits: {processes: 10}}}`,
			`backends.scripts.limits.processes: needs the backend's user`},
		{"limits on a pool", `backends: {scripts: {type: http, instances: ["127.0.0.1:1"], limits: {cpu: 1s}}}`,
			`backends.scripts.limits: applies to type cgi only`},
		{"route timeout to a pool", `routes: [{prefix: /a/, backend: scripts, timeout: 5s}]
backends: {scripts: {type: http, instances: ["127.0.0.1:1"]}}`,
			`routes[0].timeout: applies to routes to a cgi backend only`},
		{"route max_concurrent to a pool", `routes: [{prefix: /a/, backend: scripts, max_concurrent: 1}]
backends: {scripts: {type: fastcgi, root: /srv, instances: ["127.0.0.1:1"]}}`,
			`routes[0].max_concurrent: applies to routes to a cgi backend only`},
		{"route limits to a pool", `routes: [{prefix: /a/, backend: scripts, limits: {nice: 5}}]
backends: {scripts: {type: http, instances: ["127.0.0.1:1"]}}`,
			`routes[0].limits: applies to routes to a cgi backend only`},
		{"route max_concurrent above the backend's", `routes: [{prefix: /a/, backend: scripts, max_concurrent: 9}]
backends: {scripts: {type: cgi, root: /x, max_concurrent: 8}}`,
			`routes[0].max_concurrent: 9 is more than backends.scripts.max_concurrent (8)`},
		{"route negative timeout", `routes: [{prefix: /a/, backend: scripts, timeout: -5s}]
backends: {scripts: {type: cgi, root: /x}}`,
			`routes[0].timeout: -5s must be positive`},
		{"route limits", `routes: [{prefix: /a/, backend: scripts, limits: {memory: lots, processes: 5}}]
backends: {scripts: {type: cgi, root: /x}}`,
			`routes[0].limits.memory: "lots" is not a size`},
		{"route processes without user", `routes: [{prefix: /a/, backend: scripts, limits: {processes: 5}}]
backends: {scripts: {type: cgi, root: /x}}`,
			`routes[0].limits.processes: needs the backend's user`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(limitsListener+tt.data), "yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLimitsProcessesWithRunAsOwner(t *testing.T) {
	if _, err := Parse([]byte(limitsListener+`backends: {scripts: {type: cgi, root: /x, run_as: owner, limits: {processes: 10}}}`), "yaml"); err != nil {
		t.Errorf("run_as owner with processes: %v", err)
	}
}
