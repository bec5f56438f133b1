package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scgiStack is nginx → scgi_pass → junction (SCGI listener) → CGI scripts
// in a fresh site.
type scgiStack struct {
	site     *site
	junction *junctionProc
	nginx    *nginxProc
	// HTTP is nginx's address, SCGI junction's.
	HTTP, SCGI string
}

// URL returns the http URL of target (path and query, already escaped)
// through nginx.
func (s *scgiStack) URL(target string) string { return "http://" + s.HTTP + target }

// scgiConfig is junction's config for the SCGI suite: the scripts backend
// for /cgi-bin/ and a slow backend with a 2s timeout under /slow/, both on
// the same root.
func scgiConfig(listen, root string) string {
	return fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: scgi, address: %[1]q, backend: scripts}
routes:
  - {prefix: /slow/, backend: slow}
backends:
  scripts: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
  slow: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /slow/, timeout: 2s}
`, listen, root)
}

func startSCGIStack(t *testing.T) *scgiStack {
	t.Helper()
	s := &scgiStack{site: newSite(t), SCGI: freeAddr(t), HTTP: freeAddr(t)}
	s.junction = startJunction(t, scgiConfig(s.SCGI, s.site.Root), s.SCGI)
	pass := fmt.Sprintf("include /etc/nginx/scgi_params;\n        scgi_pass %s;", s.SCGI)
	s.nginx = startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        client_max_body_size 20m;
        location / {
        %[2]s
        }
        location = /cgi-bin/stream.sh {
        %[2]s
            scgi_buffering off;
        }
        location = /cgi-bin/sf-outside {
        %[2]s
            scgi_param SCRIPT_FILENAME %[3]s;
        }
    }
`, s.HTTP, pass, filepath.Join(s.site.Outside, "evil")))
	return s
}

