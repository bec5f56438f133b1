package integration

// Tests of `junction import`: each imported configuration is served and
// must answer the requests the original setup answered, the same way
// (status, Content-Type, body), with the real peers on one side and
// junction from the imported file on the other:
//
//	TestImportFcgiwrapNginx  nginx → fcgiwrap (Debian's example location)  ⇒ nginx unchanged → junction on fcgiwrap's socket
//	TestImportUWSGI          nginx uwsgi_pass → uWSGI's CGI plugin         ⇒ nginx (the snippet) scgi_pass → junction
//	TestImportApache         Apache mod_cgi (Debian's serve-cgi-bin.conf)  ⇒ nginx (the snippet) scgi_pass → junction
//	TestImportLighttpd       lighttpd mod_cgi (Debian's 10-cgi.conf)       ⇒ lighttpd (the snippet) mod_scgi → junction
//	TestImportModJK          workers.properties + JkMount: layout only (routes and weights)
//
// The first three are the README's worked migrations. Subtests named
// "interpreters" import configurations using the CGI runner's
// interpreters key (issue 15); they need that key in junction's config.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/config"
)

const (
	spawnFCGIPath = "/usr/bin/spawn-fcgi"
	fcgiwrapPath  = "/usr/sbin/fcgiwrap"
	uwsgiPath     = "/usr/bin/uwsgi"
)

// importResult is one run of `junction import`.
type importResult struct {
	YAML, Stderr string
	Code         int
}

// importRun runs `junction import args...`.
func importRun(t *testing.T, args ...string) importResult {
	t.Helper()
	cmd := junctionCommand(t, append([]string{"import"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("junction import: %v", err)
	}
	t.Logf("junction import %s → exit %d\n---- stdout ----\n%s---- stderr ----\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return importResult{YAML: out.String(), Stderr: errb.String(), Code: code}
}

// importOK runs the import, wants exit 0 and a file `junction check`
// accepts, and returns the result.
func importOK(t *testing.T, args ...string) importResult {
	t.Helper()
	r := importRun(t, args...)
	if r.Code != 0 {
		t.Fatalf("junction import exited %d:\n%s", r.Code, r.Stderr)
	}
	importCheck(t, r.YAML)
	return r
}

// importCheck runs the real `junction check` on yaml.
func importCheck(t *testing.T, yaml string) {
	t.Helper()
	f := writeFile(t, t.TempDir(), "imported.yaml", yaml)
	out, err := junctionCommand(t, "check", "-c", f).CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "ok\n") {
		t.Fatalf("junction check of the imported file: %v\n%s\n---- file ----\n%s", err, out, yaml)
	}
}

// importSnippet returns the front-server snippet for server from the
// import's standard error.
func importSnippet(t *testing.T, stderr, server string) string {
	t.Helper()
	var b strings.Builder
	in := false
	for _, line := range strings.SplitAfter(stderr, "\n") {
		if strings.HasPrefix(line, "# ---- ") {
			in = strings.HasPrefix(line, "# ---- "+server+":")
			continue
		}
		if in {
			b.WriteString(line)
		}
	}
	if b.Len() == 0 {
		t.Fatalf("no %s snippet in:\n%s", server, stderr)
	}
	return b.String()
}

// importTemplate reads testdata/import/name with @KEY@ replaced.
func importTemplate(t *testing.T, name string, kv ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "import", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "@"+kv[i]+"@", kv[i+1])
	}
	return s
}

// importSite is newSite plus the import tests' own scripts.
func importSite(t *testing.T) *site {
	t.Helper()
	s := newSite(t)
	copyDir(t, filepath.Join("testdata", "import", "cgi-bin"), s.Root)
	return s
}

// importProbe is a request both setups answer.
type importProbe struct{ method, path, body string }

var importProbes = []importProbe{
	{"GET", "/cgi-bin/hello.sh?x=1", ""},
	{"GET", "/cgi-bin/nostatus.pl", ""},
	{"GET", "/cgi-bin/redirect302.sh", ""},
	{"GET", "/cgi-bin/hello.py", ""},
	{"POST", "/cgi-bin/post-sha256.py", "name=junction&kind=import"},
}

// importAnswer is what matters of a response for the comparison.
type importAnswer struct {
	Status      int
	ContentType string
	Body        string
}

func importAsk(t *testing.T, base string, probes []importProbe) []importAnswer {
	t.Helper()
	var out []importAnswer
	for _, p := range probes {
		req, err := http.NewRequest(p.method, base+p.path, strings.NewReader(p.body))
		if err != nil {
			t.Fatal(err)
		}
		if p.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		r := httpDo(t, req)
		out = append(out, importAnswer{Status: r.Status, ContentType: r.Header.Get("Content-Type"), Body: r.Body})
	}
	return out
}

