package importer

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLighttpd(t *testing.T) {
	src := `# comment
var.base = "/srv"
var.base += "/site"
server.port = 80 + 1
server.document-root = var.base + "/htdocs"
server.modules += ( "mod_cgi", "mod_alias" )
setenv.add-environment = ( "A" => "x \"q\"", "B" => env.HOME )
fastcgi.server = ( ".php" => (( "socket" => "/run/php.sock", "max-procs" => 1, )) )
$HTTP["url"] =~ "^/cgi-bin/" {
	cgi.assign = ( "" => "" )
} else $HTTP["url"] == "/x" {
	server.port = 82
} else {
	$HTTP["host"] == "h" { server.port = 83 }
}
globals { server.tag = "t" }
`
	vars := map[string]lval{}
	ss, err := parseLighttpd("l.conf", src, vars, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := vars["server.document-root"].String(); got != "/srv/site/htdocs" {
		t.Errorf("document-root = %q", got)
	}
	if got := vars["server.port"]; got.kind != lInt || got.num != 81 {
		t.Errorf("server.port = %+v", got)
	}
	env := vars["setenv.add-environment"]
	if a, _ := env.get("A"); a.str != `x "q"` {
		t.Errorf("A = %q", a.str)
	}
	if b, _ := env.get("B"); b.str != "${HOME}" {
		t.Errorf("B = %q", b.str)
	}
	fc := vars["fastcgi.server"]
	php, ok := fc.get(".php")
	if !ok || len(php.arr) != 1 {
		t.Fatalf("fastcgi.server = %s", fc)
	}
	if s, _ := php.arr[0].val.get("socket"); s.str != "/run/php.sock" {
		t.Errorf("socket = %+v", s)
	}
	var cond *lstmt
	for _, s := range ss {
		if s.kind == lCond && s.cond != nil {
			cond = s
		}
	}
	if cond == nil || cond.cond.op != "=~" || cond.cond.pattern != "^/cgi-bin/" || cond.line != 9 {
		t.Fatalf("conditional = %+v", cond)
	}
	if cond.orElse == nil || cond.orElse.cond.op != "==" || cond.orElse.orElse == nil || cond.orElse.orElse.cond != nil {
		t.Errorf("else chain = %+v", cond.orElse)
	}
	for _, bad := range []string{`x = `, `x = "open`, `x = ( "a" `, `$HTTP["url"] =~ "^/" { x = 1`, `x = undefined.var`, `x = ( 1 => 2 )`, `$HTTP["url"] = "x" {}`, `x @ 1`, `}`} {
		if _, err := parseLighttpd("b.conf", bad, map[string]lval{}, 0); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestLighttpdCGIDebian imports Debian's 10-cgi.conf: cgi.assign inside a
// URL conditional with alias.url.
func TestLighttpdCGIDebian(t *testing.T) {
	f := needFile(t, "/etc/lighttpd/conf-available/10-cgi.conf", "lighttpd")
	res, cfg := importOK(t, "lighttpd", []string{f}, Options{User: "www-data"})
	be := cfg.Backends["cgi-bin"]
	if be == nil || be.Root != "/usr/lib/cgi-bin" || be.URLPrefix != "/cgi-bin/" {
		t.Fatalf("backends = %+v", cfg.Backends)
	}
	if !hasNote(res, "cgi.assign", "not needed") {
		t.Errorf("report:\n%s", res.Report())
	}
	if len(res.Snippets) != 1 || !strings.Contains(res.Snippets[0].Text, `"/cgi-bin/" => (( "host" => "127.0.0.1", "port" => 4000, "check-local" => "disable" ))`) {
		t.Errorf("snippets = %+v", res.Snippets)
	}
}

// TestLighttpdFastCGIDebian imports Debian's php-fpm and php-cgi
// fastcgi.server snippets: php-fpm becomes a pool behind junction.
func TestLighttpdFastCGIDebian(t *testing.T) {
	f := needFile(t, "/etc/lighttpd/conf-available/15-fastcgi-php-fpm.conf", "lighttpd")
	mod := needFile(t, "/etc/lighttpd/conf-available/10-fastcgi.conf", "lighttpd")
	dir := writeTree(t, map[string]string{"main.conf": `server.document-root = "/var/www/html"
server.username = "www-data"
server.groupname = "www-data"
include "` + mod + `"
include "` + f + `"
`})
	res, cfg := importOK(t, "lighttpd", []string{filepath.Join(dir, "main.conf")}, Options{})
	if !strings.Contains(res.Snippets[0].Text, `".php" => (( "host" => "127.0.0.1", "port" => 4000`) {
		t.Errorf("snippet (an extension key stays one):\n%s", res.Snippets[0].Text)
	}
	be := cfg.Backends["php"]
	if be == nil || be.Type != "fastcgi" || be.Root != "/var/www/html" || be.Instances[0].Address != "unix:/run/php/php-fpm.sock" {
		t.Fatalf("backends = %+v", cfg.Backends)
	}
	if cfg.User != "www-data" || cfg.Group != "www-data" {
		t.Errorf("identity %q/%q", cfg.User, cfg.Group)
	}
	g := needFile(t, "/etc/lighttpd/conf-available/15-fastcgi-php.conf", "lighttpd")
	res, err := Import("lighttpd", []string{filepath.Join(dir, "main.conf"), g}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasNote(res, "bin-path", "lighttpd starts the application") {
		t.Errorf("report:\n%s", res.Report())
	}
}

func TestLighttpdMapping(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"lighttpd.conf": `server.document-root = "/srv/www"
server.username = "web"
setenv.add-environment = ( "SITE" => "main" )
include "conf.d/*.conf"
include_shell "/usr/share/lighttpd/create-mime.conf.pl"
`,
		"conf.d/cgi.conf": `$HTTP["url"] =^ "/tools/" {
	cgi.assign = ( ".cgi" => "" )
}
$HTTP["url"] =~ "^/scripts/" {
	alias.url += ( "/scripts/" => "/srv/scripts/" )
	cgi.assign = ( "" => "" )
	cgi.execute-x-only = "enable"
}
$HTTP["url"] =~ "\.cgi$" {
	cgi.assign = ( ".cgi" => "" )
}
$HTTP["host"] == "fcgi.example" {
	fastcgi.server = ( "/run/" => (( "socket" => "/run/fcgiwrap.socket", "check-local" => "disable" )) )
}
scgi.server = ( "/s/" => (( "host" => "127.0.0.1", "port" => 4001 )) )
`,
	})
	res, cfg := importOK(t, "lighttpd", []string{filepath.Join(dir, "lighttpd.conf")}, Options{})
	if cfg.User != "web" {
		t.Errorf("user = %q", cfg.User)
	}
	check := func(name, root, prefix string) {
		t.Helper()
		be := cfg.Backends[name]
		if be == nil || be.Root != root || be.URLPrefix != prefix || be.SetEnv["SITE"] != "main" {
			t.Errorf("%s = %+v", name, be)
		}
	}
	check("tools", "/srv/www/tools", "/tools/")
	check("scripts", "/srv/scripts", "/scripts/")
	check("run", "/srv/www/run", "/run/")
	var ls []string
	for _, l := range cfg.Listeners {
		ls = append(ls, l.Protocol+" "+l.Address)
	}
	if want := []string{"scgi 127.0.0.1:4000", "fastcgi unix:/run/fcgiwrap.socket"}; !reflect.DeepEqual(ls, want) {
		t.Errorf("listeners = %v, want %v", ls, want)
	}
	for _, n := range []struct{ d, why string }{
		{"include_shell", "not run"},
		{"cgi.execute-x-only", "no junction equivalent"},
		{`$HTTP["url"] =~ "\\.cgi$"`, "not a prefix"},
		{`$HTTP["host"] == "fcgi.example"`, "as if it always held"},
		{"scgi.server", "SCGI applications"},
	} {
		if !hasNote(res, n.d, n.why) {
			t.Errorf("no note %q/%q in\n%s", n.d, n.why, res.Report())
		}
	}
}

// TestLighttpdInterpreters maps cgi.assign interpreters. The output uses
// the CGI runner's interpreters key (issue 15): the config check is its own
// subtest, which fails until that key is on main.
func TestLighttpdInterpreters(t *testing.T) {
	dir := writeTree(t, map[string]string{"l.conf": `server.document-root = "/srv/www"
$HTTP["url"] =~ "^/cgi-bin/" {
	cgi.assign = ( ".pl" => "/usr/bin/perl", ".py" => "/usr/bin/python3", ".sh" => "", "/x" => "/bin/sh" )
}
`})
	res, err := Import("lighttpd", []string{filepath.Join(dir, "l.conf")}, Options{User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	be := res.Config.Backends[0]
	want := []Interpreter{{".pl", []string{"/usr/bin/perl"}}, {".py", []string{"/usr/bin/python3"}}}
	if !reflect.DeepEqual(be.Interpreters, want) {
		t.Errorf("interpreters = %+v", be.Interpreters)
	}
	if !hasNote(res, `cgi.assign "/x"`, "by extension only") {
		t.Errorf("report:\n%s", res.Report())
	}
	if !strings.Contains(res.YAML(""), `    interpreters:
      ".pl": "/usr/bin/perl"
      ".py": "/usr/bin/python3"
`) {
		t.Errorf("yaml:\n%s", res.YAML(""))
	}
	t.Run("config", func(t *testing.T) {
		importOK(t, "lighttpd", []string{filepath.Join(dir, "l.conf")}, Options{User: "nobody"})
	})
}
