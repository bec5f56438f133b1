package importer

import (
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseINI(t *testing.T) {
	src := `; comment
# comment
[uwsgi]
base = /srv/app
cgi = /cgi-bin=%(base)/cgi
logto = %dlog/%n.log
master
pct = 100%%
[other]
cgi = /ignored
`
	opts, err := parseINI("/etc/uwsgi/app.ini", src, "uwsgi", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range opts {
		got = append(got, o.key+"="+o.value)
	}
	want := []string{"base=/srv/app", "cgi=/cgi-bin=/srv/app/cgi", "logto=/etc/uwsgi/log/app.log", "master=true", "pct=100%"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options = %q, want %q", got, want)
	}
	if opts[1].line != 5 {
		t.Errorf("line = %d", opts[1].line)
	}
	for _, bad := range []string{"[uwsgi\n", "[uwsgi]\n= x\n"} {
		if _, err := parseINI("b.ini", bad, "uwsgi", nil); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestUWSGIMapping(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"app.ini": `[uwsgi]
plugins = cgi
ini = common.ini
socket = /run/uwsgi/cgi.sock
chmod-socket = 660
chown-socket = www-data:www-data
cgi = /cgi-bin=/srv/cgi
cgi = /report=/srv/bin/report.cgi
cgi-allowed-ext = .sh
cgi-timeout = 30
processes = 4
threads = 2
env = APP_MODE=prod
harakiri = 60
`,
		"common.ini": `[uwsgi]
uid = www-data
gid = www-data
master = true
`,
	})
	res, cfg := importOK(t, "uwsgi", []string{filepath.Join(dir, "app.ini")}, Options{Listen: "127.0.0.1:4200"})
	if cfg.User != "www-data" || cfg.Group != "www-data" {
		t.Errorf("identity %q/%q from the included ini", cfg.User, cfg.Group)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Protocol != "scgi" || cfg.Listeners[0].Address != "127.0.0.1:4200" {
		t.Errorf("listeners = %+v (uwsgi protocol: a new SCGI listener)", cfg.Listeners)
	}
	be := cfg.Backends["cgi-bin"]
	if be == nil || be.Root != "/srv/cgi" || be.URLPrefix != "/cgi-bin/" || be.Timeout != 30*time.Second || be.MaxConcurrent != 8 || be.SetEnv["APP_MODE"] != "prod" {
		t.Errorf("cgi-bin = %+v", be)
	}
	if rp := cfg.Backends["report"]; rp == nil || rp.Script != "/srv/bin/report.cgi" || rp.URLPrefix != "/report" {
		t.Errorf("report = %+v", rp)
	}
	for _, n := range []struct{ d, why string }{
		{"socket = /run/uwsgi/cgi.sock", "uwsgi protocol"},
		{"cgi-allowed-ext", "not needed"},
		{"harakiri", "no junction equivalent"},
		{"master", "supervises"},
	} {
		if !hasNote(res, n.d, n.why) {
			t.Errorf("no note %q/%q in\n%s", n.d, n.why, res.Report())
		}
	}
	if !strings.Contains(res.Snippets[0].Text, "location /cgi-bin/ {") || !strings.Contains(res.Snippets[0].Text, "scgi_pass 127.0.0.1:4200;") {
		t.Errorf("snippet:\n%s", res.Snippets[0].Text)
	}
}

func TestUWSGIKeepsSCGISocket(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.ini": `[uwsgi]
plugin = cgi
scgi-socket = /run/uwsgi/scgi.sock
chmod-socket = 666
fastcgi-socket = 127.0.0.1:9100
http-socket = :8090
scgi-modifier1 = 9
cgi = /usr/lib/cgi-bin
uid = nobody
`})
	res, cfg := importOK(t, "uwsgi", []string{filepath.Join(dir, "a.ini")}, Options{})
	var ls []string
	for _, l := range cfg.Listeners {
		ls = append(ls, l.Protocol+" "+l.Address+" "+l.SocketMode.String())
	}
	want := []string{"scgi unix:/run/uwsgi/scgi.sock 0666", "fastcgi 127.0.0.1:9100 0000", "http 127.0.0.1:8090 0000"}
	if !reflect.DeepEqual(ls, want) {
		t.Errorf("listeners = %q, want %q", ls, want)
	}
	if be := cfg.Backends["scripts"]; be == nil || be.Root != "/usr/lib/cgi-bin" || be.URLPrefix != "/" || cfg.Listeners[0].Backend != "scripts" {
		t.Errorf("backends = %+v, listeners = %+v", cfg.Backends, cfg.Listeners)
	}
	if !hasNote(res, "scgi-modifier1", "not needed") {
		t.Errorf("report:\n%s", res.Report())
	}
}

// TestUWSGIHelpers maps cgi-helper to interpreters; its config check is a
// subtest of its own (the interpreters key of issue 15).
func TestUWSGIHelpers(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.ini": `[uwsgi]
cgi = /cgi-bin=/srv/cgi
cgi-helper = .py=/usr/bin/python3 -u
cgi-helper = .sh=sh
cgi-helper = .rb=no-such-interpreter-here
cgi-helper = bad
`})
	res, err := Import("uwsgi", []string{filepath.Join(dir, "a.ini")}, Options{User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	// A bare command name is looked up on PATH, as uWSGI does.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	want := []Interpreter{{".py", []string{"/usr/bin/python3", "-u"}}, {".sh", []string{sh}}}
	if got := res.Config.Backends[0].Interpreters; !reflect.DeepEqual(got, want) {
		t.Errorf("interpreters = %+v", got)
	}
	if !hasNote(res, "no-such-interpreter-here", "not on PATH") {
		t.Errorf("report:\n%s", res.Report())
	}
	if !strings.Contains(res.YAML(""), `".py": ["/usr/bin/python3", "-u"]`) || !hasNote(res, "cgi-helper = bad", ".EXT=COMMAND") {
		t.Errorf("yaml:\n%s\nreport:\n%s", res.YAML(""), res.Report())
	}
	t.Run("config", func(t *testing.T) {
		importOK(t, "uwsgi", []string{filepath.Join(dir, "a.ini")}, Options{User: "nobody"})
	})
}
