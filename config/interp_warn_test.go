package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInterpreterWarnings: an interpreter that someone other than root may
// replace (the program or its directory writable by group or others, or
// not owned by root) is warned about; /usr/bin/perl-like programs are not.
func TestInterpreterWarnings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership by root is what is checked: run as root")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	prog := filepath.Join(dir, "interp")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	parse := func() []string {
		cfg, err := Parse([]byte(fmt.Sprintf(`
listeners: [{protocol: scgi, address: "127.0.0.1:4000", backend: s}]
backends:
  s: {type: cgi, allow_root: true, root: /srv/cgi, interpreters: {".x": %q, ".sh": /bin/sh}}
`, prog)), "yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Warnings()
	}
	if w := parse(); len(w) != 0 {
		t.Fatalf("root-owned 0755 interpreters warned: %q", w)
	}
	os.Chmod(prog, 0o757)
	if w := parse(); len(w) != 1 || !strings.Contains(w[0], `backends.s.interpreters[".x"]`) || !strings.Contains(w[0], "writable by group or others") {
		t.Errorf("world-writable interpreter: %q", w)
	}
	os.Chmod(prog, 0o755)
	os.Chown(prog, 1234, 1234)
	if w := parse(); len(w) != 1 || !strings.Contains(w[0], "owned by uid 1234") {
		t.Errorf("interpreter owned by another user: %q", w)
	}
	os.Chown(prog, 0, 0)
	os.Chmod(dir, 0o777)
	if w := parse(); len(w) != 1 || !strings.Contains(w[0], dir) {
		t.Errorf("interpreter in a world-writable directory: %q", w)
	}
}
