package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the front servers as the Debian packages install them.
const (
	nginxBin    = "/usr/sbin/nginx"   // nginx-light (or nginx)
	apacheBin   = "/usr/sbin/apache2" // apache2
	apacheMods  = "/usr/lib/apache2/modules"
	lighttpdBin = "/usr/sbin/lighttpd" // lighttpd
)

// listenRE finds "listen 127.0.0.1:PORT" (nginx), "Listen 127.0.0.1:PORT"
// (Apache) in a config, so the starters know what to wait for.
var listenRE = regexp.MustCompile(`(?i)\blisten\s+([0-9.]+:[0-9]+)`)

func listenAddrs(conf string) []string {
	var out []string
	for _, m := range listenRE.FindAllStringSubmatch(conf, -1) {
		out = append(out, m[1])
	}
	return out
}

// nginxProc is a running nginx.
type nginxProc struct {
	*proc
	// Dir is nginx's prefix: nginx.conf, error.log, access.log, temp dirs.
	Dir string
}

// startNginx runs nginx with a complete config around httpBlock (the
// contents of the http { } block: server blocks, upstreams) and waits for
// every `listen 127.0.0.1:PORT` in it (or waitAddrs when given). It uses one
// worker; see startNginxWorkers.
func startNginx(t testing.TB, httpBlock string, waitAddrs ...string) *nginxProc {
	t.Helper()
	return startNginxWorkers(t, 1, httpBlock, waitAddrs...)
}

// startNginxWorkers is startNginx with the given number of worker processes.
func startNginxWorkers(t testing.TB, workers int, httpBlock string, waitAddrs ...string) *nginxProc {
	t.Helper()
	needBin(t, nginxBin, "nginx-light")
	dir := t.TempDir()
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Workers drop privileges when nginx starts as root; keep them root so
	// they can use the temp dirs under the test's TempDir (0700 parents).
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;"
	}
	conf := fmt.Sprintf(`# written by junction's integration tests
daemon off;
master_process on;
worker_processes %[3]d;
%[2]s
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 1024; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    default_type application/octet-stream;
%[4]s
}
`, dir, user, workers, httpBlock)
	file := writeFile(t, dir, "nginx.conf", conf)
	if out, err := exec.Command(nginxBin, "-t", "-c", file, "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n---- nginx.conf ----\n%s", err, out, conf)
	}
	cmd := exec.Command(nginxBin, "-c", file, "-p", dir)
	p := startCmd(t, "nginx", cmd, 5*time.Second, false,
		filepath.Join(dir, "error.log"), filepath.Join(dir, "nginx.conf"))
	if len(waitAddrs) == 0 {
		waitAddrs = listenAddrs(httpBlock)
	}
	waitListening(t, p, 10*time.Second, waitAddrs...)
	return &nginxProc{proc: p, Dir: dir}
}

// apacheProc is a running Apache httpd.
type apacheProc struct {
	*proc
	// Dir is the ServerRoot: httpd.conf, error.log, pid file, mutexes.
	Dir string
}

