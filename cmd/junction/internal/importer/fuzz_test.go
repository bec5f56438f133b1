package importer

import (
	"os"

	"reflect"
	"strings"
	"testing"

	"github.com/junction-gw/junction/config"
)

// addSeedFiles adds the configuration files Debian ships (where installed)
// to a fuzz corpus.
func addSeedFiles(f *testing.F, paths ...string) {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
}

// FuzzParseNginx: parsing never panics, and what parses renders back to
// text that parses to the same directives (decode → encode → decode).
func FuzzParseNginx(f *testing.F) {
	addSeedFiles(f, "/usr/share/doc/fcgiwrap/examples/nginx.conf", "/etc/nginx/fastcgi.conf",
		"/etc/nginx/snippets/fastcgi-php.conf", "/etc/nginx/nginx.conf", "/etc/nginx/sites-available/default")
	f.Add(`location ~ ^/x/(a|b)\.sh$ { fastcgi_param A "b c" 'd\'e'; set $x ${y}z; }`)
	f.Add("a\\;b;\nc \"\\\\\" \"\n\";")
	f.Fuzz(func(t *testing.T, src string) {
		ds, err := parseNginx("f.conf", src)
		if err != nil {
			return
		}
		var w strings.Builder
		renderNginx(ds, "", &w)
		again, err := parseNginx("f.conf", w.String())
		if err != nil {
			t.Fatalf("rendered text does not parse: %v\n%s", err, w.String())
		}
		if !sameDirectives(ds, again) {
			t.Fatalf("round trip changed the directives:\n%s", w.String())
		}
	})
}

func sameDirectives(a, b []*directive) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !reflect.DeepEqual(a[i].Args, b[i].Args) || a[i].HasBlock != b[i].HasBlock || !sameDirectives(a[i].Block, b[i].Block) {
			return false
		}
	}
	return true
}

// FuzzParseApache: parsing never panics; what parses renders back (every
// argument quoted) to the same directives.
func FuzzParseApache(f *testing.F) {
	addSeedFiles(f, "/etc/apache2/apache2.conf", "/etc/apache2/conf-available/serve-cgi-bin.conf",
		"/etc/apache2/conf-available/php8.2-cgi.conf", "/etc/libapache2-mod-jk/httpd-jk.conf")
	f.Add("<VirtualHost *:80>\nScriptAlias \"/a b/\" '/c\\'d/'\nOptions \\\n +ExecCGI\n</VirtualHost>\n")
	f.Fuzz(func(t *testing.T, src string) {
		ds, err := parseApache("f.conf", src)
		if err != nil {
			return
		}
		var w strings.Builder
		renderApache(ds, &w)
		again, err := parseApache("f.conf", w.String())
		if err != nil {
			t.Fatalf("rendered text does not parse: %v\n%s", err, w.String())
		}
		if !sameDirectives(ds, again) {
			t.Fatalf("round trip changed the directives:\n%q\n%q", src, w.String())
		}
	})
}

// renderApache writes directives back as Apache configuration, every
// argument double-quoted.
func renderApache(ds []*directive, w *strings.Builder) {
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	for _, d := range ds {
		var parts []string
		parts = append(parts, q(d.Name))
		for _, a := range d.Args {
			parts = append(parts, q(a))
		}
		if d.HasBlock {
			w.WriteString("<" + strings.Join(parts, " ") + ">\n")
			renderApache(d.Block, w)
			w.WriteString("</" + d.Name + ">\n")
			continue
		}
		w.WriteString(strings.Join(parts, " ") + "\n")
	}
}

// FuzzParseLighttpd: parsing never panics or loops, and the values it
// produces print and re-parse as the same value.
func FuzzParseLighttpd(f *testing.F) {
	addSeedFiles(f, "/etc/lighttpd/lighttpd.conf", "/etc/lighttpd/conf-available/10-cgi.conf",
		"/etc/lighttpd/conf-available/10-fastcgi.conf", "/etc/lighttpd/conf-available/15-fastcgi-php.conf")
	f.Add(`var.a = "x" + "y"` + "\n" + `$HTTP["url"] =~ "^/c/" { cgi.assign = ( ".pl" => "/usr/bin/perl", "" => "" ) } else { x = ( 1, 2, ) }`)
	f.Fuzz(func(t *testing.T, src string) {
		// Depth past the include limit: no file is ever read.
		ss, err := parseLighttpd("f.conf", src, map[string]lval{}, maxIncludeDepth+1)
		if err != nil {
			return
		}
		for _, s := range ss {
			if s.kind != lAssign {
				continue
			}
			text := "x = " + lquote(s.val) + "\n"
			again, err := parseLighttpd("f.conf", text, map[string]lval{}, maxIncludeDepth+1)
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0].val, s.val) {
				t.Fatalf("value %#v printed as %q re-parses as %v (%v)", s.val, text, again, err)
			}
		}
	})
}