// TestSCGI drives real CGI scripts through nginx's scgi_pass and junction.
func TestSCGI(t *testing.T) {
	s := startSCGIStack(t)

	t.Run("hello", func(t *testing.T) {
		tests := []struct {
			script, want, needs, pkg string
		}{
			{"hello.sh", "Hello from sh\n", "/bin/sh", "dash"},
			{"hello.pl", "Hello from perl\n", "/usr/bin/perl", "perl-base"},
			{"hello.py", "Hello from python\n", "/usr/bin/python3", "python3"},
			{"hello.php", "Hello from php\n", "/usr/bin/php-cgi", "php-cgi"},
		}
		for _, tt := range tests {
			t.Run(tt.script, func(t *testing.T) {
				needBin(t, tt.needs, tt.pkg)
				r := httpGet(t, s.URL("/cgi-bin/"+tt.script+"?lang=1"))
				if r.Status != 200 || !strings.HasPrefix(r.Body, tt.want) {
					t.Fatalf("GET %s = %d %q, want 200 starting %q", tt.script, r.Status, r.Body, tt.want)
				}
				if !strings.Contains(r.Body, "query=lang=1\n") {
					t.Errorf("GET %s: body %q lacks the query string", tt.script, r.Body)
				}
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("GET %s: Content-Type %q", tt.script, ct)
				}
			})
		}
	})

	t.Run("env", func(t *testing.T) {
		tests := []struct {
			target string
			want   map[string]string
		}{
			{"/cgi-bin/env.sh/a%20b?x=1&y=%20", map[string]string{
				"PATH_INFO":         "/a b",
				"QUERY_STRING":      "x=1&y=%20",
				"SCRIPT_NAME":       "/cgi-bin/env.sh",
				"REQUEST_METHOD":    "GET",
				"GATEWAY_INTERFACE": "CGI/1.1",
				"SERVER_PROTOCOL":   "HTTP/1.1",
			}},
			{"/cgi-bin/env.sh?q=%2F%3F%26", map[string]string{
				"PATH_INFO":    "",
				"QUERY_STRING": "q=%2F%3F%26",
				"SCRIPT_NAME":  "/cgi-bin/env.sh",
			}},
			{"/cgi-bin/env.sh/%C3%A9t%C3%A9/x", map[string]string{
				"PATH_INFO":   "/été/x",
				"SCRIPT_NAME": "/cgi-bin/env.sh",
			}},
		}
		for _, tt := range tests {
			t.Run(tt.target, func(t *testing.T) {
				r := httpGet(t, s.URL(tt.target))
				if r.Status != 200 {
					t.Fatalf("GET %s = %d %q", tt.target, r.Status, r.Body)
				}
				env := envOf(r.Body)
				for k, want := range tt.want {
					if got := env[k]; got != want {
						t.Errorf("GET %s: %s=%q, want %q", tt.target, k, got, want)
					}
				}
			})
		}
	})

	t.Run("pathinfo", func(t *testing.T) {
		r := httpGet(t, s.URL("/cgi-bin/pathinfo.sh/one/two"))
		want := "PATH_INFO=/one/two\nSCRIPT_NAME=/cgi-bin/pathinfo.sh\n"
		if r.Status != 200 || r.Body != want {
			t.Fatalf("got %d %q, want 200 %q", r.Status, r.Body, want)
		}
	})

	t.Run("post-10MB", func(t *testing.T) {
		checkPost10MB(t, s.URL)
	})

	t.Run("no-status-line", func(t *testing.T) {
		r := httpGet(t, s.URL("/cgi-bin/nostatus.pl"))
		if r.Status != 200 || !strings.Contains(r.Body, "no status line") {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "text/html" {
			t.Errorf("Content-Type %q, want text/html", ct)
		}
		// SCGI requires the Status line; junction adds it for the script.
		raw := scgiDo(t, s.SCGI, scgiRequest("GET", "/cgi-bin/nostatus.pl", 0), nil)
		if !bytes.HasPrefix(raw.Raw, []byte("Status: 200")) {
			t.Errorf("raw SCGI reply does not start with a Status line: %q", raw.Raw)
		}
	})

	t.Run("client-redirect", func(t *testing.T) {
		checkClientRedirect(t, s.URL)
	})

	t.Run("local-redirect", func(t *testing.T) {
		r := httpGet(t, s.URL("/cgi-bin/localredirect.sh?from=redirect"))
		if r.Status != 200 || !strings.HasPrefix(r.Body, "Hello from sh\n") {
			t.Fatalf("got %d %q, want hello.sh's 200 body", r.Status, r.Body)
		}
		if loc := r.Header.Get("Location"); loc != "" {
			t.Errorf("local redirect leaked Location %q to the client", loc)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		// stream.sh prints "first", sleeps 2s, prints "second"; nginx has
		// scgi_buffering off for it. The first line must arrive while the
		// script still sleeps.
		checkStreams(t, s.HTTP)
	})

	t.Run("timeout-504", func(t *testing.T) {
		start := time.Now()
		r := httpGet(t, s.URL("/slow/sleep.sh?timeout"))
		took := time.Since(start)
		if r.Status != http.StatusGatewayTimeout {
			t.Errorf("got %d %q after %v, want 504", r.Status, r.Body, took)
		}
		if took > 20*time.Second {
			t.Errorf("504 after %v with a 2s backend timeout", took)
		}
		pid := readPIDFile(t, filepath.Join(s.site.Run, "sleep-timeout.pid"), 5*time.Second)
		if !waitFor(5*time.Second, func() bool { return !pidAlive(pid) }) {
			t.Errorf("script pid %d still alive after its timeout", pid)
		}
	})

	t.Run("client-disconnect", func(t *testing.T) {
		tests := []struct {
			name string
			send func(t *testing.T, name string) net.Conn
		}{
			{"via-nginx", func(t *testing.T, name string) net.Conn {
				c, err := net.DialTimeout("tcp", s.HTTP, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "GET /cgi-bin/sleep.sh?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", name)
				return c
			}},
			{"raw-scgi", func(t *testing.T, name string) net.Conn {
				c, err := net.DialTimeout("tcp", s.SCGI, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(encodeSCGI(scgiRequest("GET", "/cgi-bin/sleep.sh?"+name, 0), nil)); err != nil {
					t.Fatal(err)
				}
				return c
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				name := "disconnect" + strings.ReplaceAll(tt.name, "-", "")
				c := tt.send(t, name)
				pid := readPIDFile(t, filepath.Join(s.site.Run, "sleep-"+name+".pid"), 10*time.Second)
				if !pidAlive(pid) {
					t.Fatalf("script pid %d not running before the client left", pid)
				}
				c.Close()
				if !waitFor(5*time.Second, func() bool { return !pidAlive(pid) }) {
					t.Fatalf("script pid %d still alive 5s after the client disconnected", pid)
				}
			})
		}
	})

	t.Run("concurrent-50", func(t *testing.T) {
		checkConcurrentHello(t, 50, s.URL)
	})

	t.Run("httpoxy", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, s.URL("/cgi-bin/env.sh"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Proxy", "http://evil.invalid:1/")
		req.Header.Set("X-Probe", "seen")
		r := httpDo(t, req)
		env := envOf(r.Body)
		if r.Status != 200 || env["HTTP_X_PROBE"] != "seen" {
			t.Fatalf("got %d, HTTP_X_PROBE=%q: headers do not reach the script", r.Status, env["HTTP_X_PROBE"])
		}
		if v, ok := env["HTTP_PROXY"]; ok {
			t.Errorf("script saw HTTP_PROXY=%q (httpoxy)", v)
		}
		// Directly, as a front server that does not strip it would send it.
		raw := scgiDo(t, s.SCGI, scgiRequest("GET", "/cgi-bin/env.sh", 0, scgiVar{"HTTP_PROXY", "http://evil.invalid:1/"}), nil)
		if v, ok := envOf(raw.Body)["HTTP_PROXY"]; ok || raw.Status != 200 {
			t.Errorf("raw SCGI: status %d, script saw HTTP_PROXY=%q", raw.Status, v)
		}
	})

	t.Run("repeated-headers", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", s.HTTP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"+
			"X-Multi: a\r\nCookie: a=1\r\nX-Multi: b\r\nCookie: b=2\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := readAllLimit(resp.Body, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		env := envOf(string(b))
		if got := env["HTTP_X_MULTI"]; got != "a, b" {
			t.Errorf("via nginx: HTTP_X_MULTI=%q, want %q", got, "a, b")
		}
		if got := env["HTTP_COOKIE"]; got != "a=1; b=2" {
			t.Errorf("via nginx: HTTP_COOKIE=%q, want %q", got, "a=1; b=2")
		}
		// Repeated HTTP_* pairs on the wire, as older nginx sends them.
		raw := scgiDo(t, s.SCGI, scgiRequest("GET", "/cgi-bin/env.sh", 0,
			scgiVar{"HTTP_X_MULTI", "a"}, scgiVar{"HTTP_COOKIE", "a=1"},
			scgiVar{"HTTP_X_MULTI", "b"}, scgiVar{"HTTP_COOKIE", "b=2"}), nil)
		env = envOf(raw.Body)
		if raw.Status != 200 || env["HTTP_X_MULTI"] != "a, b" || env["HTTP_COOKIE"] != "a=1; b=2" {
			t.Errorf("raw SCGI: status %d, HTTP_X_MULTI=%q HTTP_COOKIE=%q, want %q and %q",
				raw.Status, env["HTTP_X_MULTI"], env["HTTP_COOKIE"], "a, b", "a=1; b=2")
		}
	})

	t.Run("traversal", func(t *testing.T) {
		testTraversal(t, s)
	})
}

// testTraversal checks that no request reaches a script outside the root:
// the evil scripts leave a marker when they run.
func testTraversal(t *testing.T, s *scgiStack) {
	marker := s.site.Marker()
	checkMarker := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("a script outside the root ran (%s exists)", marker)
			os.Remove(marker)
		}
	}
	// Straight to junction: nginx would normalise these targets away.
	raw := []struct {
		name string
		vars []scgiVar
	}{
		{"dotdot", scgiRequest("GET", "/cgi-bin/../outside/evil", 0)},
		{"dotdot-deep", scgiRequest("GET", "/cgi-bin/x/../../outside/evil", 0)},
		{"encoded-dotdot", []scgiVar{
			{"CONTENT_LENGTH", "0"}, {"SCGI", "1"}, {"REQUEST_METHOD", "GET"},
			{"REQUEST_URI", "/cgi-bin/%2e%2e/outside/evil"},
			{"DOCUMENT_URI", "/cgi-bin/../outside/evil"},
			{"QUERY_STRING", ""}, {"SERVER_PROTOCOL", "HTTP/1.1"},
			{"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"}, {"REMOTE_ADDR", "127.0.0.1"},
		}},
		{"encoded-dotdot-only-uri", []scgiVar{
			{"CONTENT_LENGTH", "0"}, {"SCGI", "1"}, {"REQUEST_METHOD", "GET"},
			{"REQUEST_URI", "/cgi-bin/%2E%2E/outside/evil"},
			{"SERVER_PROTOCOL", "HTTP/1.1"}, {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"},
		}},
		{"symlink-out-of-root", scgiRequest("GET", "/cgi-bin/link-evil", 0)},
		{"script-filename-outside", scgiRequest("GET", "/cgi-bin/env.sh", 0,
			scgiVar{"SCRIPT_FILENAME", filepath.Join(s.site.Outside, "evil")})},
		{"script-name-dotdot", scgiRequest("GET", "/cgi-bin/env.sh", 0,
			scgiVar{"SCRIPT_NAME", "/cgi-bin/../outside/evil"}, scgiVar{"PATH_INFO", ""})},
	}
	for _, tt := range raw {
		t.Run("scgi/"+tt.name, func(t *testing.T) {
			r := scgiDo(t, s.SCGI, tt.vars, nil)
			t.Logf("status %d", r.Status)
			if strings.Contains(r.Body, "EVIL RAN") {
				t.Errorf("evil script answered: %d %q", r.Status, r.Body)
			}
			switch {
			case strings.HasPrefix(tt.name, "script-"):
				// SCRIPT_FILENAME / SCRIPT_NAME are advice: junction may refuse
				// the request or ignore the advice and run env.sh from the URL.
				if r.Status != 403 && !(r.Status == 200 && strings.Contains(r.Body, "GATEWAY_INTERFACE=")) {
					t.Errorf("got %d %q, want 403 or env.sh's output", r.Status, r.Body)
				}
			case r.Status != 403:
				t.Errorf("got %d %q, want 403", r.Status, r.Body)
			}
			checkMarker(t)
		})
	}
	// Through nginx: whatever nginx makes of these, no script outside the
	// root may run.
	via := []string{
		"/cgi-bin/../outside/evil",
		"/cgi-bin/%2e%2e/outside/evil",
		"/cgi-bin/%2E%2E%2Foutside/evil",
		"/cgi-bin/..%2foutside/evil",
		"/cgi-bin/link-evil",
		"/outside/evil",
		"/cgi-bin/sf-outside",
	}
	for _, target := range via {
		t.Run("nginx"+target, func(t *testing.T) {
			r := rawHTTP(t, s.HTTP, target)
			t.Logf("status %d", r.Status)
			if r.Status != 400 && r.Status != 403 && r.Status != 404 {
				t.Errorf("GET %s = %d %q, want 400, 403 or 404", target, r.Status, r.Body)
			}
			checkMarker(t)
		})
	}
}
