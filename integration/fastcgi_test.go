package integration

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fastcgiConfig is junction's config for the FastCGI suite: scripts under
// /cgi-bin/ and a slow backend with a 2s timeout under /slow/.
func fastcgiConfig(listen, root string) string {
	return fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: fastcgi, address: %[1]q, backend: scripts}
routes:
  - {prefix: /slow/, backend: slow}
backends:
  scripts: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
  slow: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /slow/, timeout: 2s}
`, listen, root)
}

// fcgiFront is a web server in front of junction's FastCGI listener.
type fcgiFront struct {
	name string
	// HTTP is the web server's address.
	HTTP string
	site *site
	// junction is the junction behind it.
	junction *junctionProc
	// seesSilentAbort is true for a front that notices a client leaving
	// while the script has written nothing (nginx). lighttpd and Apache
	// notice only when they next write to the client.
	seesSilentAbort bool
}

func (f *fcgiFront) URL(target string) string { return "http://" + f.HTTP + target }

// startFCGIJunction lays out a site and starts junction on it. lighttpd and
// Apache send SCRIPT_FILENAME as document root + URL path, which junction
// checks against its root: their document root is the site's Dir, and
// Dir/slow links to the scripts so /slow/ paths resolve inside the root.
func startFCGIJunction(t *testing.T) (*site, string, *junctionProc) {
	t.Helper()
	s := newSite(t)
	if err := os.Symlink(s.Root, filepath.Join(s.Dir, "slow")); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	return s, addr, startJunction(t, fastcgiConfig(addr, s.Root), addr)
}

func nginxFCGIFront(t *testing.T, keepalive bool) *fcgiFront {
	s, addr, j := startFCGIJunction(t)
	f := &fcgiFront{name: "nginx", HTTP: freeAddr(t), site: s, junction: j, seesSilentAbort: true}
	upstream, pass := "", "fastcgi_pass "+addr+";"
	if keepalive {
		f.name = "nginx-keepalive"
		upstream = fmt.Sprintf("upstream junction { server %s; keepalive 4; }", addr)
		pass = "fastcgi_pass junction;\n            fastcgi_keep_conn on;"
	}
	startNginx(t, fmt.Sprintf(`
    %[3]s
    server {
        listen %[1]s;
        client_max_body_size 20m;
        location / {
            include /etc/nginx/fastcgi_params;
            %[2]s
        }
        location ~ ^/cgi-bin/(stream|ticker)\.sh$ {
            include /etc/nginx/fastcgi_params;
            %[2]s
            fastcgi_buffering off;
        }
    }
`, f.HTTP, pass, upstream))
	return f
}

func lighttpdFCGIFront(t *testing.T) *fcgiFront {
	s, addr, j := startFCGIJunction(t)
	f := &fcgiFront{name: "lighttpd", HTTP: freeAddr(t), site: s, junction: j}
	host, port, _ := net.SplitHostPort(f.HTTP)
	jhost, jport, _ := net.SplitHostPort(addr)
	backend := fmt.Sprintf(`(( "host" => %q, "port" => %s, "check-local" => "disable" ))`, jhost, jport)
	startLighttpd(t, fmt.Sprintf(`server.bind = %q
server.port = %s
server.modules += ("mod_fastcgi")
server.stream-response-body = 2
server.max-request-size = 20480
fastcgi.server = ( "/cgi-bin/" => %[3]s, "/slow/" => %[3]s )
$HTTP["url"] =~ "^/" { server.document-root = %[4]q }
`, host, port, backend, s.Dir), f.HTTP)
	return f
}

func apacheFCGIFront(t *testing.T) *fcgiFront {
	s, addr, j := startFCGIJunction(t)
	f := &fcgiFront{name: "apache", HTTP: freeAddr(t), site: s, junction: j}
	startApache(t, []string{"proxy", "proxy_fcgi"}, fmt.Sprintf(`Listen %[1]s
DocumentRoot %[3]q
<Directory %[3]q>
    Require all granted
</Directory>
LimitRequestBody 0
<Proxy "fcgi://%[2]s">
    ProxySet flushpackets=on timeout=60
</Proxy>
<LocationMatch "^/(cgi-bin|slow)/">
    SetHandler "proxy:fcgi://%[2]s"