// lquote prints a value in lighttpd syntax.
func lquote(v lval) string {
	switch v.kind {
	case lInt:
		return v.String()
	case lArray:
		var parts []string
		for _, e := range v.arr {
			s := lquote(e.val)
			if e.hasKey {
				s = lquote(lval{kind: lString, str: e.key}) + " => " + s
			}
			parts = append(parts, s)
		}
		return "( " + strings.Join(parts, ", ") + " )"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v.str) + `"`
}

// FuzzParseINI: uWSGI ini parsing never panics, and the options it finds
// written back as "key = value" lines parse to the same options.
func FuzzParseINI(f *testing.F) {
	f.Add("[uwsgi]\nplugins = cgi\nsocket = /run/x.sock\ncgi = /cgi-bin=%(base)/cgi\n%d\n")
	f.Fuzz(func(t *testing.T, src string) {
		opts, err := parseINI("/f.ini", src, "uwsgi", nil)
		if err != nil {
			return
		}
		var w strings.Builder
		w.WriteString("[uwsgi]\n")
		for _, o := range opts {
			w.WriteString(o.key + " = " + strings.ReplaceAll(o.value, "%", "%%") + "\n")
		}
		again, err := parseINI("/f.ini", w.String(), "uwsgi", nil)
		if err != nil || len(again) != len(opts) {
			t.Fatalf("re-parse: %v, %d options, want %d\n%s", err, len(again), len(opts), w.String())
		}
		for i := range opts {
			if again[i].key != opts[i].key || again[i].value != opts[i].value {
				t.Fatalf("option %d: %q=%q became %q=%q", i, opts[i].key, opts[i].value, again[i].key, again[i].value)
			}
		}
	})
}

// FuzzParseProperties: workers.properties parsing never panics, and the
// properties written back parse to the same ones.
func FuzzParseProperties(f *testing.F) {
	addSeedFiles(f, "/etc/libapache2-mod-jk/workers.properties")
	f.Add("worker.list=a,\\\n b\nworker.a.port=8009\nps=/\nx=$(ps)y\n")
	f.Fuzz(func(t *testing.T, src string) {
		ps, err := parseProperties("f", src, map[string]string{})
		if err != nil {
			return
		}
		var w strings.Builder
		for _, p := range ps {
			w.WriteString(p.key + "=" + p.value + "\n")
		}
		again, err := parseProperties("f", w.String(), map[string]string{})
		if err != nil || len(again) != len(ps) {
			t.Fatalf("re-parse: %v\n%s", err, w.String())
		}
		for i := range ps {
			if again[i].key != ps[i].key {
				t.Fatalf("property %d: key %q became %q", i, ps[i].key, again[i].key)
			}
		}
	})
}

// FuzzImport: no input file makes a mapper panic, and whatever maps
// renders as YAML junction's loader can read (values never break out of
// their quotes).
func FuzzImport(f *testing.F) {
	f.Add(uint8(0), "location /cgi-bin/ { root /srv; fastcgi_pass unix:/run/fcgiwrap.socket; }")
	f.Add(uint8(1), "ScriptAlias /cgi-bin/ /srv/cgi/\nProxyPass /b/ balancer://x/\n<Proxy balancer://x>\nBalancerMember http://h:1 route=a\n</Proxy>\n")
	f.Add(uint8(2), `$HTTP["url"] =~ "^/c/" { alias.url += ( "/c/" => "/srv/" ) cgi.assign = ( ".py" => "/usr/bin/python3" ) }`)
	f.Add(uint8(3), "[uwsgi]\ncgi = /c=/srv\nsocket = /run/u.sock\nuid = nobody\n")
	f.Add(uint8(4), "worker.w.type=ajp13\n/app/*=w\n")
	f.Fuzz(func(t *testing.T, k uint8, src string) {
		kind := Kinds[int(k)%len(Kinds)]
		name := "in.conf"
		switch kind {
		case "uwsgi":
			name = "in.ini"
		case "modjk":
			name = "uriworkermap.properties"
		}
		if strings.Contains(src, "include") || strings.Contains(src, "Include") || strings.Contains(src, "ini") || strings.Contains(src, "JkWorkersFile") {
			return // no reading of other files from fuzz input
		}
		p := t.TempDir() + "/" + name
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Import(kind, []string{p}, Options{User: "nobody"})
		if err != nil {
			return
		}
		// Values may be invalid for junction (an address nginx accepted and
		// junction does not): check names them. The file itself must
		// decode, with every key one junction knows.
		if _, err := config.Parse([]byte(res.YAML("fuzz")), "yaml"); err != nil && (strings.Contains(err.Error(), "yaml: ") || strings.Contains(err.Error(), "unknown key") && !strings.Contains(err.Error(), "interpreters")) {
			t.Fatalf("%s: the YAML does not decode: %v\n%s", kind, err, res.YAML("fuzz"))
		}
	})
}
