package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ajpModules are the Apache modules of the mod_proxy_ajp suite.
var ajpModules = []string{"proxy", "proxy_ajp", "proxy_balancer", "lbmethod_byrequests", "slotmem_shm",
	"auth_basic", "authn_core", "authn_file", "authz_user"}

const ajpSecret = "s3cret-for-tests"

// ajpJunctionConfig is one junction instance: an AJP listener in front of
// the scripts backend (/cgi-bin/) and a slow one (/slow/, 30s script
// timeout so only the web server's timeout can end it early). INSTANCE
// tells the instances apart.
func ajpJunctionConfig(listen, root, secret, route string) string {
	return fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: ajp, address: %[1]q, backend: scripts, secret: %[3]q, route: %[4]q}
routes:
  - {prefix: /slow/, backend: slow}
  - {prefix: /stream/, backend: stream}
  - {prefix: /jk/, backend: jk}
  - {prefix: /jklb/, backend: jklb}
backends:
  scripts: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64, set_env: {INSTANCE: %[4]q}}
  slow: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /slow/, timeout: 30s}
  stream: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /stream/, timeout: 30s}
  jk: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /jk/, timeout: 30s, set_env: {INSTANCE: %[4]q}}
  jklb: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /jklb/, timeout: 30s, set_env: {INSTANCE: %[4]q}}
`, listen, root, secret, route)
}

// ajpStack is Apache (mod_proxy_ajp, mod_proxy_balancer) → junction over
// AJP → CGI scripts:
//
//   - /cgi-bin/ → junction "main" (secret, ping=: CPING before requests);
//     /cgi-bin/env.sh/private needs Basic auth (user alice);
//   - /slow/ → junction "main" with a 2s proxy timeout;
//   - /badsecret/ → junction "main" with the wrong secret;
//   - /lb/ → balancer of junction "a" and "b" (route=a, route=b, no
//     secret), stickysession=JSESSIONID|jsessionid.
type ajpStack struct {
	site                 *site
	HTTP, Main, A, B     string
	apache               *apacheProc
	mainJ, aJ, bJ        *junctionProc
	user, pass, htpasswd string
}

func (s *ajpStack) URL(target string) string { return "http://" + s.HTTP + target }

func startAJPStack(t *testing.T) *ajpStack {
	t.Helper()
	s := &ajpStack{site: newSite(t), HTTP: freeAddr(t), Main: freeAddr(t), A: freeAddr(t), B: freeAddr(t),
		user: "alice", pass: "wonder land"}
	s.mainJ = startJunction(t, ajpJunctionConfig(s.Main, s.site.Root, ajpSecret, "main"), s.Main)
	s.aJ = startJunction(t, ajpJunctionConfig(s.A, s.site.Root, "", "a"), s.A)
	s.bJ = startJunction(t, ajpJunctionConfig(s.B, s.site.Root, "", "b"), s.B)
	// An {SHA} entry: base64 of the SHA-1 of the password (htpasswd -s).
	sum := sha1.Sum([]byte(s.pass))
	s.htpasswd = writeFile(t, s.site.Dir, "htpasswd", s.user+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n")
	s.apache = startApache(t, ajpModules, fmt.Sprintf(`Listen %[1]s
LimitRequestBody 0
ProxyPass /cgi-bin/ ajp://%[2]s/cgi-bin/ secret=%[5]s ping=3
ProxyPass /slow/ ajp://%[2]s/slow/ secret=%[5]s timeout=2
ProxyPass /stream/ ajp://%[2]s/stream/ secret=%[5]s flushpackets=on
ProxyPass /badsecret/ ajp://%[2]s/badsecret/ secret=not-the-secret
<Location /cgi-bin/env.sh/private>
    AuthType Basic
    AuthName junction
    AuthBasicProvider file
    AuthUserFile %[6]s
    Require valid-user
</Location>
<Proxy balancer://cluster>
    BalancerMember ajp://%[3]s/cgi-bin route=a
    BalancerMember ajp://%[4]s/cgi-bin route=b
    ProxySet stickysession=JSESSIONID|jsessionid lbmethod=byrequests