</LocationMatch>
`, f.HTTP, addr, s.Dir))
	return f
}

// TestFastCGI drives real CGI scripts through each web server's FastCGI
// client and junction's FastCGI listener.
func TestFastCGI(t *testing.T) {
	fronts := []struct {
		name  string
		start func(t *testing.T) *fcgiFront
	}{
		{"nginx", func(t *testing.T) *fcgiFront { return nginxFCGIFront(t, false) }},
		{"nginx-keepalive", func(t *testing.T) *fcgiFront { return nginxFCGIFront(t, true) }},
		{"lighttpd", lighttpdFCGIFront},
		{"apache", apacheFCGIFront},
	}
	for _, fr := range fronts {
		t.Run(fr.name, func(t *testing.T) {
			f := fr.start(t)
			testFCGIFront(t, f)
		})
	}
}

func testFCGIFront(t *testing.T, f *fcgiFront) {
	t.Run("get", func(t *testing.T) {
		r := httpGet(t, f.URL("/cgi-bin/hello.sh?lang=1"))
		if r.Status != 200 || r.Body != "Hello from sh\nquery=lang=1\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q", ct)
		}
	})

	t.Run("env", func(t *testing.T) {
		r := httpGet(t, f.URL("/cgi-bin/env.sh/a/b?x=1"))
		env := envOf(r.Body)
		want := map[string]string{"PATH_INFO": "/a/b", "QUERY_STRING": "x=1", "SCRIPT_NAME": "/cgi-bin/env.sh", "REQUEST_METHOD": "GET"}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s=%q, want %q (status %d)", k, env[k], v, r.Status)
			}
		}
		if sf := env["SCRIPT_FILENAME"]; strings.HasPrefix(sf, "proxy:") {
			t.Errorf("SCRIPT_FILENAME %q kept Apache's proxy: prefix", sf)
		}
	})

	t.Run("post-10MB", func(t *testing.T) {
		checkPost10MB(t, f.URL)
	})

	t.Run("no-status-line", func(t *testing.T) {
		checkNoStatusLine(t, f.URL)
	})

	t.Run("client-redirect", func(t *testing.T) {
		checkClientRedirect(t, f.URL)
	})

	t.Run("streaming", func(t *testing.T) {
		checkStreams(t, f.HTTP)
	})

	t.Run("concurrent-50", func(t *testing.T) {
		checkConcurrentHello(t, 50, f.URL)
	})

	t.Run("timeout-504", func(t *testing.T) {
		name := "timeout" + strings.ReplaceAll(f.name, "-", "")
		start := time.Now()
		r := httpGet(t, f.URL("/slow/sleep.sh?"+name))
		took := time.Since(start)
		if r.Status != http.StatusGatewayTimeout {
			t.Errorf("got %d %q after %v, want 504", r.Status, r.Body, took)
		}
		pid := readPIDFile(t, filepath.Join(f.site.Run, "sleep-"+name+".pid"), 5*time.Second)
		if !waitFor(5*time.Second, func() bool { return !pidAlive(pid) }) {
			t.Errorf("script pid %d still alive after its timeout", pid)
		}
	})

	t.Run("client-abort", func(t *testing.T) {
		// ticker.sh writes a line every 200ms until killed.
		writeFile(t, f.site.Root, "ticker.sh", `#!/bin/sh
