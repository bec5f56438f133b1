package importer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseNginx(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // rendered
	}{
		{"simple", "a b c;", `"a" "b" "c";` + "\n"},
		{"block", "http { server { listen 80; } }", "\"http\" {\n    \"server\" {\n        \"listen\" \"80\";\n    }\n}\n"},
		{"quotes", `x "a b" 'c;d' "e\"f" 'g\'h';`, `"x" "a b" "c;d" "e\"f" "g'h";` + "\n"},
		{"comment", "# top\nx 1; # tail\n# end", `"x" "1";` + "\n"},
		{"variable braces", `set $a ${b}c;`, `"set" "$a" "${b}c";` + "\n"},
		{"regex location", `location ~ ^/x/(a|b)\.sh$ { y; }`, "\"location\" \"~\" \"^/x/(a|b)\\\\.sh$\" {\n    \"y\";\n}\n"},
		{"quoted brace", `return 200 "{";`, `"return" "200" "{";` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := parseNginx("t.conf", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			var w strings.Builder
			renderNginx(ds, "", &w)
			if w.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", w.String(), tt.want)
			}
		})
	}
	for _, bad := range []string{"x", "x {", "}", "x; }", `x "open;`, "{ }", "x ${y;", ";"} {
		if _, err := parseNginx("t.conf", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	ds, _ := parseNginx("t.conf", "a;\n\nb {\n  c;\n}\n")
	if ds[0].Line != 1 || ds[1].Line != 3 || ds[1].Block[0].Line != 4 {
		t.Errorf("lines: %d %d %d", ds[0].Line, ds[1].Line, ds[1].Block[0].Line)
	}
}

// TestNginxFcgiwrapDebian imports the example Debian's fcgiwrap package
// ships for nginx: junction takes over fcgiwrap's socket.
func TestNginxFcgiwrapDebian(t *testing.T) {
	f := needFile(t, "/usr/share/doc/fcgiwrap/examples/nginx.conf", "fcgiwrap")
	res, cfg := importOK(t, "nginx", []string{f}, Options{User: "www-data"})
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Protocol != "fastcgi" || cfg.Listeners[0].Address != "unix:/run/fcgiwrap.socket" {
		t.Fatalf("listeners = %+v, want fastcgi on fcgiwrap's socket", cfg.Listeners)
	}
	// junction binds as root: the socket must be the scripts' user's, as
	// fcgiwrap.socket is, or nginx's workers could not connect.
	if l := cfg.Listeners[0]; l.SocketOwner != "www-data" || l.SocketMode.String() != "0660" {
		t.Errorf("socket owner/mode = %q/%s", l.SocketOwner, l.SocketMode)
	}
	be := cfg.Backends["cgi-bin"]
	if be == nil || be.Root != "/usr/lib/cgi-bin" || be.URLPrefix != "/cgi-bin/" {
		t.Fatalf("backend = %+v", be)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Prefix != "/cgi-bin/" {
		t.Errorf("routes = %+v", cfg.Routes)
	}
	if len(res.Snippets) != 1 || !strings.Contains(res.Snippets[0].Text, "fastcgi_pass unix:/run/fcgiwrap.socket;") {
		t.Errorf("snippets = %+v", res.Snippets)
	}
}

// TestNginxPHPFPMDebian imports Debian's default-site PHP location, which
// includes snippets/fastcgi-php.conf (itself including fastcgi.conf).
func TestNginxPHPFPMDebian(t *testing.T) {
	needFile(t, "/etc/nginx/snippets/fastcgi-php.conf", "nginx-common")
	dir := writeTree(t, map[string]string{"site": `server {
	listen 80;
	root /var/www/html;
	location ~ \.php$ {
		include snippets/fastcgi-php.conf;
		fastcgi_pass unix:/run/php/php8.2-fpm.sock;
		fastcgi_param APP_ENV production;
		fastcgi_param X_TRACE $request_id;
		fastcgi_read_timeout 300;
	}
}
`})
	res, cfg := importOK(t, "nginx", []string{filepath.Join(dir, "site")}, Options{User: "www-data", Listen: "127.0.0.1:4100"})
	be := cfg.Backends["php"]
	if be == nil || be.Type != "fastcgi" || be.Root != "/var/www/html" || be.Timeout != 300*time.Second {
		t.Fatalf("backend = %+v", be)
	}
	if len(be.Instances) != 1 || be.Instances[0].Address != "unix:/run/php/php8.2-fpm.sock" {
		t.Errorf("instances = %+v", be.Instances)
	}
	if be.SetEnv["APP_ENV"] != "production" {
		t.Errorf("set_env = %v", be.SetEnv)
	}
	if cfg.Listeners[0].Protocol != "scgi" || cfg.Listeners[0].Address != "127.0.0.1:4100" || cfg.Listeners[0].Backend != "php" {
		t.Errorf("listeners = %+v", cfg.Listeners)
	}
	for _, n := range []struct{ d, why string }{
		{"location ~ \\.php$", "regex location"},
		{"fastcgi_split_path_info", "not needed"},
		{"fastcgi_param X_TRACE", "scgi_param"},
	} {
		if !hasNote(res, n.d, n.why) {
			t.Errorf("no note %q/%q in\n%s", n.d, n.why, res.Report())
		}
	}
	if !strings.Contains(res.Snippets[0].Text, "location ~ \\.php$ {") || !strings.Contains(res.Snippets[0].Text, "scgi_pass 127.0.0.1:4100;") {
		t.Errorf("snippet:\n%s", res.Snippets[0].Text)
	}
}

func TestNginxMapping(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"nginx.conf": `http {
    include conf.d/*.conf;
}
`,
		"conf.d/a.conf": `upstream fpm {
    server 127.0.0.1:9001 weight=3;
    server 127.0.0.1:9002;
    server 127.0.0.1:9003 backup;
    keepalive 8;
}
server {
    root /srv/www;
    fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
    location /app/ {
        fastcgi_pass fpm;
        fastcgi_param SCRIPT_FILENAME /srv/php$fastcgi_script_name;
    }
    location /scripts/ {
        alias /srv/cgi/;
        fastcgi_pass 127.0.0.1:9000;
        fastcgi_param SCRIPT_FILENAME $request_filename;
    }
    location = /status { scgi_pass 127.0.0.1:4001; }
    location /py/ { uwsgi_pass unix:/run/uwsgi/app.sock; }
    location /legacy/ {
        scgi_pass unix:/run/legacy.sock;
        scgi_param SCRIPT_FILENAME /srv/legacy$uri;
    }
    location /dr/ {
        fastcgi_pass unix:/run/fcgiwrap-2.socket;
        fastcgi_param DOCUMENT_ROOT /srv/docroot;
    }
    location /odd/ {
        fastcgi_pass unix:/run/fcgiwrap.socket;
        fastcgi_param SCRIPT_FILENAME $host$uri;
    }
}
`,
	})
	res, cfg := importOK(t, "nginx", []string{filepath.Join(dir, "nginx.conf")}, Options{User: "nobody"})
	app := cfg.Backends["app"]
	if app == nil || app.Type != "fastcgi" || app.Root != "/srv/php" {
		t.Fatalf("app = %+v", app)
	}
	var got []string
	for _, in := range app.Instances {
		got = append(got, in.Address+"/"+string(rune('0'+in.Weight)))
	}
	if want := []string{"127.0.0.1:9001/3", "127.0.0.1:9002/0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("instances = %v, want %v (backup left out)", got, want)
	}
	sc := cfg.Backends["scripts"]
	if sc == nil || sc.Type != "cgi" || sc.Root != "/srv/cgi" || sc.URLPrefix != "/scripts/" {
		t.Errorf("scripts = %+v", sc)
	}
	lg := cfg.Backends["legacy"]
	if lg == nil || lg.Root != "/srv/legacy/legacy" || lg.URLPrefix != "/legacy/" {
		t.Errorf("legacy = %+v", lg)
	}
	if dr := cfg.Backends["dr"]; dr == nil || dr.Root != "/srv/docroot/dr" {
		t.Errorf("dr = %+v (fcgiwrap finds DOCUMENT_ROOT + SCRIPT_NAME)", dr)
	}
	var ls []string
	for _, l := range cfg.Listeners {
		ls = append(ls, l.Protocol+" "+l.Address)
	}
	if want := []string{"scgi 127.0.0.1:4000", "fastcgi 127.0.0.1:9000", "scgi unix:/run/legacy.sock", "fastcgi unix:/run/fcgiwrap-2.socket"}; !reflect.DeepEqual(ls, want) {
		t.Errorf("listeners = %v, want %v", ls, want)
	}
	for _, n := range []struct{ d, why string }{
		{"server 127.0.0.1:9003 backup", "backup"},
		{"scgi_pass", "no scgi_param SCRIPT_FILENAME"},
		{"uwsgi_pass", "junction import uwsgi"},
		{"fastcgi_param SCRIPT_FILENAME", "cannot tell where the scripts live"},
	} {
		if !hasNote(res, n.d, n.why) {
			t.Errorf("no note %q/%q in\n%s", n.d, n.why, res.Report())
		}
	}
	for _, n := range res.Notes {
		if !strings.HasPrefix(n.File, dir) || n.Line <= 0 {
			t.Errorf("note without file:line: %v", n)
		}
	}
}