// startApache runs apache2 in the foreground with its own config: the
// LoadModule lines for modules (short names such as "proxy",
// "proxy_fcgi"; mpm_event, authz_core and unixd are always loaded), then
// ServerRoot/PidFile/ErrorLog/Mutex in a temp dir, then conf (Listen lines,
// VirtualHosts, Proxy directives). It waits for every `Listen ADDR` in conf
// (or waitAddrs when given).
func startApache(t testing.TB, modules []string, conf string, waitAddrs ...string) *apacheProc {
	t.Helper()
	needBin(t, apacheBin, "apache2")
	dir := openTempDir(t)
	if err := os.MkdirAll(filepath.Join(dir, "htdocs"), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# written by junction's integration tests\nServerRoot %q\n", dir)
	seen := map[string]bool{}
	for _, m := range append([]string{"mpm_event", "authz_core", "unixd"}, modules...) {
		if seen[m] {
			continue
		}
		seen[m] = true
		if apacheBuiltin(m) {
			continue
		}
		so := filepath.Join(apacheMods, "mod_"+m+".so")
		if _, err := os.Stat(so); err != nil {
			t.Skipf("apache module %s not installed (%v)", m, err)
		}
		fmt.Fprintf(&b, "LoadModule %s_module %s\n", m, so)
	}
	fmt.Fprintf(&b, `ServerName 127.0.0.1
PidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
LogLevel info
Mutex file:%[1]s default
DocumentRoot %[1]s/htdocs
StartServers 1
ServerLimit 2
ThreadsPerChild 25
MaxRequestWorkers 50
<Directory />
    AllowOverride None
</Directory>
`, dir)
	if os.Geteuid() == 0 {
		// Apache switches to User after binding; "nobody" exists everywhere.
		b.WriteString("User nobody\nGroup nogroup\n")
	}
	b.WriteString(conf)
	b.WriteString("\n")
	file := writeFile(t, dir, "httpd.conf", b.String())
	if out, err := exec.Command(apacheBin, "-t", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("apache2 -t: %v\n%s\n---- httpd.conf ----\n%s", err, out, b.String())
	}
	cmd := exec.Command(apacheBin, "-f", file, "-DFOREGROUND")
	p := startCmd(t, "apache2", cmd, 5*time.Second, false,
		filepath.Join(dir, "error.log"), file)
	if len(waitAddrs) == 0 {
		waitAddrs = listenAddrs(conf)
	}
	waitListening(t, p, 10*time.Second, waitAddrs...)
	return &apacheProc{proc: p, Dir: dir}
}

var (
	apacheBuiltinOnce sync.Once
	apacheBuiltinList string
)

// apacheBuiltin reports whether module m is compiled into apache2 (Debian
// builds mod_unixd in), per `apache2 -l`.
func apacheBuiltin(m string) bool {
	apacheBuiltinOnce.Do(func() {
		out, err := exec.Command(apacheBin, "-l").Output()
		if err == nil {
			apacheBuiltinList = string(out)
		}
	})
	return strings.Contains(apacheBuiltinList, " mod_"+m+".c\n")
}

// lighttpdProc is a running lighttpd.
type lighttpdProc struct {
	*proc
	// Dir holds lighttpd.conf, error.log, htdocs and upload dirs.
	Dir string
}

// startLighttpd runs `lighttpd -D -f` on a config made of a prelude
// (document root, error log, upload dir, all in a temp dir) and conf, which
// must set server.bind and server.port and load its modules
// (server.modules += ("mod_scgi")). It waits for waitAddrs.
func startLighttpd(t testing.TB, conf string, waitAddrs ...string) *lighttpdProc {
	t.Helper()
	needBin(t, lighttpdBin, "lighttpd")
	dir := t.TempDir()
	for _, d := range []string{"htdocs", "upload"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	full := fmt.Sprintf(`# written by junction's integration tests
server.document-root = %[1]q
server.errorlog = %[2]q
server.upload-dirs = ( %[3]q )
%[4]s
`, filepath.Join(dir, "htdocs"), filepath.Join(dir, "error.log"), filepath.Join(dir, "upload"), conf)
	file := writeFile(t, dir, "lighttpd.conf", full)
	if out, err := exec.Command(lighttpdBin, "-tt", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("lighttpd -tt: %v\n%s\n---- lighttpd.conf ----\n%s", err, out, full)
	}
	cmd := exec.Command(lighttpdBin, "-D", "-f", file)
	p := startCmd(t, "lighttpd", cmd, 5*time.Second, false, filepath.Join(dir, "error.log"), file)
	waitListening(t, p, 10*time.Second, waitAddrs...)
	return &lighttpdProc{proc: p, Dir: dir}
}

// TestPeerHarness checks that each front server starts with the harness's
// generated config and answers a static request, so a failure in a
// protocol suite is not a harness problem.
func TestPeerHarness(t *testing.T) {
	t.Run("nginx", func(t *testing.T) {
		addr := freeAddr(t)
		startNginx(t, fmt.Sprintf(`server { listen %s; location / { return 200 "nginx ok\n"; } }`, addr))
		if r := httpGet(t, "http://"+addr+"/"); r.Status != 200 || r.Body != "nginx ok\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
	})
	t.Run("apache", func(t *testing.T) {
		addr := freeAddr(t)
		a := startApache(t, nil, fmt.Sprintf("Listen %s\n", addr))
		writeFile(t, filepath.Join(a.Dir, "htdocs"), "index.txt", "apache ok\n")
		if r := httpGet(t, "http://"+addr+"/index.txt"); r.Status != 200 || r.Body != "apache ok\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
	})
	t.Run("lighttpd", func(t *testing.T) {
		port := freePort(t)
		l := startLighttpd(t, fmt.Sprintf("server.bind = \"127.0.0.1\"\nserver.port = %d\n", port),
			fmt.Sprintf("127.0.0.1:%d", port))
		writeFile(t, filepath.Join(l.Dir, "htdocs"), "index.txt", "lighttpd ok\n")
		if r := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.txt", port)); r.Status != 200 || r.Body != "lighttpd ok\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
	})
}