</Proxy>
ProxyPass /lb/ balancer://cluster/
`, s.HTTP, s.Main, s.A, s.B, ajpSecret, s.htpasswd), s.HTTP)
	return s
}

// TestAJP drives real CGI scripts through Apache mod_proxy_ajp and junction.
func TestAJP(t *testing.T) {
	s := startAJPStack(t)

	t.Run("get", func(t *testing.T) {
		r := httpGet(t, s.URL("/cgi-bin/env.sh/a%20b?x=1&y=%2F"))
		if r.Status != 200 {
			t.Fatalf("GET = %d %q", r.Status, r.Body)
		}
		env := envOf(r.Body)
		want := map[string]string{
			"REQUEST_METHOD": "GET", "PATH_INFO": "/a b", "SCRIPT_NAME": "/cgi-bin/env.sh",
			"QUERY_STRING": "x=1&y=%2F", "REQUEST_URI": "/cgi-bin/env.sh/a%20b?x=1&y=%2F",
			"REMOTE_ADDR": "127.0.0.1", "SERVER_ADDR": "127.0.0.1", "JUNCTION_ROUTE": "main",
			"INSTANCE": "main", "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s=%q, want %q", k, env[k], v)
			}
		}
		if p, err := strconv.Atoi(env["REMOTE_PORT"]); err != nil || p == 0 {
			t.Errorf("REMOTE_PORT=%q, want the client's port", env["REMOTE_PORT"])
		}
		if _, ok := env["REMOTE_USER"]; ok {
			t.Errorf("REMOTE_USER set without authentication: %q", env["REMOTE_USER"])
		}
	})

	t.Run("hello scripts", func(t *testing.T) {
		for _, tt := range []struct{ script, want, needs, pkg string }{
			{"hello.sh", "Hello from sh\n", "/bin/sh", "dash"},
			{"hello.py", "Hello from python\n", "/usr/bin/python3", "python3"},
			{"hello.php", "Hello from php\n", "/usr/bin/php-cgi", "php-cgi"},
		} {
			t.Run(tt.script, func(t *testing.T) {
				needBin(t, tt.needs, tt.pkg)
				r := httpGet(t, s.URL("/cgi-bin/"+tt.script))
				if r.Status != 200 || !strings.HasPrefix(r.Body, tt.want) {
					t.Fatalf("GET %s = %d %q", tt.script, r.Status, r.Body)
				}
			})
		}
	})

	t.Run("post 10MB", func(t *testing.T) {
		needBin(t, "/usr/bin/python3", "python3")
		body := make([]byte, 10<<20)
		rand.Read(body)
		sum := sha256.Sum256(body)
		req, _ := http.NewRequest("POST", s.URL("/cgi-bin/post-sha256.py"), bytes.NewReader(body))
		r := httpDo(t, req)
		want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
		if r.Status != 200 || r.Body != want {
			t.Fatalf("POST = %d %q, want %q", r.Status, r.Body, want)
		}
	})

	t.Run("chunked body gets 411", func(t *testing.T) {
		// Policy: a chunked request body reaches junction without a length;
		// a cgi backend without max_body_spool does not spool it and
		// answers 411 (TestChunkedAJPSpool has the spooled case).
		req, _ := http.NewRequest("POST", s.URL("/cgi-bin/post-sha256.py"), strings.NewReader("chunked body"))
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		r := httpDo(t, req)
		if r.Status != http.StatusLengthRequired {
			t.Fatalf("chunked POST = %d %q, want 411", r.Status, r.Body)
		}
		// The connection junction drained is still good.
		if r := httpGet(t, s.URL("/cgi-bin/hello.sh")); r.Status != 200 {
			t.Fatalf("GET after chunked POST = %d", r.Status)
		}
	})

	t.Run("40 headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.URL("/cgi-bin/env.sh"), nil)
		for i := 1; i <= 40; i++ {
			req.Header.Set(fmt.Sprintf("X-Test-%02d", i), fmt.Sprintf("value %d with spaces, and; punctuation=%d", i, i*i))
		}
		req.Header.Set("Cookie", "JSESSIONID=abc; theme=dark")
		r := httpDo(t, req)
		env := envOf(r.Body)
		for i := 1; i <= 40; i++ {
			k := fmt.Sprintf("HTTP_X_TEST_%02d", i)
			if want := fmt.Sprintf("value %d with spaces, and; punctuation=%d", i, i*i); env[k] != want {
				t.Errorf("%s=%q, want %q", k, env[k], want)
			}
		}
		if env["HTTP_COOKIE"] != "JSESSIONID=abc; theme=dark" {
			t.Errorf("HTTP_COOKIE=%q", env["HTTP_COOKIE"])
		}
	})

	t.Run("basic auth", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.URL("/cgi-bin/env.sh/private"), nil)
		if r := httpDo(t, req); r.Status != http.StatusUnauthorized {
			t.Fatalf("without credentials: %d", r.Status)
		}
		req, _ = http.NewRequest("GET", s.URL("/cgi-bin/env.sh/private"), nil)
		req.SetBasicAuth(s.user, s.pass)
		r := httpDo(t, req)
		env := envOf(r.Body)
		if r.Status != 200 || env["REMOTE_USER"] != s.user || env["AUTH_TYPE"] != "Basic" {
			t.Fatalf("with credentials: %d REMOTE_USER=%q AUTH_TYPE=%q", r.Status, env["REMOTE_USER"], env["AUTH_TYPE"])
		}
	})

	t.Run("wrong secret refused", func(t *testing.T) {
		r := httpGet(t, s.URL("/badsecret/env.sh"))
		if r.Status != http.StatusForbidden {
			t.Fatalf("GET with the wrong secret = %d %q, want 403", r.Status, r.Body)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(s.mainJ.Output(), "wrong secret") }) {
			t.Errorf("junction did not log the refusal:\n%s", tail(s.mainJ.Output(), 20))
		}
		if r := httpGet(t, s.URL("/cgi-bin/hello.sh")); r.Status != 200 {
			t.Fatalf("right secret after a refusal = %d", r.Status)
		}
	})

	t.Run("sticky sessions", func(t *testing.T) {
		for _, route := range []string{"a", "b"} {
			for i := 0; i < 10; i++ {
				req, _ := http.NewRequest("GET", s.URL("/lb/env.sh"), nil)
				req.Header.Set("Cookie", "JSESSIONID=xyz."+route)
				env := envOf(httpDo(t, req).Body)
				if env["INSTANCE"] != route || env["JUNCTION_ROUTE"] != route {
					t.Fatalf("session .%s served by INSTANCE=%q JUNCTION_ROUTE=%q", route, env["INSTANCE"], env["JUNCTION_ROUTE"])
				}
			}
		}
		// A jsessionid in the URL sticks too (mod_proxy_balancer reads it
		// from the query as well as from a ";jsessionid=" path parameter,
		// which junction does not strip from the script path).
		for i := 0; i < 5; i++ {
			env := envOf(httpGet(t, s.URL("/lb/env.sh?jsessionid=xyz.b")).Body)
			if env["INSTANCE"] != "b" {
				t.Fatalf("?jsessionid=xyz.b served by %q", env["INSTANCE"])
			}
		}
		// Without a session both members serve.
		seen := map[string]int{}
		for i := 0; i < 10; i++ {
			seen[envOf(httpGet(t, s.URL("/lb/env.sh")).Body)["INSTANCE"]]++
		}
		if seen["a"] == 0 || seen["b"] == 0 {
			t.Errorf("byrequests without a session: %v", seen)
		}
	})

	t.Run("connection reuse", func(t *testing.T) {
		port := s.Main[strings.LastIndexByte(s.Main, ':')+1:]
		before := ajpConnections(t, port)
		c := newHTTPClient(10 * time.Second)
		defer c.CloseIdleConnections()
		for i := 0; i < 200; i++ {
			resp, err := c.Get(s.URL(fmt.Sprintf("/cgi-bin/hello.sh?i=%d", i)))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
		after := ajpConnections(t, port)
		t.Logf("AJP socket entries: %d before, %d after 200 requests", before, after)
		// Each new AJP connection would leave an entry (ESTABLISHED or
		// TIME_WAIT) behind: 200 requests over reused connections add a
		// handful at most.
		if after-before > 10 {
			t.Errorf("%d → %d AJP socket entries after 200 requests: connections are not reused", before, after)
		}
	})

	t.Run("web server timeout ends the script", func(t *testing.T) {
		start := time.Now()
		r := httpGet(t, s.URL("/slow/sleep.sh?ajpabort"))
		// mod_proxy_ajp answers 500 on a backend read timeout.
		if r.Status < 500 || time.Since(start) > 10*time.Second {
			t.Errorf("GET sleep.sh = %d after %v, want Apache's timeout error after 2s", r.Status, time.Since(start))
		}
		pid := readPIDFile(t, filepath.Join(s.site.Run, "sleep-ajpabort.pid"), 5*time.Second)
		if !waitFor(10*time.Second, func() bool { return !pidAlive(pid) }) {
			t.Fatalf("sleep.sh (pid %d) still runs after Apache dropped the AJP connection", pid)
		}
	})

	t.Run("client abort ends the script", func(t *testing.T) {
		// tick.sh writes a line every 200ms for 30s. Once the client is
		// gone, Apache's next write to it fails and it drops the AJP
		// connection; junction then cancels the request and the CGI
		// runner kills the script.
		writeFile(t, s.site.Root, "tick.sh", "#!/bin/sh\n"+
			"echo $$ > \"$(dirname \"$0\")/../run/tick.pid\"\n"+
			"printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"+
			"i=0; while [ $i -lt 150 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done\n")
		if err := os.Chmod(filepath.Join(s.site.Root, "tick.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", s.HTTP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /stream/tick.sh HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		first := make([]byte, 512)
		n, err := c.Read(first)
		if err != nil || !strings.Contains(string(first[:n]), "200") {
			t.Fatalf("first bytes %q: %v", first[:n], err)
		}
		pid := readPIDFile(t, filepath.Join(s.site.Run, "tick.pid"), 5*time.Second)
		c.Close()
		if !waitFor(10*time.Second, func() bool { return !pidAlive(pid) }) {
			t.Fatalf("tick.sh (pid %d) still runs after the client went away", pid)
		}
	})
}

// ajpConnections counts TCP socket entries (any state) whose remote port is
// port, from /proc/net/tcp.
func ajpConnections(t *testing.T, port string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("cannot count sockets: %v", err)
	}
	p, _ := strconv.Atoi(port)
	hexPort := fmt.Sprintf(":%04X", p)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && strings.HasSuffix(f[2], hexPort) {
			n++
		}
	}
	return n
}

// TestModJK drives the scripts through Apache mod_jk: a worker with the
// secret and CPING (ping_mode=A) to junction "main", and a load balancer
// of junction "a" and "b" with sticky sessions.
func TestModJK(t *testing.T) {
	mods := append([]string{"jk"}, ajpModules...)
	site := newSite(t)
	mainAddr, aAddr, bAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	mainJ := startJunction(t, ajpJunctionConfig(mainAddr, site.Root, ajpSecret, "main"), mainAddr)
	startJunction(t, ajpJunctionConfig(aAddr, site.Root, "", "a"), aAddr)
	startJunction(t, ajpJunctionConfig(bAddr, site.Root, "", "b"), bAddr)
	hostPort := func(a string) (string, string) { h, p, _ := net.SplitHostPort(a); return h, p }
	mh, mp := hostPort(mainAddr)
	ah, ap := hostPort(aAddr)
	bh, bp := hostPort(bAddr)
	workers := writeFile(t, site.Dir, "workers.properties", fmt.Sprintf(`worker.list=main,bad,lb
