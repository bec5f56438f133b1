package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The front servers of issue 14 that junction had not been tried behind:
// Apache mod_proxy_scgi, lighttpd mod_scgi (host/port and bin-path), HAProxy
// fcgi-app (multiplexing), Caddy reverse_proxy with transport fastcgi, h2o
// fastcgi.connect. Each is a row of frontsClients; one driver runs the same
// cases through every row. Each front server runs with the configuration
// from examples/ that the README shows, with only its addresses and paths
// replaced (frontsExample).
//
// What each sends to name the script, and how junction maps it, is in
// backends/cgi/frontvars.go. None of them needs a junction setting beyond
// the listener; HAProxy needs multiplex: true to share connections.

// frontsExampleAddrs are the placeholder addresses and paths in the
// examples: the front server's address, junction's SCGI and FastCGI
// addresses, the front server's document root.
const (
	frontsExFront   = "127.0.0.1:8080"
	frontsExSCGI    = "127.0.0.1:4000"
	frontsExFastCGI = "127.0.0.1:9000"
	frontsExDocroot = "/var/www/html"
)

// frontsExample reads examples/name and applies the replacements (old, new
// pairs), failing when one of the old strings is not in the file: the
// example and the test cannot drift apart unnoticed.
func frontsExample(t testing.TB, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("examples/%s does not contain %q", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// frontsHostPort splits a 127.0.0.1:PORT address.
func frontsHostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// frontsStack is one front server in front of junction and a fresh site.
type frontsStack struct {
	site *site
	// Docroot is the front server's document root: an empty directory
	// that is not junction's root, as on a host where the two differ.
	Docroot string
	// HTTP is the front server's address, Junction junction's listener.
	HTTP, Junction string
	// junction is nil when the front server started junction itself.
	junction *junctionProc
	// front is the front server's process.
	front *proc
}

func (s *frontsStack) URL(target string) string { return "http://" + s.HTTP + target }

// frontsJunctionConfig is junction's config behind a front server; extra
// is added to the listener (", multiplex: true").
func frontsJunctionConfig(protocol, address, root, extra string) string {
	return fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: %s, address: %q, backend: scripts%s}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
`, protocol, address, extra, root)
}

// frontsNewStack lays out a site and, unless the front server starts
// junction itself (protocol ""), starts junction with one listener.
func frontsNewStack(t *testing.T, protocol, extra string) *frontsStack {
	t.Helper()
	s := &frontsStack{site: newSite(t), Docroot: openTempDir(t), HTTP: freeAddr(t)}
	if protocol != "" {
		s.Junction = freeAddr(t)
		s.junction = startJunction(t, frontsJunctionConfig(protocol, s.Junction, s.site.Root, extra), s.Junction)
	}
	return s
}

// frontsClient is one front server, with what it is known to do.
type frontsClient struct {
	name string
	// protocol is what junction speaks to it (scgi or fastcgi).
	protocol string
	start    func(t *testing.T) *frontsStack
	// streams: the client passes output on as the script prints it.
	streams bool
	// abortTicker: a client leaving ends a script that is writing;
	// abortSilent: also one that has written nothing yet.
	abortTicker, abortSilent bool
	// multiplexes: the client sends several requests at once on one
	// connection; keepsConns: it reuses connections between requests.
	multiplexes, keepsConns bool
	// env is what this client's example adds to the scripts' environment.
	env map[string]string
}

var frontsClients = []frontsClient{
	{name: "apache-scgi", protocol: "scgi", start: frontsApacheSCGI,
		streams: true, abortTicker: true},
	{name: "lighttpd-scgi", protocol: "scgi", start: frontsLighttpdSCGI,
		streams: true, abortTicker: true},
	{name: "lighttpd-scgi-spawn", protocol: "scgi", start: frontsLighttpdSCGISpawn,
		streams: true, abortTicker: true},
	{name: "haproxy", protocol: "fastcgi", start: frontsHAProxy(", multiplex: true"),
		streams: true, abortTicker: true, multiplexes: true, keepsConns: true},
	// A per-connection cap with max-reqs set to it: HAProxy spreads 16
	// requests over at least 4 connections. (A request beyond the cap
	// would be refused, FCGI_OVERLOADED, and left hanging by HAProxy.)
	{name: "haproxy-4-per-conn", protocol: "fastcgi", start: frontsHAProxy(", multiplex: true, max_requests_per_conn: 4"),
		streams: true, abortTicker: true, multiplexes: true, keepsConns: true},
	// Without option mpxs-conns and max-reqs HAProxy keeps connections
	// but sends one request at a time on each: junction's multiplex can
	// stay off. HAProxy 2.6 puts more requests on a busy connection when
	// max-reqs is set, even without mpxs-conns (which it says it then
	// ignores); a request junction refuses (FCGI_CANT_MPX_CONN) hangs in
	// HAProxy until its server timeout.
	{name: "haproxy-keep-conn", protocol: "fastcgi", start: frontsHAProxy(""),
		streams: true, abortTicker: true, keepsConns: true},
	{name: "caddy", protocol: "fastcgi", start: frontsCaddy,
		streams: true, abortTicker: true, env: map[string]string{"APP_ENV": "production"}},
	{name: "h2o", protocol: "fastcgi", start: frontsH2O,
		streams: true, abortTicker: true},
}

func frontsApacheSCGI(t *testing.T) *frontsStack {
	s := frontsNewStack(t, "scgi", "")
	conf := frontsExample(t, "apache-scgi.conf", frontsExSCGI, s.Junction)
	a := startApache(t, []string{"proxy", "proxy_scgi"}, fmt.Sprintf("Listen %s\n%s", s.HTTP, conf))
	s.front = a.proc
	return s
}

// frontsLighttpdPrelude binds lighttpd to s.HTTP with s.Docroot as its
// document root (startLighttpd's own htdocs is replaced).
func frontsLighttpdPrelude(t *testing.T, s *frontsStack) string {
	host, port := frontsHostPort(t, s.HTTP)
	return fmt.Sprintf("server.bind = %q\nserver.port = %s\n$HTTP[\"url\"] =~ \"^/\" { server.document-root = %q }\n", host, port, s.Docroot)
}

func frontsLighttpdSCGI(t *testing.T) *frontsStack {
	s := frontsNewStack(t, "scgi", "")
	_, jport := frontsHostPort(t, s.Junction)
	conf := frontsExample(t, "lighttpd-scgi.conf", `"port" => 4000`, `"port" => `+jport)
	s.front = startLighttpd(t, frontsLighttpdPrelude(t, s)+conf, s.HTTP).proc
	return s
}

func frontsLighttpdSCGISpawn(t *testing.T) *frontsStack {
	needJunction(t)
	s := frontsNewStack(t, "", "")
	cfg := writeFile(t, t.TempDir(), "junction.yaml", frontsJunctionConfig("scgi", "fd:0", s.site.Root, ""))
	sock := filepath.Join(openTempDir(t), "junction-scgi.sock")
	conf := frontsExample(t, "lighttpd-scgi-spawn.conf",
		"/run/lighttpd/junction-scgi.sock", sock,
		"/usr/local/bin/junction", junctionBin,
		"/etc/junction-scgi.yaml", cfg)
	s.front = startLighttpd(t, frontsLighttpdPrelude(t, s)+conf, s.HTTP).proc
	return s
}

// frontsHAProxy starts HAProxy with examples/haproxy-fcgi.cfg in front of
// junction, whose fastcgi listener gets extra. Without multiplex in extra,
// the example's option mpxs-conns and max-reqs are dropped.
func frontsHAProxy(extra string) func(t *testing.T) *frontsStack {
	return func(t *testing.T) *frontsStack { return frontsHAProxyStart(t, extra) }
}

func frontsHAProxyStart(t *testing.T, extra string) *frontsStack {
	needBin(t, "/usr/sbin/haproxy", "haproxy")
	s := frontsNewStack(t, "fastcgi", extra)
	multiplex := strings.Contains(extra, "multiplex: true")
	pairs := []string{frontsExFront, s.HTTP, frontsExFastCGI, s.Junction, frontsExDocroot, s.Docroot}
	if !multiplex {
		pairs = append(pairs, "    option mpxs-conns", "    # option mpxs-conns", "    option max-reqs", "    # option max-reqs")
	}
	if _, n, ok := strings.Cut(extra, "max_requests_per_conn: "); ok {
		// max-reqs at most the listener's max_requests_per_conn.
		pairs = append(pairs, "option max-reqs 64", "option max-reqs "+n)
	}
	conf := frontsExample(t, "haproxy-fcgi.cfg", pairs...)
	file := writeFile(t, t.TempDir(), "haproxy.cfg", conf)
	if out, err := exec.Command("/usr/sbin/haproxy", "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	s.front = startProcess(t, "/usr/sbin/haproxy", []string{"-db", "-f", file}, file)
	waitListening(t, s.front, 10*time.Second, s.HTTP)
	return s
}

func frontsCaddy(t *testing.T) *frontsStack {
	needBin(t, "/usr/bin/caddy", "caddy")
	s := frontsNewStack(t, "fastcgi", "")
	conf := frontsExample(t, "Caddyfile",
		frontsExFront, s.HTTP, frontsExFastCGI, s.Junction, frontsExDocroot, s.Docroot)
	dir := t.TempDir()
	file := writeFile(t, dir, "Caddyfile", conf)
	cmd := exec.Command("/usr/bin/caddy", "run", "--config", file, "--adapter", "caddyfile")
	// Caddy keeps its state (autosaved config, certificates) under XDG
	// directories: a temp dir, not the user's.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	s.front = startCmd(t, "caddy", cmd, 5*time.Second, false, file)
	waitListening(t, s.front, 10*time.Second, s.HTTP)
	return s
}

func frontsH2O(t *testing.T) *frontsStack {
	needBin(t, "/usr/bin/h2o", "h2o")
	s := frontsNewStack(t, "fastcgi", "")
	_, port := frontsHostPort(t, s.HTTP)
	_, jport := frontsHostPort(t, s.Junction)
	conf := frontsExample(t, "h2o.conf", "port: 8080", "port: "+port, "port: 9000", "port: "+jport)
	file := writeFile(t, t.TempDir(), "h2o.conf", conf)
	if out, err := exec.Command("/usr/bin/h2o", "-t", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("h2o -t: %v\n%s", err, out)
	}
	s.front = startProcess(t, "/usr/bin/h2o", []string{"-c", file}, file)
	waitListening(t, s.front, 10*time.Second, s.HTTP)
	return s
}

// TestFronts drives the CGI scripts through every front server of
// frontsClients, each with its example configuration.
func TestFronts(t *testing.T) {
	for _, c := range frontsClients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := c.start(t)
			frontsCases(t, c, s)
		})
	}
}

// frontsCases is the one set of cases every front server runs.
func frontsCases(t *testing.T, c frontsClient, s *frontsStack) {
	t.Run("get", func(t *testing.T) {
		r := httpGet(t, s.URL("/cgi-bin/hello.sh?lang=1"))
		if r.Status != 200 || r.Body != "Hello from sh\nquery=lang=1\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q", ct)
		}
	})

	t.Run("script-vars", func(t *testing.T) {
		// The client's own SCRIPT_NAME / PATH_INFO / SCRIPT_FILENAME differ
		// (frontvars.go); the script sees the same whatever the client.
		target := "/cgi-bin/env.sh/a%20b/c?x=1"
		r := httpGet(t, s.URL(target))
		if r.Status != 200 {
			t.Fatalf("GET %s = %d %q", target, r.Status, r.Body)
		}
		env := envOf(r.Body)
		want := map[string]string{
			"SCRIPT_NAME":     "/cgi-bin/env.sh",
			"PATH_INFO":       "/a b/c",
			"SCRIPT_FILENAME": filepath.Join(s.site.Root, "env.sh"),
			"QUERY_STRING":    "x=1",
			"REQUEST_URI":     target,
			"REQUEST_METHOD":  "GET",
		}
		for k, v := range c.env {
			want[k] = v
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s=%q, want %q", k, env[k], v)
			}
		}
		t.Logf("DOCUMENT_ROOT=%q PATH_TRANSLATED=%q SERVER_NAME=%q SERVER_SOFTWARE=%q",
			env["DOCUMENT_ROOT"], env["PATH_TRANSLATED"], env["SERVER_NAME"], env["SERVER_SOFTWARE"])
	})

	t.Run("post-10MB", func(t *testing.T) {
		checkPost10MB(t, s.URL)
	})

	t.Run("no-status-line", func(t *testing.T) {
		checkNoStatusLine(t, s.URL)
	})

	t.Run("client-redirect", func(t *testing.T) {
		checkClientRedirect(t, s.URL)
	})

	t.Run("local-redirect", func(t *testing.T) {
		// junction follows it (RFC 3875 6.2.2); the client never sees it.
		r := httpGet(t, s.URL("/cgi-bin/localredirect.sh?from=redirect"))
		if r.Status != 200 || !strings.HasPrefix(r.Body, "Hello from sh\n") || r.Header.Get("Location") != "" {
			t.Fatalf("got %d %q Location %q, want hello.sh's 200 body", r.Status, r.Body, r.Header.Get("Location"))
		}
	})

	t.Run("streaming", func(t *testing.T) {
		if c.streams {
			checkStreams(t, s.HTTP)
			return
		}
		// A buffering client must still deliver the whole output.
		r := httpGet(t, s.URL("/cgi-bin/stream.sh"))
		if r.Status != 200 || r.Body != "first\nsecond\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
		t.Logf("%s buffers the response: not streamed", c.name)
	})

	t.Run("concurrent-50", func(t *testing.T) {
		checkConcurrentHello(t, 50, s.URL)
	})

	t.Run("client-abort", func(t *testing.T) {
		frontsCheckAbort(t, c, s)
	})

	t.Run("in-flight-16", func(t *testing.T) {
		frontsCheckInFlight(t, c, s)
	})
}

// frontsTicker writes ticker.sh into the site: it records its pid, then
// writes a line every 200ms until killed.
func frontsTicker(t *testing.T, s *frontsStack) {
	p := writeFile(t, s.site.Root, "ticker.sh", `#!/bin/sh
name=$(printf '%s' "$QUERY_STRING" | tr -cd 'A-Za-z0-9_-')
echo $$ > "$(dirname "$0")/../run/ticker-$name.pid"
printf 'Content-Type: text/plain\r\n\r\n'
while :; do echo tick; sleep 0.2; done
`)
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// frontsCheckAbort has the client leave during a script that is writing
// (ticker.sh) and one that has written nothing (sleep.sh), and checks the
// script ends where the client propagates it. Where it does not, the
// script is left to its timeout and the test says so.
func frontsCheckAbort(t *testing.T, c frontsClient, s *frontsStack) {
	frontsTicker(t, s)
	tests := []struct {
		script, pidPrefix string
		propagated        bool
	}{
		{"ticker.sh", "ticker-", c.abortTicker},
		{"sleep.sh", "sleep-", c.abortSilent},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			name := "abort" + strings.ReplaceAll(c.name, "-", "")
			conn, err := net.DialTimeout("tcp", s.HTTP, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /cgi-bin/%s?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", tt.script, name)
			pid := readPIDFile(t, filepath.Join(s.site.Run, tt.pidPrefix+name+".pid"), 10*time.Second)
			if tt.script == "ticker.sh" {
				// Wait for output to reach the client before leaving.
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("no output from ticker.sh: %v", err)
					}
					if strings.TrimRight(line, "\r\n") == "tick" {
						break
					}
				}
			}
			conn.Close()
			wait := 10 * time.Second
			if !tt.propagated {
				wait = 3 * time.Second // only to notice a client that started propagating it
			}
			gone := waitFor(wait, func() bool { return !pidAlive(pid) })
			switch {
			case tt.propagated && !gone:
				t.Fatalf("script pid %d still alive %v after the client left", pid, wait)
			case !tt.propagated && gone:
				t.Errorf("script pid %d ended when the client left: %s propagates this abort, update frontsClients", pid, c.name)
			case !tt.propagated:
				t.Logf("%s does not pass this abort on: the script runs until its timeout", c.name)
			}
		})
	}
}

// frontsCheckInFlight sends n requests of a script that answers only once
// all n are running and the test says go (a barrier in the site's run/
// directory), so all n are in flight at once. Meanwhile it counts the
// FastCGI connections open at junction: fewer than n proves a multiplexing
// client shares connections between requests at the same time; any other
// client needs one each.
func frontsCheckInFlight(t *testing.T, c frontsClient, s *frontsStack) {
	const n = 16
	dir := filepath.Join(s.site.Run, "barrier")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, s.site.Root, "barrier.sh", `#!/bin/sh
run="$(dirname "$0")/../run"
: > "$run/barrier/$QUERY_STRING"
i=0
while [ ! -e "$run/barrier-go" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
printf 'Content-Type: text/plain\r\n\r\n'
printf 'running=%s\n' "$(ls "$run/barrier" | wc -l)"
`)
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	client := newHTTPClient(60 * time.Second)
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := client.Get(s.URL(fmt.Sprintf("/cgi-bin/barrier.sh?r%d", i)))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := readAllLimit(resp.Body, 1<<20)
			if err != nil || resp.StatusCode != 200 || string(b) != fmt.Sprintf("running=%d\n", n) {
				errs <- fmt.Errorf("request %d: %d %q %v", i, resp.StatusCode, b, err)
			}
		})
	}
	running := func() int {
		ents, _ := os.ReadDir(dir)
		return len(ents)
	}
	all := waitFor(30*time.Second, func() bool { return running() == n })
	// Every connection was accepted, and logged, before its request's
	// script started.
	open := -1
	if all && s.junction != nil && c.protocol == "fastcgi" {
		out := s.junction.Output()
		open = strings.Count(out, `msg="connection accepted" protocol=fastcgi`) -
			strings.Count(out, `msg="connection ended" protocol=fastcgi`)
	}
	writeFile(t, s.site.Run, "barrier-go", "")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !all {
		t.Fatalf("only %d of %d requests were running at once", running(), n)
	}
	if open < 0 {
		return // SCGI is one request per connection by design
	}
	t.Logf("%d requests in flight at once over %d open FastCGI connections", n, open)
	switch {
	case c.multiplexes && open >= n:
		t.Errorf("%d requests at once over %d connections: not multiplexed", n, open)
	case !c.multiplexes && open < n:
		t.Errorf("%d requests at once over %d connections: multiplexed, but junction does not multiplex here", n, open)
	}
}

// frontsExamples are the example files TestFronts loads.
var frontsExamples = []string{"apache-scgi.conf", "lighttpd-scgi.conf", "lighttpd-scgi-spawn.conf",
	"haproxy-fcgi.cfg", "Caddyfile", "h2o.conf"}

// TestFrontsREADME checks that the README's "Front servers" section shows
// each example TestFronts runs, byte for byte.
func TestFrontsREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Front servers\n")
	if !ok {
		t.Fatal("README has no \"## Front servers\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, name := range frontsExamples {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(section, "```\n"+string(b)+"```\n") && !strings.Contains(section, "\n"+string(b)+"```\n") {
			t.Errorf("README's Front servers section does not show examples/%s verbatim", name)
		}
	}
}
