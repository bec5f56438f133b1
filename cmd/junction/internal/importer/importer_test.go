package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-gw/junction/config"
)

// writeTree writes files (relative name → content) under a new temporary
// directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// importOK imports files and parses the YAML with junction's own config
// loader, which must accept it.
func importOK(t *testing.T, kind string, files []string, opt Options) (*Result, *config.Config) {
	t.Helper()
	res, err := Import(kind, files, opt)
	if err != nil {
		if res != nil {
			t.Logf("report:\n%s", res.Report())
		}
		t.Fatalf("Import(%s, %v): %v", kind, files, err)
	}
	y := res.YAML("test")
	cfg, err := config.Parse([]byte(y), "yaml")
	if err != nil {
		t.Fatalf("config.Parse of the imported YAML: %v\n%s", err, y)
	}
	return res, cfg
}

// hasNote reports whether a note's directive and reason contain the given
// texts.
func hasNote(res *Result, directive, why string) bool {
	for _, n := range res.Notes {
		if strings.Contains(n.Directive, directive) && strings.Contains(n.Why, why) {
			return true
		}
	}
	return false
}

func needFile(t *testing.T, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed (apt-get install %s): %v", path, pkg, err)
	}
	return path
}

func TestImportErrors(t *testing.T) {
	dir := writeTree(t, map[string]string{"empty.conf": "# nothing\n", "bad.conf": "location / {\n"})
	if _, err := Import("iis", []string{"x"}, Options{}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown kind: got %v, want ErrUnknownKind", err)
	}
	if _, err := Import("nginx", []string{filepath.Join(dir, "missing.conf")}, Options{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	if _, err := Import("nginx", []string{filepath.Join(dir, "empty.conf")}, Options{}); !errors.Is(err, ErrNothingMapped) {
		t.Errorf("empty file: got %v, want ErrNothingMapped", err)
	}
	_, err := Import("nginx", []string{filepath.Join(dir, "bad.conf")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "bad.conf") || !strings.Contains(err.Error(), "not closed") {
		t.Errorf("unclosed block: got %v, want an error naming the file", err)
	}
	if _, err := Import("nginx", []string{dir}, Options{}); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("a directory: got %v", err)
	}
}

func TestIncludeCycle(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"a.conf": "include b.conf;\n",
		"b.conf": "include a.conf;\n",
	})
	_, err := Import("nginx", []string{filepath.Join(dir, "a.conf")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("got %v, want an include-depth error", err)
	}
}

func TestYAMLQuoting(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:      `"plain"`,
		`a"b\c`:      `"a\"b\\c"`,
		`$HOME`:      `"$$HOME"`,
		"tab\there":  `"tab\there"`,
		"nl\n":       `"nl\n"`,
		"\x01":       `"\u0001"`,
		"bad\xffutf": `"bad\ufffdutf"`,
	} {
		if got := yq(in); got != want {
			t.Errorf("yq(%q) = %s, want %s", in, got, want)
		}
	}
	// What yq writes, junction's loader reads back unchanged.
	res := &Result{Config: Config{
		Listeners: []Listener{{Protocol: "scgi", Address: "127.0.0.1:4000", Backend: "s"}},
		Backends: []*Backend{{Name: "s", Type: "cgi", Root: t.TempDir(),
			SetEnv: []EnvVar{{Name: "A", Value: `x"$y\z #not a comment`}}}},
	}}
	cfg, err := config.Parse([]byte(res.YAML("")), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Backends["s"].SetEnv["A"]; got != `x"$y\z #not a comment` {
		t.Errorf("set_env A = %q", got)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{"cgi-bin": "cgi-bin", "/App/v2/": "app_v2", "": "backend", "***": "backend", "a b": "a_b"} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUserFlag(t *testing.T) {
	dir := writeTree(t, map[string]string{"cgi/x": "", "s.conf": "location /cgi-bin/ { root " + "ROOT; fastcgi_pass unix:/run/fcgiwrap.socket; }\n"})
	conf := filepath.Join(dir, "s.conf")
	b, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte(strings.Replace(string(b), "ROOT", dir, 1)), 0o644)
	res, cfg := importOK(t, "nginx", []string{conf}, Options{User: "www-data"})
	if cfg.User != "www-data" {
		t.Errorf("user = %q, want www-data from --user", cfg.User)
	}
	if strings.Contains(res.Report(), "identity:") {
		t.Errorf("identity hint with --user given:\n%s", res.Report())
	}
	res, cfg = importOK(t, "nginx", []string{conf}, Options{})
	if cfg.User != "" || !strings.Contains(res.Report(), "pass --user NAME") {
		t.Errorf("without --user: user %q, report:\n%s", cfg.User, res.Report())
	}
}