// importCompare fails when the answers differ, and when the original
// setup failed (a comparison of two error pages proves nothing).
func importCompare(t *testing.T, probes []importProbe, before, after []importAnswer) {
	t.Helper()
	for i, p := range probes {
		b, a := before[i], after[i]
		if b.Status >= 400 {
			t.Errorf("%s %s: the original setup answered %d %q", p.method, p.path, b.Status, b.Body)
		}
		if b != a {
			t.Errorf("%s %s:\n  original: %d %q %q\n  junction: %d %q %q", p.method, p.path, b.Status, b.ContentType, b.Body, a.Status, a.ContentType, a.Body)
		}
	}
}

// importStop stops a peer started with startProcess (SIGTERM to its
// group) and waits for it, as the migration does before junction starts.
func importStop(t *testing.T, p *proc) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not stop", p.name)
	}
}

// TestImportFcgiwrapNginx walks the "fcgiwrap → junction with nginx"
// migration: Debian's nginx example for fcgiwrap is served with fcgiwrap,
// imported, then fcgiwrap is stopped and junction serves its socket with
// nginx unchanged.
func TestImportFcgiwrapNginx(t *testing.T) {
	t.Parallel()
	const example = "/usr/share/doc/fcgiwrap/examples/nginx.conf"
	needBin(t, example, "fcgiwrap")
	needBin(t, fcgiwrapPath, "fcgiwrap")
	needBin(t, spawnFCGIPath, "spawn-fcgi")
	s := importSite(t)
	sock := filepath.Join(openTempDir(t), "fcgiwrap.socket")
	// Debian's file with its paths moved into the test: /usr/lib becomes
	// the site (whose cgi-bin/ holds the scripts), /run the temp dir.
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(b), "unix:/run/fcgiwrap.socket", "unix:"+sock)
	conf = strings.ReplaceAll(conf, "/usr/lib", s.Dir)
	confFile := writeFile(t, t.TempDir(), "fcgiwrap-nginx.conf", conf)

	fw := startProcess(t, spawnFCGIPath, []string{"-n", "-s", sock, "-M", "0666", "--", fcgiwrapPath, "-c", "2"})
	waitListening(t, fw, 10*time.Second, "unix:"+sock)
	addr := freeAddr(t)
	startNginx(t, fmt.Sprintf("    server { listen %s; include %s; }\n", addr, confFile))
	before := importAsk(t, "http://"+addr, importProbes)

	r := importOK(t, "nginx", "--user", "nobody", confFile)
	if !strings.Contains(r.YAML, "protocol: fastcgi\n    address: \"unix:"+sock+"\"") {
		t.Errorf("the listener does not take over fcgiwrap's socket:\n%s", r.YAML)
	}
	importStop(t, fw)
	startJunction(t, r.YAML, "unix:"+sock)
	after := importAsk(t, "http://"+addr, importProbes)
	importCompare(t, importProbes, before, after)
}

// TestImportUWSGI walks the "uWSGI CGI → junction" migration: nginx passes
// to uWSGI's CGI plugin over the uwsgi protocol; junction, which does not
// speak it, gets an SCGI listener and nginx the snippet.
func TestImportUWSGI(t *testing.T) {
	t.Parallel()
	needBin(t, uwsgiPath, "uwsgi-core")
	s := importSite(t)
	dir := openTempDir(t)
	// uWSGI binds its socket after switching to uid nobody.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "uwsgi.sock")
	ini := writeFile(t, dir, "cgi.ini", importTemplate(t, "uwsgi-cgi.ini", "SOCK", sock, "ROOT", s.Root))
	u := startProcess(t, uwsgiPath, []string{"--ini", ini})
	waitListening(t, u, 10*time.Second, "unix:"+sock)

	listen := freeAddr(t)
	r := importOK(t, "uwsgi", "--listen", listen, ini)
	for _, want := range []string{"user: \"nobody\"", "group: \"nogroup\"", "GREETING: \"hello from uwsgi\"", "max_concurrent: 4", "timeout: 30s"} {
		if !strings.Contains(r.YAML, want) {
			t.Errorf("imported file lacks %q", want)
		}
	}
	startJunction(t, r.YAML, listen)
	old, migrated := freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        location /cgi-bin/ { include /etc/nginx/uwsgi_params; uwsgi_modifier1 9; uwsgi_pass unix:%s; }
    }
    server {
        listen %s;
%s
    }