name=$(printf '%s' "$QUERY_STRING" | tr -cd 'A-Za-z0-9_-')
echo $$ > "$(dirname "$0")/../run/ticker-$name.pid"
printf 'Content-Type: text/plain\r\n\r\n'
while :; do echo tick; sleep 0.2; done
`)
		if err := os.Chmod(filepath.Join(f.site.Root, "ticker.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		tests := []struct{ script, pidPrefix string }{
			{"ticker.sh", "ticker-"},
			{"sleep.sh", "sleep-"}, // silent: only fronts that watch the client
		}
		for _, tt := range tests {
			t.Run(tt.script, func(t *testing.T) {
				if tt.script == "sleep.sh" && !f.seesSilentAbort {
					t.Skipf("%s does not notice a client leaving while the script is silent", f.name)
				}
				name := "abort" + strings.ReplaceAll(f.name, "-", "")
				c, err := net.DialTimeout("tcp", f.HTTP, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "GET /cgi-bin/%s?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", tt.script, name)
				pid := readPIDFile(t, filepath.Join(f.site.Run, tt.pidPrefix+name+".pid"), 10*time.Second)
				if tt.script == "ticker.sh" {
					// Wait for output to flow before leaving.
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					br := bufio.NewReader(c)
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							t.Fatalf("no output from ticker.sh: %v", err)
						}
						if line == "tick\n" || line == "tick\r\n" {
							break
						}
					}
				}
				c.Close()
				if !waitFor(10*time.Second, func() bool { return !pidAlive(pid) }) {
					t.Fatalf("script pid %d still alive 10s after the client left", pid)
				}
			})
		}
	})

	// Connection reuse: junction logs "connection accepted" (debug) once
	// per FastCGI connection. Without keepalive nginx opens one per
	// request (which shows the count works); with fastcgi_keep_conn and
	// upstream keepalive 4, 500 sequential requests reuse a few.
	if strings.HasPrefix(f.name, "nginx") {
		t.Run("connection-reuse", func(t *testing.T) {
			n, maxConns := 500, 4
			if f.name == "nginx" {
				n, maxConns = 20, 20
			}
			accepted := func() int { return strings.Count(f.junction.Output(), `msg="connection accepted" protocol=fastcgi`) }
			before := accepted()
			client := newHTTPClient(30 * time.Second)
			defer client.CloseIdleConnections()
			for i := range n {
				resp, err := client.Get(f.URL(fmt.Sprintf("/cgi-bin/hello.sh?i=%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				b, err := readAllLimit(resp.Body, 1<<20)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != fmt.Sprintf("Hello from sh\nquery=i=%d\n", i) {
					t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, b, err)
				}
			}
			// The log line is written when the connection is accepted,
			// before its first request is answered; the harness reads
			// junction's output on its own goroutine, so the last lines may
			// arrive a moment after the response.
			if f.name == "nginx" {
				waitFor(5*time.Second, func() bool { return accepted()-before >= n })
			} else {
				time.Sleep(100 * time.Millisecond) // until the pipe's last lines are read
			}
			conns := accepted() - before
			t.Logf("%d sequential requests over %d new FastCGI connections (%d in all)", n, conns, accepted())
			if accepted() == 0 {
				t.Fatal("no connection log lines: cannot count connections")
			}
			if f.name == "nginx" && conns != n {
				t.Errorf("without keepalive: %d connections for %d requests, want one each", conns, n)
			}
			if conns > maxConns {
				t.Errorf("%d sequential requests used %d new connections, want at most %d", n, conns, maxConns)
			}
		})
	}
}

// TestFastCGICgiFcgi talks to junction with libfcgi's cgi-fcgi, which
// turns its own CGI environment and stdin into one FastCGI request.
func TestFastCGICgiFcgi(t *testing.T) {
	needBin(t, "/usr/bin/cgi-fcgi", "libfcgi-bin")
	s, addr, _ := startFCGIJunction(t)
	_ = s
	run := func(t *testing.T, method, target, body string) string {
		path, query, _ := strings.Cut(target, "?")
		cmd := exec.Command("/usr/bin/cgi-fcgi", "-bind", "-connect", addr)
		cmd.Env = []string{"REQUEST_METHOD=" + method, "REQUEST_URI=" + target, "SCRIPT_NAME=" + path,
			"QUERY_STRING=" + query, "SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=localhost", "SERVER_PORT=80",
			"REMOTE_ADDR=127.0.0.1", "CONTENT_LENGTH=" + fmt.Sprint(len(body)), "CONTENT_TYPE=application/octet-stream"}
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cgi-fcgi %s %s: %v\n%s", method, target, err, out)
		}
		return string(out)
	}
	t.Run("get", func(t *testing.T) {
		out := run(t, "GET", "/cgi-bin/hello.sh?x=1", "")
		if !strings.HasPrefix(out, "Status: 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\nHello from sh\nquery=x=1\n") {
			t.Fatalf("reply %q", out)
		}
	})
	t.Run("post", func(t *testing.T) {
		body := strings.Repeat("junction", 100000)
		sum := sha256.Sum256([]byte(body))
		out := run(t, "POST", "/cgi-bin/post-sha256.py", body)
		if want := fmt.Sprintf("sha256=%x\nlength=%d\n", sum, len(body)); !strings.Contains(out, want) {
			t.Fatalf("reply %q, want %q", out, want)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		out := run(t, "GET", "/cgi-bin/redirect302.sh", "")
		if !strings.HasPrefix(out, "Status: 302 Found\r\n") || !strings.Contains(out, "Location: ../elsewhere\r\n") {
			t.Fatalf("reply %q", out)
		}
	})
}
