package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportGraph checks the rule against the module's real packages.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", Module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, ok := strings.CutPrefix(fields[0], Module+"/")
		if !ok {
			continue
		}
		var ds []string
		for _, d := range fields[1:] {
			if d, ok := strings.CutPrefix(d, Module+"/"); ok {
				ds = append(ds, d)
			}
		}
		deps[pkg] = ds
	}
	// The graph must be the real one: every codec and backend kind is there.
	for _, p := range append(slices.Clone(Codecs), BackendKinds...) {
		if _, ok := deps[p]; !ok {
			t.Errorf("package %s not found: update layering's lists", p)
		}
	}
	for _, v := range Violations(deps) {
		t.Error(v)
	}
}

// TestViolations checks that each forbidden kind of edge is reported and
// the allowed ones are not.
func TestViolations(t *testing.T) {
	for _, tt := range []struct {
		pkg, dep string
		bad      bool
	}{
		{"backends/cgi", "protocols/scgi", true},
		{"backends/fastcgi", "protocols/fastcgi/wire", true},
		{"backends/httpbackend", "protocols/rawconn", true},
		{"backends/spawn", "protocols/internal/connserver", true},
		{"protocols/scgi", "backends/cgi", true},
		{"protocols/ajp13", "backends/internal/cgienv", true},
		{"protocols/scgi", "protocols/fastcgi", true},
		{"balancer", "protocols/vars", true},
		{"balancer", "backends/httpbackend", true},
		{"balancer/x", "protocols/ajp13", true},

		{"backends/cgi", "vars", false},
		{"backends/fastcgi", "internal/fcgiwire", false},
		{"protocols/fastcgi", "internal/fcgiwire", false},
		{"protocols/scgi", "protocols/internal/connserver", false},
		{"protocols/fastcgi", "protocols/fastcgi/sub", false},
		{"protocols/scgi", "backends", false},
		{"balancer", "backends", false},
		{"backends/cgi", "backends/internal/cgiresp", false},
		{"cmd/junction/app", "protocols/scgi", false},
		{"cmd/junction/app", "backends/cgi", false},
	} {
		got := Violations(map[string][]string{tt.pkg: {tt.dep}})
		if (len(got) > 0) != tt.bad {
			t.Errorf("%s -> %s: violations %q, want forbidden=%v", tt.pkg, tt.dep, got, tt.bad)
		}
	}
}
