package integration

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// inetdConfig is a config for `junction inetd`: the connection arrives on
// stdin, so the listener's address is never bound; its protocol and backend
// say how to serve the connection.
func inetdConfig(t *testing.T, root string) string {
	return fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s}
`, freeAddr(t), root)
}

// serveInetd accepts one connection from l and runs `junction inetd -c cfg`
// with the accepted socket as its stdin and stdout, as inetd does. It
// returns the finished process; the caller checks its exit.
func serveInetd(t *testing.T, l net.Listener, cfg string) *proc {
	t.Helper()
	if err := l.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	f, err := c.(*net.TCPConn).File()
	c.Close() // the child gets its own descriptor; ours must not hold the socket open
	if err != nil {
		t.Fatalf("socket file: %v", err)
	}
	defer f.Close()
	cmd := junctionCommand(t, "inetd", "-c", cfg)
	cmd.Stdin, cmd.Stdout = f, f
	return startCmd(t, "junction inetd", cmd, 5*time.Second, false)
}

// waitExit waits for p to exit by itself and fails unless it exits 0.
func waitExit(t *testing.T, p *proc, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			p.dump(t)
			t.Errorf("junction inetd exited with %v, want status 0", p.err)
		}
	case <-time.After(timeout):
		p.dump(t)
		t.Errorf("junction inetd still running %v after its connection ended", timeout)
	}
}

// TestInetd runs `junction inetd` on a socket passed as stdin/stdout, once
// with a raw SCGI client and once per request behind nginx.
func TestInetd(t *testing.T) {
	needJunction(t)
	site := newSite(t)
	cfg := writeFile(t, t.TempDir(), "junction.yaml", inetdConfig(t, site.Root))

	t.Run("raw-scgi", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		done := make(chan scgiResult, 1)
		go func() {
			// scgiDo may not call t.Fatal off the test goroutine; wrap it.
			ft := &fatalRecorder{TB: t}
			defer func() { done <- ft.res }()
			defer ft.recover()
			ft.res = scgiDo(ft, l.Addr().String(), scgiRequest("GET", "/cgi-bin/hello.sh?inetd=1", 0), nil)
		}()
		p := serveInetd(t, l, cfg)
		var r scgiResult
		select {
		case r = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("no SCGI reply from junction inetd in 20s")
		}
		if r.Status != 200 || r.Body != "Hello from sh\nquery=inetd=1\n" {
			t.Errorf("got %d %q, want hello.sh's reply", r.Status, r.Body)
		}
		waitExit(t, p, 10*time.Second)
	})

	t.Run("nginx", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		http := freeAddr(t)
		startNginx(t, fmt.Sprintf(`server {
        listen %s;
        location / { include /etc/nginx/scgi_params; scgi_pass %s; }
    }`, http, l.Addr()))
		for i := range 3 {
			got := make(chan httpResult, 1)
			go func() {
				ft := &fatalRecorder{TB: t}
				defer func() { got <- ft.http }()
				defer ft.recover()
				ft.http = httpGet(ft, fmt.Sprintf("http://%s/cgi-bin/env.sh/p%d?i=%d", http, i, i))
			}()
			p := serveInetd(t, l, cfg)
			var r httpResult
			select {
			case r = <-got:
			case <-time.After(20 * time.Second):
				t.Fatal("no reply through nginx in 20s")
			}
			env := envOf(r.Body)
			if r.Status != 200 || env["PATH_INFO"] != fmt.Sprintf("/p%d", i) || env["QUERY_STRING"] != fmt.Sprintf("i=%d", i) {
				t.Errorf("request %d: %d PATH_INFO=%q QUERY_STRING=%q\n%s", i, r.Status, env["PATH_INFO"], env["QUERY_STRING"], r.Body)
			}
			waitExit(t, p, 10*time.Second)
		}
	})
}
