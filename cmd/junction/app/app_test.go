package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/config"
)

// examplesRoot is the shipped script directory, which these tests serve.
func examplesRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", "..", "examples", "cgi-bin"))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// testConfig returns a validated config with the given listeners, all
// serving the example scripts under /cgi-bin/.
func testConfig(t *testing.T, listeners string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
shutdown_timeout: 10s
listeners:
%s
backends:
  scripts: {type: cgi, root: %q, url_prefix: /cgi-bin/, timeout: 10s}
`, listeners, examplesRoot(t))), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends log lines to the test log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startApp runs the app until the test ends. wait returns Run's result,
// failing the test if Run does not return within 15s of cancel.
func startApp(t testing.TB, cfg *config.Config) (a *App, cancel context.CancelFunc, wait func() error) {
	t.Helper()
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err = a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = a.Run(ctx); close(done) }()
	wait = func() error {
		select {
		case <-done:
			return runErr
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	})
	return a, cancel, wait
}

// scgiRequest encodes a bodiless request as nginx's scgi_params would.
func scgiRequest(method, uri string) []byte {
	path, query, _ := strings.Cut(uri, "?")
	pairs := [][2]string{
		{"CONTENT_LENGTH", "0"}, {"SCGI", "1"}, {"REQUEST_METHOD", method},
		{"REQUEST_URI", uri}, {"DOCUMENT_URI", path}, {"QUERY_STRING", query},
		{"SERVER_PROTOCOL", "HTTP/1.1"}, {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"},
		{"REMOTE_ADDR", "127.0.0.1"}, {"REMOTE_PORT", "40000"}, {"HTTP_HOST", "localhost"},
	}
	var head strings.Builder
	for _, p := range pairs {
		head.WriteString(p[0] + "\x00" + p[1] + "\x00")
	}
	return fmt.Appendf(nil, "%d:%s,", head.Len(), head.String())
}

// scgiResponse is a parsed CGI-style SCGI reply.
type scgiResponse struct {
	status string
	header http.Header
	body   string
}

func readSCGIResponse(t *testing.T, r io.Reader) scgiResponse {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading SCGI reply: %v", err)
	}
	head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok {
		t.Fatalf("SCGI reply has no header end: %q", raw)
	}
	res := scgiResponse{header: http.Header{}, body: body}
	for line := range strings.SplitSeq(head, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		res.header.Add(k, strings.TrimSpace(v))
	}
	res.status = res.header.Get("Status")
	return res
}

func scgiDo(t *testing.T, addr, method, uri string) scgiResponse {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(scgiRequest(method, uri)); err != nil {
		t.Fatal(err)
	}
	return readSCGIResponse(t, c)
}

func TestServeHTTPAndSCGI(t *testing.T) {
	cfg := testConfig(t, `
  - {protocol: http, address: "127.0.0.1:0", backend: scripts}
  - {protocol: scgi, address: "127.0.0.1:0", backend: scripts}
`)
	a, _, _ := startApp(t, cfg)
	addrs := a.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs() = %v, want 2", addrs)
	}
	httpAddr, scgiAddr := addrs[0].String(), addrs[1].String()
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	httpTests := []struct {
		path, wantStatus, wantBody, wantLocation string
	}{
		{"/cgi-bin/hello.sh", "200 OK", "Hello\n", ""},
		{"/cgi-bin/nostatus.sh", "200 OK", "<html><body>no status line</body></html>\n", ""},
		{"/cgi-bin/local-redirect.sh", "200 OK", "Hello\n", ""},
		{"/cgi-bin/redirect.sh", "302 Found", "moved to ../x\n", "../x"},
		{"/cgi-bin/no-such-script", "404 Not Found", "", ""},
	}
	for _, tt := range httpTests {
		t.Run("http"+tt.path, func(t *testing.T) {
			res, err := client.Get("http://" + httpAddr + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.Status != tt.wantStatus {
				t.Errorf("status = %q, want %q (body %q)", res.Status, tt.wantStatus, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if got := res.Header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location = %q, want %q", got, tt.wantLocation)
			}
		})
	}

	scgiTests := []struct {
		uri, wantStatus, wantBody, wantLocation string
	}{
		{"/cgi-bin/hello.sh", "200 OK", "Hello\n", ""},
		// AWStats-style: no Status from the script; SCGI needs one.
		{"/cgi-bin/nostatus.sh", "200 OK", "<html><body>no status line</body></html>\n", ""},
		// An explicit 302 passes through with its relative Location.
		{"/cgi-bin/redirect.sh", "302 Found", "moved to ../x\n", "../x"},
	}
	for _, tt := range scgiTests {
		t.Run("scgi"+tt.uri, func(t *testing.T) {
			res := scgiDo(t, scgiAddr, "GET", tt.uri)
			if res.status != tt.wantStatus || res.body != tt.wantBody {
				t.Errorf("got %q %q, want %q %q", res.status, res.body, tt.wantStatus, tt.wantBody)
			}
			if got := res.header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location = %q, want %q", got, tt.wantLocation)
			}
		})
	}
}

// TestGracefulShutdown cancels Run while a script is still streaming: the
// response must complete, and Run must then return nil.
func TestGracefulShutdown(t *testing.T) {
	cfg := testConfig(t, `
  - {protocol: scgi, address: "127.0.0.1:0", backend: scripts}
`)
	a, cancel, wait := startApp(t, cfg)
	c, err := net.DialTimeout("tcp", a.Addrs()[0].String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(scgiRequest("GET", "/cgi-bin/stream.sh")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	// Wait for the first output line so the request is surely in flight.
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		if line == "first\n" {
			break
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	// Run returned, so the process would exit now: the response must be
	// complete already, not still on its way.
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("after Run returned got %q, %v; want the rest of the response and EOF", rest, err)
	}
	if _, err := net.DialTimeout("tcp", a.Addrs()[0].String(), time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

func TestServeInetdPipe(t *testing.T) {
	tests := []struct {
		uri, wantStatus, wantBody string
	}{
		{"/cgi-bin/hello.sh", "200 OK", "Hello\n"},
		{"/cgi-bin/nph-hello.sh", "", "Hello from an NPH script\n"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			// The first listener decides; its address is never bound.
			cfg := testConfig(t, `
  - {protocol: scgi, address: "127.0.0.1:1", backend: scripts}
  - {protocol: http, address: "127.0.0.1:2", backend: scripts}
`)
			a, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			client, srv := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- a.ServeInetd(context.Background(), srv) }()
			client.SetDeadline(time.Now().Add(10 * time.Second))
			go client.Write(scgiRequest("GET", tt.uri))
			raw, err := io.ReadAll(client)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(string(raw), tt.wantBody) {
				t.Errorf("reply %q does not end with %q", raw, tt.wantBody)
			}
			if tt.wantStatus != "" && !strings.Contains(string(raw), "Status: "+tt.wantStatus) {
				t.Errorf("reply %q lacks Status: %s", raw, tt.wantStatus)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ServeInetd did not return after the connection ended")
			}
			if a.Addrs() != nil {
				t.Error("inetd mode bound a listener")
			}
		})
	}
}

func TestNewMissingRoot(t *testing.T) {
	cfg := testConfig(t, `
  - {protocol: scgi, address: "127.0.0.1:0", backend: scripts}
`)
	cfg.Backends["scripts"].Root = filepath.Join(t.TempDir(), "missing")
	if _, err := New(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "backends.scripts") {
		t.Errorf("New with a missing root: err = %v, want one naming backends.scripts", err)
	}
}
