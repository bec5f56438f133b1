package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestRunnerKeys: interpreters (string or list), run_as, user_dir and
// their defaults decode, in YAML, TOML and JSON alike.
func TestRunnerKeys(t *testing.T) {
	for format, doc := range map[string]string{
		"yaml": `
listeners: [{protocol: scgi, address: "127.0.0.1:4000", backend: site}]
backends:
  site:
    type: cgi
    root: /srv/www
    run_as: owner
    user_dir: public_html
    interpreters: {".php": /usr/bin/php-cgi, ".py": [/usr/bin/python3, -u], ".PL": /usr/bin/perl}
`,
		"toml": `
[[listeners]]
protocol = "scgi"
address = "127.0.0.1:4000"
backend = "site"
[backends.site]
type = "cgi"
root = "/srv/www"
run_as = "owner"
user_dir = "public_html"
[backends.site.interpreters]
".php" = "/usr/bin/php-cgi"
".py" = ["/usr/bin/python3", "-u"]
".PL" = "/usr/bin/perl"
`,
		"json": `{"listeners": [{"protocol": "scgi", "address": "127.0.0.1:4000", "backend": "site"}],
 "backends": {"site": {"type": "cgi", "root": "/srv/www", "run_as": "owner", "user_dir": "public_html",
  "interpreters": {".php": "/usr/bin/php-cgi", ".py": ["/usr/bin/python3", "-u"], ".PL": "/usr/bin/perl"}}}}`,
	} {
		t.Run(format, func(t *testing.T) {
			cfg, err := Parse([]byte(doc), format)
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Backends["site"]
			want := map[string]Command{".php": {"/usr/bin/php-cgi"}, ".py": {"/usr/bin/python3", "-u"}, ".pl": {"/usr/bin/perl"}}
			if !reflect.DeepEqual(b.Interpreters, want) {
				t.Errorf("interpreters %q, want %q", b.Interpreters, want)
			}
			if b.RunAs != "owner" || b.UserDir != "public_html" || b.MinUID != 1000 || b.MinGID != 1000 {
				t.Errorf("run_as %q user_dir %q min %d/%d", b.RunAs, b.UserDir, b.MinUID, b.MinGID)
			}
		})
	}
	cfg, err := Parse([]byte(`
listeners: [{protocol: scgi, address: "127.0.0.1:4000", backend: homes}]
backends:
  homes: {type: cgi, user_dir: www, min_uid: 2000}
  plain: {type: cgi, root: /srv}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Backends["homes"]; h.URLPrefix != "/" || h.MinUID != 2000 || h.MinGID != 1000 || h.Root != "" {
		t.Errorf("user_dir alone: %+v", h)
	}
	if p := cfg.Backends["plain"]; p.MinUID != 0 || p.RunAs != "" || len(p.Interpreters) > 0 {
		t.Errorf("defaults leak onto a plain cgi backend: %+v", p)
	}
}

// TestRunnerKeyErrors: each problem names its key.
func TestRunnerKeyErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		backend string
		want    []string
	}{
		"bad extensions": {`{type: cgi, root: /srv, interpreters: {php: /usr/bin/php-cgi, ".": /bin/sh, ".tar.gz": /bin/sh}}`,
			[]string{`backends.b.interpreters.php: "php" is not a file extension`, `backends.b.interpreters..: "."`,
				`backends.b.interpreters..tar.gz: ".tar.gz" is not`}},
		"bad commands": {`{type: cgi, root: /srv, interpreters: {".php": php-cgi, ".py": "/usr/bin/python3 -u", ".pl": [], ".rb": ""}}`,
			[]string{`backends.b.interpreters..php: "php-cgi" must be an absolute path`,
				`backends.b.interpreters..py: "/usr/bin/python3 -u": give the command and its arguments as a list`,
				"backends.b.interpreters..pl: a command is required", "backends.b.interpreters..rb: a command is required"}},
		"run_as value":          {`{type: cgi, root: /srv, run_as: nobody}`, []string{`backends.b.run_as: "nobody" is not "owner"`}},
		"run_as with user":      {`{type: cgi, root: /srv, run_as: owner, user: www-data}`, []string{"backends.b.run_as: excludes user and group"}},
		"run_as with group":     {`{type: cgi, root: /srv, run_as: owner, group: www-data}`, []string{"backends.b.run_as: excludes user and group"}},
		"min ids alone":         {`{type: cgi, root: /srv, min_uid: 500, min_gid: 500}`, []string{"backends.b.min_uid: applies with run_as or user_dir only", "backends.b.min_gid: applies with"}},
		"negative min id":       {`{type: cgi, root: /srv, run_as: owner, min_uid: -1}`, []string{"backends.b.min_uid: -1 is not a uid id"}},
		"user_dir absolute":     {`{type: cgi, user_dir: /home}`, []string{`backends.b.user_dir: "/home" must be a clean path`}},
		"user_dir up":           {`{type: cgi, user_dir: ../x}`, []string{`backends.b.user_dir: "../x" must be a clean path`}},
		"user_dir unclean":      {`{type: cgi, user_dir: "a//b"}`, []string{`backends.b.user_dir: "a//b" must be a clean path`}},
		"user_dir with script":  {`{type: cgi, script: /srv/x.cgi, user_dir: public_html}`, []string{"backends.b.user_dir: does not go with script"}},
		"neither root nor more": {`{type: cgi, run_as: owner}`, []string{"backends.b: one of root or script is required"}},
		"on an http pool": {`{type: http, instances: ["127.0.0.1:9000"], interpreters: {".php": /usr/bin/php-cgi}, run_as: owner, user_dir: x, min_uid: 5}`,
			[]string{"backends.b.interpreters: applies to type cgi only", "backends.b.run_as: applies to type cgi only",
				"backends.b.user_dir: applies to type cgi only", "backends.b.min_uid: applies to type cgi only"}},
		"on a fastcgi pool": {`{type: fastcgi, root: /srv, instances: ["127.0.0.1:9000"], run_as: owner}`,
			[]string{"backends.b.run_as: applies to type cgi only"}},
		"interpreter not a command": {`{type: cgi, root: /srv, interpreters: {".php": {cmd: x}}}`, []string{"backends.b.interpreters..php"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(`
listeners: [{protocol: scgi, address: "127.0.0.1:4000", backend: b}]
backends:
  b: `+tt.backend+"\n"), "yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestRunnerIdentity: run_as owner and user_dir need junction at euid 0
// without a top-level user to drop to, and need no allow_root there.
func TestRunnerIdentity(t *testing.T) {
	cgi := func(mod func(*Backend)) *Config {
		b := &Backend{Type: BackendCGI, Root: "/srv/www"}
		mod(b)
		return &Config{Backends: map[string]*Backend{"site": b}}
	}
	runAs := func(b *Backend) { b.RunAs = RunAsOwner }
	userDir := func(b *Backend) { b.Root, b.UserDir = "", "public_html" }
	for _, tt := range []struct {
		name string
		cfg  *Config
		euid int
		err  string
	}{
		{"run_as as root", cgi(runAs), 0, ""},
		{"run_as not as root", cgi(runAs), 1000, "backends.site.run_as: needs junction to run as root (it runs as uid 1000)"},
		{"run_as with a top-level user", func() *Config { c := cgi(runAs); c.User = "www-data"; return c }(), 0,
			`backends.site.run_as: junction drops to user "www-data"`},
		{"user_dir alone as root", cgi(userDir), 0, ""},
		{"user_dir not as root", cgi(userDir), 1000, "backends.site.user_dir: needs junction to run as root"},
		// The root's scripts would still run as root.
		{"user_dir beside root as root", cgi(func(b *Backend) { b.UserDir = "public_html" }), 0, "backends.site: junction runs as root"},
		{"user_dir beside root with user", cgi(func(b *Backend) { b.UserDir, b.User = "public_html", "www-data" }), 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := tt.cfg.CheckIdentity(tt.euid)
			if len(w) != 0 {
				t.Errorf("warnings %q", w)
			}
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}