func TestRegexPrefix(t *testing.T) {
	for re, want := range map[string]string{
		`^/cgi-bin/`:                "/cgi-bin/",
		`^/cgi-bin/(stream|x)\.sh$`: "/cgi-bin/",
		`\.php$`:                    "/",
		`^/a/b\.c/d`:                "/a/b.c/",
		`^/x?`:                      "/",
		`^/app`:                     "/",
		`^/~user/`:                  "/~user/",
	} {
		if got := regexPrefix(re); got != want {
			t.Errorf("regexPrefix(%q) = %q, want %q", re, got, want)
		}
	}
}

func TestNginxIncludeRelative(t *testing.T) {
	// include resolves against the including file's directory first, then
	// the first file's (nginx's prefix, where Debian's snippets/ live).
	dir := writeTree(t, map[string]string{
		"nginx.conf":       "include sites/site.conf;\n",
		"sites/site.conf":  "server { location /cgi-bin/ { include snippets/gw.conf; include local.conf; } }\n",
		"snippets/gw.conf": "fastcgi_pass unix:/run/fcgiwrap.socket;\n",
		"sites/local.conf": "root /srv;\n",
	})
	_, cfg := importOK(t, "nginx", []string{filepath.Join(dir, "nginx.conf")}, Options{User: "nobody"})
	if be := cfg.Backends["cgi-bin"]; be == nil || be.Root != "/srv/cgi-bin" {
		t.Fatalf("backends = %+v", cfg.Backends)
	}
	os.Remove(filepath.Join(dir, "snippets/gw.conf"))
	if _, err := Import("nginx", []string{filepath.Join(dir, "nginx.conf")}, Options{}); err == nil || !strings.Contains(err.Error(), "site.conf:1: include") {
		t.Errorf("missing include: %v", err)
	}
}