`, old, sock, migrated, importSnippet(t, r.Stderr, "nginx")))
	probes := append(importProbes, importProbe{"GET", "/cgi-bin/greeting.sh", ""})
	importCompare(t, probes, importAsk(t, "http://"+old, probes), importAsk(t, "http://"+migrated, probes))
}

// TestImportApache walks the "Apache mod_cgi → nginx + junction"
// migration, starting from Debian's serve-cgi-bin.conf.
func TestImportApache(t *testing.T) {
	t.Parallel()
	const shipped = "/etc/apache2/conf-available/serve-cgi-bin.conf"
	needBin(t, shipped, "apache2")
	s := importSite(t)
	confDir := openTempDir(t)
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, confDir, "serve-cgi-bin.conf", strings.ReplaceAll(string(b), "/usr/lib/cgi-bin", s.Root))
	site := writeFile(t, confDir, "site.conf", importTemplate(t, "apache-site.conf", "CONFDIR", confDir))
	old := freeAddr(t)
	startApache(t, []string{"alias", "cgi", "env"}, fmt.Sprintf("Listen %s\nInclude %s\n", old, site))

	listen := freeAddr(t)
	r := importOK(t, "apache", "--listen", listen, site)
	for _, want := range []string{"user: \"nobody\"", "group: \"nogroup\"", "GREETING: \"hello from apache\""} {
		if !strings.Contains(r.YAML, want) {
			t.Errorf("imported file lacks %q", want)
		}
	}
	startJunction(t, r.YAML, listen)
	migrated := freeAddr(t)
	startNginx(t, fmt.Sprintf("    server {\n        listen %s;\n%s    }\n", migrated, importSnippet(t, r.Stderr, "nginx")))
	probes := append(importProbes, importProbe{"GET", "/cgi-bin/greeting.sh", ""})
	importCompare(t, probes, importAsk(t, "http://"+old, probes), importAsk(t, "http://"+migrated, probes))

	// Action + AddHandler import into the CGI runner's interpreters (issue
	// 15): php-cgi runs .php files that have no exec bit.
	t.Run("interpreters", func(t *testing.T) {
		needBin(t, "/usr/bin/php-cgi", "php-cgi")
		php := filepath.Join(s.Dir, "php")
		copyDir(t, filepath.Join("testdata", "import", "php"), php)
		if err := os.Symlink("/usr/bin/php-cgi", filepath.Join(s.Root, "php-cgi")); err != nil {
			t.Fatal(err)
		}
		conf := writeFile(t, confDir, "action.conf", importTemplate(t, "apache-action.conf", "ROOT", s.Root, "PHP", php))
		old := freeAddr(t)
		startApache(t, []string{"alias", "cgi", "mime", "actions"}, fmt.Sprintf("Listen %s\nInclude %s\n", old, conf))
		listen := freeAddr(t)
		r := importOK(t, "apache", "--listen", listen, conf)
		if !strings.Contains(r.YAML, `".php": "`+filepath.Join(s.Root, "php-cgi")+`"`) {
			t.Errorf("no .php interpreter in:\n%s", r.YAML)
		}
		startJunction(t, r.YAML, listen)
		migrated := freeAddr(t)
		startNginx(t, fmt.Sprintf("    server {\n        listen %s;\n%s    }\n", migrated, importSnippet(t, r.Stderr, "nginx")))
		probes := []importProbe{{"GET", "/php/hello.php?a=b", ""}, {"POST", "/php/hello.php", "x=1"}, {"GET", "/cgi-bin/hello.sh", ""}}
		importCompare(t, probes, importAsk(t, "http://"+old, probes), importAsk(t, "http://"+migrated, probes))
	})
}

// TestImportLighttpd imports Debian's 10-cgi.conf (with setenv) and serves
// it through lighttpd's mod_scgi and junction.
func TestImportLighttpd(t *testing.T) {
	t.Parallel()
	const shipped = "/etc/lighttpd/conf-available/10-cgi.conf"
	needBin(t, shipped, "lighttpd")
	s := importSite(t)
	confDir := openTempDir(t)
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, confDir, "10-cgi.conf", strings.ReplaceAll(string(b), "/usr/lib/cgi-bin", s.Root))
	site := writeFile(t, confDir, "site.conf", importTemplate(t, "lighttpd-site.conf", "CONFDIR", confDir))
	oldPort, newPort := freePort(t), freePort(t)
	startLighttpd(t, fmt.Sprintf("server.bind = \"127.0.0.1\"\nserver.port = %d\ninclude %q\n", oldPort, site), fmt.Sprintf("127.0.0.1:%d", oldPort))

	listen := freeAddr(t)
	r := importOK(t, "lighttpd", "--user", "nobody", "--listen", listen, site)
	startJunction(t, r.YAML, listen)
	startLighttpd(t, fmt.Sprintf("server.bind = \"127.0.0.1\"\nserver.port = %d\n%s", newPort, importSnippet(t, r.Stderr, "lighttpd")), fmt.Sprintf("127.0.0.1:%d", newPort))
	probes := append(importProbes, importProbe{"GET", "/cgi-bin/greeting.sh", ""})
	importCompare(t, probes, importAsk(t, fmt.Sprintf("http://127.0.0.1:%d", oldPort), probes), importAsk(t, fmt.Sprintf("http://127.0.0.1:%d", newPort), probes))

	// cgi.assign with an interpreter imports into the CGI runner's
	// interpreters (issue 15): a .py script without an exec bit.
	t.Run("interpreters", func(t *testing.T) {
		conf := writeFile(t, confDir, "interp.conf", importTemplate(t, "lighttpd-interp.conf", "ROOT", s.Root))
		oldPort, newPort := freePort(t), freePort(t)
		startLighttpd(t, fmt.Sprintf("server.bind = \"127.0.0.1\"\nserver.port = %d\ninclude %q\n", oldPort, conf), fmt.Sprintf("127.0.0.1:%d", oldPort))
		listen := freeAddr(t)
		r := importOK(t, "lighttpd", "--user", "nobody", "--listen", listen, conf)
		startJunction(t, r.YAML, listen)
		startLighttpd(t, fmt.Sprintf("server.bind = \"127.0.0.1\"\nserver.port = %d\n%s", newPort, importSnippet(t, r.Stderr, "lighttpd")), fmt.Sprintf("127.0.0.1:%d", newPort))
		probes := []importProbe{{"GET", "/cgi-bin/hello-interp.py?q=1", ""}, {"GET", "/cgi-bin/hello.sh", ""}}
		importCompare(t, probes, importAsk(t, fmt.Sprintf("http://127.0.0.1:%d", oldPort), probes), importAsk(t, fmt.Sprintf("http://127.0.0.1:%d", newPort), probes))
	})
}

// TestImportModJK checks the layout an lb worker imports into: one pool
// with the members' routes and weights (no traffic: the members are AJP
// connectors, junction's pools speak HTTP).
func TestImportModJK(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"modjk-workers.properties", "modjk-jk.conf"} {
		writeFile(t, dir, f, importTemplate(t, f))
	}
	r := importOK(t, "modjk", "--user", "nobody", filepath.Join(dir, "modjk-jk.conf"))
	cfg, err := config.Parse([]byte(r.YAML), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	shop := cfg.Backends["shop"]
	if shop == nil || shop.Type != "http" || shop.Balance != "weighted_round_robin" || len(shop.Instances) != 2 {
		t.Fatalf("shop = %+v", shop)
	}
	for i, want := range []config.Instance{{Address: "127.0.0.1:8009", Route: "tc1", Weight: 3}, {Address: "127.0.0.1:8019", Route: "tc2", Weight: 1}} {
		got := shop.Instances[i]
		if got.Address != want.Address || got.Route != want.Route || got.Weight != want.Weight {
			t.Errorf("instance %d = %+v, want %+v", i, got, want)
		}
	}
	var routes []string
	for _, rt := range cfg.Routes {
		routes = append(routes, rt.Prefix+"="+rt.Backend)
	}
	if strings.Join(routes, " ") != "/shop/=shop /cart=shop" {
		t.Errorf("routes = %v", routes)
	}
	if !strings.Contains(r.Stderr, "worker.jkstatus.type=status") || !strings.Contains(r.Stderr, "HTTP connector") {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
	if !strings.Contains(importSnippet(t, r.Stderr, "apache"), "ProxyPass /shop/ scgi://127.0.0.1:4000/shop/") {
		t.Errorf("apache snippet:\n%s", r.Stderr)
	}
}

// TestImportExitCodes: 0 with a config, 1 when the input cannot be read or
// nothing maps, 2 for an unknown KIND or bad usage.
func TestImportExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.conf", "server { listen 80; location / { return 200; } }\n")
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "KIND is required"},
		{[]string{"nginx"}, 2, "FILE is required"},
		{[]string{"caddy", empty}, 2, `unknown kind "caddy"`},
		{[]string{"--bogus", "nginx", empty}, 2, "flag provided but not defined"},
		{[]string{"nginx", filepath.Join(dir, "missing.conf")}, 1, "no such file"},
		{[]string{"nginx", empty}, 1, "nothing in " + empty + " could be mapped"},
	} {
		r := importRun(t, tt.args...)
		if r.Code != tt.code || !strings.Contains(r.Stderr, tt.msg) || r.YAML != "" {
			t.Errorf("import %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, r.Code, r.YAML, r.Stderr, tt.code, tt.msg)
		}
	}
}
