package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaxBodySpool(t *testing.T) {
	cfg, err := Parse([]byte(limitsListener+`
backends:
  scripts: {type: cgi, root: /srv/cgi-bin, max_body_spool: 64MiB, spool_dir: /var/spool/junction}
  plain: {type: cgi, root: /srv/cgi-bin}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Backends["scripts"]; b.MaxBodySpool != 64<<20 || b.SpoolDir != "/var/spool/junction" {
		t.Errorf("max_body_spool %d spool_dir %q, want 64 MiB and /var/spool/junction", b.MaxBodySpool, b.SpoolDir)
	}
	// Default: refused with 411 as before the key existed (see its doc).
	if b := cfg.Backends["plain"]; b.MaxBodySpool != 0 || b.SpoolDir != "" {
		t.Errorf("defaults: max_body_spool %d spool_dir %q, want 0 and none", b.MaxBodySpool, b.SpoolDir)
	}
}

func TestMaxBodySpoolErrorsNameTheirKey(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"negative", `backends: {scripts: {type: cgi, root: /x, max_body_spool: -1}}`,
			`backends.scripts.max_body_spool: -1 must not be negative`},
		{"unit", `backends: {scripts: {type: cgi, root: /x, max_body_spool: 8M}}`,
			`backends.scripts.max_body_spool: "8M" is not a size`},
		{"spool_dir alone", `backends: {scripts: {type: cgi, root: /x, spool_dir: /tmp}}`,
			`backends.scripts.spool_dir: has no effect without max_body_spool`},
		{"on a pool", `backends: {scripts: {type: fastcgi, root: /x, instances: ["127.0.0.1:1"], max_body_spool: 1MiB}}`,
			`backends.scripts.max_body_spool: applies to type cgi only`},
		{"spool_dir on a pool", `backends: {scripts: {type: http, instances: ["127.0.0.1:1"], spool_dir: /tmp}}`,
			`backends.scripts.spool_dir: applies to type cgi only`},
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

func TestSpoolDirRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "junction.yaml")
	data := limitsListener + `
backends:
  scripts: {type: cgi, root: cgi-bin, max_body_spool: 1MiB, spool_dir: spool}
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Backends["scripts"].SpoolDir, filepath.Join(dir, "spool"); got != want {
		t.Errorf("spool_dir = %q, want %q", got, want)
	}
}