worker.main.type=ajp13
worker.main.host=%[1]s
worker.main.port=%[2]s
worker.main.secret=%[7]s
worker.main.ping_mode=A
worker.bad.type=ajp13
worker.bad.host=%[1]s
worker.bad.port=%[2]s
worker.bad.secret=not-the-secret
worker.a.type=ajp13
worker.a.host=%[3]s
worker.a.port=%[4]s
worker.b.type=ajp13
worker.b.host=%[5]s
worker.b.port=%[6]s
worker.lb.type=lb
worker.lb.balance_workers=a,b
worker.lb.sticky_session=true
`, mh, mp, ah, ap, bh, bp, ajpSecret))
	startApache(t, mods, fmt.Sprintf(`Listen %[1]s
JkWorkersFile %[2]s
JkLogFile %[3]s/mod_jk.log
JkLogLevel info
JkShmFile %[3]s/jk.shm
JkMount /jk/* main
JkMount /jkbad/* bad
JkMount /jklb/* lb
`, httpAddr, workers, site.Dir), httpAddr)
	url := func(target string) string { return "http://" + httpAddr + target }

	t.Run("get", func(t *testing.T) {
		r := httpGet(t, url("/jk/env.sh/x%20y?q=1"))
		env := envOf(r.Body)
		if r.Status != 200 || env["PATH_INFO"] != "/x y" || env["QUERY_STRING"] != "q=1" || env["JUNCTION_ROUTE"] != "main" {
			t.Fatalf("GET = %d PATH_INFO=%q QUERY_STRING=%q JUNCTION_ROUTE=%q\n%s", r.Status, env["PATH_INFO"], env["QUERY_STRING"], env["JUNCTION_ROUTE"], r.Body)
		}
		if p, err := strconv.Atoi(env["REMOTE_PORT"]); err != nil || p == 0 {
			t.Errorf("REMOTE_PORT=%q", env["REMOTE_PORT"])
		}
	})

	t.Run("post", func(t *testing.T) {
		needBin(t, "/usr/bin/python3", "python3")
		body := make([]byte, 3<<20)
		rand.Read(body)
		sum := sha256.Sum256(body)
		req, _ := http.NewRequest("POST", url("/jk/post-sha256.py"), bytes.NewReader(body))
		r := httpDo(t, req)
		want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
		if r.Status != 200 || r.Body != want {
			t.Fatalf("POST = %d %q, want %q", r.Status, r.Body, want)
		}
	})

	t.Run("chunked body gets 411", func(t *testing.T) {
		req, _ := http.NewRequest("POST", url("/jk/post-sha256.py"), strings.NewReader("chunked body"))
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		if r := httpDo(t, req); r.Status != http.StatusLengthRequired {
			t.Fatalf("chunked POST = %d %q, want 411", r.Status, r.Body)
		}
		if r := httpGet(t, url("/jk/hello.sh")); r.Status != 200 {
			t.Fatalf("GET after chunked POST = %d", r.Status)
		}
	})

	t.Run("wrong secret refused", func(t *testing.T) {
		if r := httpGet(t, url("/jkbad/env.sh")); r.Status == 200 {
			t.Fatalf("GET with the wrong secret = %d", r.Status)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(mainJ.Output(), "wrong secret") }) {
			t.Errorf("junction did not log the refusal")
		}
	})

	t.Run("sticky sessions", func(t *testing.T) {
		for _, route := range []string{"a", "b"} {
			for i := 0; i < 10; i++ {
				req, _ := http.NewRequest("GET", url("/jklb/env.sh"), nil)
				req.Header.Set("Cookie", "JSESSIONID=xyz."+route)
				env := envOf(httpDo(t, req).Body)
				if env["INSTANCE"] != route {
					t.Fatalf("session .%s served by INSTANCE=%q", route, env["INSTANCE"])
				}
			}
		}
	})

	t.Run("many requests", func(t *testing.T) {
		c := newHTTPClient(10 * time.Second)
		defer c.CloseIdleConnections()
		for i := 0; i < 100; i++ {
			resp, err := c.Get(url("/jk/hello.sh"))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
	})
}

// TestAJPUnixSocket puts Apache and junction on a unix socket
// (ProxyPass "unix:/path|ajp://localhost/", Apache 2.4.7 and later), the
// setup the README recommends on one host: requests and bodies arrive
// whole, and the client's address comes from the AJP request.
func TestAJPUnixSocket(t *testing.T) {
	needBin(t, "/usr/bin/python3", "python3")
	site := newSite(t)
	sock := filepath.Join(openTempDir(t), "ajp.sock")
	startJunction(t, fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: ajp, address: %q, socket_mode: "0666", backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s}
`, "unix:"+sock, site.Root), "unix:"+sock)
	front := freeAddr(t)
	startApache(t, ajpModules, fmt.Sprintf(`Listen %[1]s
ProxyPass /cgi-bin/ "unix:%[2]s|ajp://localhost/cgi-bin/" ttl=60
`, front, sock), front)

	for i := range 20 {
		r := httpGet(t, "http://"+front+fmt.Sprintf("/cgi-bin/env.sh/p?i=%d", i))
		if r.Status != 200 {
			t.Fatalf("GET %d = %d %q", i, r.Status, r.Body)
		}
		env := envOf(r.Body)
		if env["QUERY_STRING"] != fmt.Sprintf("i=%d", i) || env["PATH_INFO"] != "/p" || env["REMOTE_ADDR"] != "127.0.0.1" {
			t.Fatalf("GET %d: QUERY_STRING=%q PATH_INFO=%q REMOTE_ADDR=%q", i, env["QUERY_STRING"], env["PATH_INFO"], env["REMOTE_ADDR"])
		}
	}
	body := bytes.Repeat([]byte("unix-ajp "), 200000)
	sum := sha256.Sum256(body)
	req, _ := http.NewRequest("POST", "http://"+front+"/cgi-bin/post-sha256.py", bytes.NewReader(body))
	r := httpDo(t, req)
	want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
	if r.Status != 200 || r.Body != want {
		t.Fatalf("POST = %d %q, want %q", r.Status, r.Body, want)
	}
}
