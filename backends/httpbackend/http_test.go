package httpbackend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// seen is what the echo instance reports about the request it got.
type seen struct {
	Host       string
	RequestURI string
	Header     http.Header
}

// echoInstance answers every request with what it received, as JSON, and
// sets hop-by-hop response headers that must not reach the client.
func echoInstance(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End-To-End", "kept")
		if err := json.NewEncoder(w).Encode(seen{Host: r.Host, RequestURI: r.RequestURI, Header: r.Header}); err != nil {
			t.Errorf("instance: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newBackend(t *testing.T, o Options) *Backend {
	t.Helper()
	b, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func addrOf(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func decodeSeen(t *testing.T, rec *httptest.ResponseRecorder) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("decoding instance echo %q: %v", rec.Body.String(), err)
	}
	return s
}

func TestForwardingHeaders(t *testing.T) {
	srv := echoInstance(t)
	b := newBackend(t, Options{Addr: addrOf(srv)})
	tests := []struct {
		name       string
		remote     string
		tls        bool
		in         map[string][]string
		wantXFF    string
		wantProto  string
		wantFwd    string
		wantXFHost string
	}{
		{
			name: "plain", remote: "192.0.2.7:5555",
			wantXFF: "192.0.2.7", wantProto: "http", wantXFHost: "example.org",
			wantFwd: "for=192.0.2.7;host=example.org;proto=http",
		},
		{
			name: "tls and appended", remote: "192.0.2.7:5555", tls: true,
			in:      map[string][]string{"X-Forwarded-For": {"198.51.100.1", "198.51.100.2"}, "Forwarded": {"for=198.51.100.1"}},
			wantXFF: "198.51.100.1, 198.51.100.2, 192.0.2.7", wantProto: "https", wantXFHost: "example.org",
			wantFwd: "for=198.51.100.1, for=192.0.2.7;host=example.org;proto=https",
		},
		{
			name: "front server already appended the client", remote: "192.0.2.7:5555",
			in:      map[string][]string{"X-Forwarded-For": {"198.51.100.1, 192.0.2.7"}},
			wantXFF: "198.51.100.1, 192.0.2.7", wantProto: "http", wantXFHost: "example.org",
			wantFwd: "for=192.0.2.7;host=example.org;proto=http",
		},
		{
			name: "client-sent proto and host are replaced", remote: "192.0.2.7",
			in:      map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}},
			wantXFF: "192.0.2.7", wantProto: "http", wantXFHost: "example.org",
			wantFwd: "for=192.0.2.7;host=example.org;proto=http",
		},
		{
			name: "ipv6", remote: "[2001:db8::1]:443",
			wantXFF: "2001:db8::1", wantProto: "http", wantXFHost: "example.org",
			wantFwd: `for="[2001:db8::1]";host=example.org;proto=http`,
		},
		{
			name: "ipv4-mapped ipv6 is written as ipv4", remote: "[::ffff:192.0.2.9]:80",
			wantXFF: "192.0.2.9", wantProto: "http", wantXFHost: "example.org",
			wantFwd: "for=192.0.2.9;host=example.org;proto=http",
		},
		{
			name: "unknown client", remote: "@",
			wantXFF: "", wantProto: "http", wantXFHost: "example.org",
			wantFwd: "for=unknown;host=example.org;proto=http",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://example.org/path?q=1", nil)
			r.RemoteAddr = tt.remote
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, vs := range tt.in {
				r.Header[k] = vs
			}
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, r); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			s := decodeSeen(t, rec)
			if got := strings.Join(s.Header.Values("X-Forwarded-For"), "|"); got != tt.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tt.wantXFF)
			}
			if got := strings.Join(s.Header.Values("X-Forwarded-Proto"), "|"); got != tt.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tt.wantProto)
			}
			if got := strings.Join(s.Header.Values("X-Forwarded-Host"), "|"); got != tt.wantXFHost {
				t.Errorf("X-Forwarded-Host = %q, want %q", got, tt.wantXFHost)
			}
			if got := strings.Join(s.Header.Values("Forwarded"), "|"); got != tt.wantFwd {
				t.Errorf("Forwarded = %q, want %q", got, tt.wantFwd)
			}
			if s.Host != "example.org" {
				t.Errorf("Host = %q, want the client's example.org", s.Host)
			}
			if s.RequestURI != "/path?q=1" {
				t.Errorf("RequestURI = %q", s.RequestURI)
			}
		})
	}
}

func TestHopByHopAndProxyHeader(t *testing.T) {
	srv := echoInstance(t)
	b := newBackend(t, Options{Addr: addrOf(srv)})
	r := httptest.NewRequest("GET", "http://example.org/", nil)
	r.Header.Set("Connection", "X-Hop")
	r.Header.Set("X-Hop", "secret")
	r.Header.Set("Keep-Alive", "300")
	r.Header.Set("Proxy", "http://evil.example:3128")
	r.Header.Set("Proxy-Authorization", "Basic x")
	r.Header.Set("X-Keep", "yes")
	rec := httptest.NewRecorder()
	if err := b.Serve(rec, r); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	s := decodeSeen(t, rec)
	for _, h := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy", "Proxy-Authorization"} {
		if v, ok := s.Header[h]; ok {
			t.Errorf("instance got request header %s: %q", h, v)
		}
	}
	if s.Header.Get("X-Keep") != "yes" {
		t.Errorf("X-Keep lost: %v", s.Header)
	}
	for _, h := range []string{"Connection", "X-Resp-Hop", "Keep-Alive"} {
		if v, ok := rec.Header()[h]; ok {
			t.Errorf("client got response header %s: %q", h, v)
		}
	}
	if rec.Header().Get("X-End-To-End") != "kept" {
		t.Errorf("X-End-To-End lost: %v", rec.Header())
	}
}

func TestStripPrefix(t *testing.T) {
	srv := echoInstance(t)
	b := newBackend(t, Options{Addr: addrOf(srv), StripPrefix: "/app/"})
	tests := []struct {
		target   string
		wantURI  string
		wantCode int // an error status from Serve; 0 = proxied
	}{
		{"/app/x/y?q=1", "/x/y?q=1", 0},
		{"/app", "/", 0},
		{"/app/", "/", 0},
		{"/app/a%2Fb", "/a%2Fb", 0},
		{"/apps/x", "", http.StatusNotFound},
		{"/", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := b.Serve(rec, httptest.NewRequest("GET", tt.target, nil))
			if tt.wantCode != 0 {
				if backends.Status(err) != tt.wantCode || err == nil {
					t.Fatalf("Serve = %v, want status %d", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if got := decodeSeen(t, rec).RequestURI; got != tt.wantURI {
				t.Errorf("instance got %q, want %q", got, tt.wantURI)
			}
		})
	}
}

func TestPostBody10MB(t *testing.T) {
	const size = 10 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			t.Errorf("instance reading body: %v", err)
		}
		w.Header().Set("X-Body-Sha256", hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("X-Body-Len", strconv.FormatInt(n, 10))
		// And a large response back.
		if _, err := w.Write(pattern(size)); err != nil {
			t.Errorf("instance writing: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	b := newBackend(t, Options{Addr: addrOf(srv)})
	body := pattern(size + 7)
	r := httptest.NewRequest("POST", "/upload", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	if err := b.Serve(rec, r); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if want := sum(body); rec.Header().Get("X-Body-Sha256") != want {
		t.Errorf("instance body sha256 %s (len %s), want %s", rec.Header().Get("X-Body-Sha256"), rec.Header().Get("X-Body-Len"), want)
	}
	if got, want := sum(rec.Body.Bytes()), sum(pattern(size)); got != want {
		t.Errorf("response sha256 %s (len %d), want %s", got, rec.Body.Len(), want)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// flushRecorder reports every flush with the body written so far.
type flushRecorder struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	flushes chan string
}

func (f *flushRecorder) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ResponseRecorder.Write(p)
}

func (f *flushRecorder) Flush() {
	f.mu.Lock()
	body := f.Body.String()
	f.mu.Unlock()
	f.flushes <- body
}

func TestStreamingFlush(t *testing.T) {
	const one, two = "data: one\n\n", "data: two\n\n"
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"event stream", map[string]string{"Content-Type": "text/event-stream"}},
		{"chunked", map[string]string{"Content-Type": "text/plain"}},
		// A known length is not a streaming response to ReverseProxy;
		// junction flushes it too, before a read that waits for the instance.
		{"content length", map[string]string{"Content-Type": "text/plain", "Content-Length": strconv.Itoa(len(one + two))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				io.WriteString(w, one)
				w.(http.Flusher).Flush()
				<-release
				io.WriteString(w, two)
			}))
			t.Cleanup(srv.Close)
			b := newBackend(t, Options{Addr: addrOf(srv)})
			fr := &flushRecorder{ResponseRecorder: httptest.NewRecorder(), flushes: make(chan string, 100)}
			done := make(chan error, 1)
			go func() { done <- b.Serve(fr, httptest.NewRequest("GET", "/events", nil)) }()
			timeout := time.After(10 * time.Second)
			for got := false; !got; {
				select {
				case body := <-fr.flushes:
					got = body == one
				case <-timeout:
					close(release)
					<-done
					t.Fatal("first event was not flushed while the instance held the response open")
				}
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if got := fr.Body.String(); got != one+two {
				t.Errorf("body %q", got)
			}
		})
	}
}

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDialErrorReturnedBodyUnread(t *testing.T) {
	for _, addr := range []string{deadAddr(t), "unix:" + filepath.Join(t.TempDir(), "none.sock")} {
		t.Run(addr, func(t *testing.T) {
			b := newBackend(t, Options{Addr: addr, DialTimeout: 2 * time.Second})
			const payload = "field=value&other=1"
			r := httptest.NewRequest("POST", "/form", strings.NewReader(payload))
			rec := httptest.NewRecorder()
			err := b.Serve(rec, r)
			var de *backends.DialError
			if !errors.As(err, &de) {
				t.Fatalf("Serve = %v (%T), want *backends.DialError", err, err)
			}
			if de.Addr != addr {
				t.Errorf("DialError.Addr = %q, want %q", de.Addr, addr)
			}
			assertNothingWritten(t, rec)
			rest, rerr := io.ReadAll(r.Body)
			if rerr != nil || string(rest) != payload {
				t.Errorf("body after dial error = %q, %v; want it unread", rest, rerr)
			}
		})
	}
}

func assertNothingWritten(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Body.Len() != 0 || len(rec.Header()) != 0 || rec.Flushed {
		t.Errorf("something was written: body %q header %v flushed %v", rec.Body, rec.Header(), rec.Flushed)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	// The instance never answers, so the timeout decides whatever its
	// length; short keeps the test fast.
	b := newBackend(t, Options{Addr: addrOf(srv), ResponseHeaderTimeout: 50 * time.Millisecond})
	rec := httptest.NewRecorder()
	err := b.Serve(rec, httptest.NewRequest("GET", "/slow", nil))
	var be *backends.Error
	if !errors.As(err, &be) || be.Status != http.StatusGatewayTimeout {
		t.Fatalf("Serve = %v, want a 504 *backends.Error", err)
	}
	assertNothingWritten(t, rec)
}

func TestBrokenInstance502(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		c.Close()
	}))
	t.Cleanup(srv.Close)
	b := newBackend(t, Options{Addr: addrOf(srv)})
	rec := httptest.NewRecorder()
	err := b.Serve(rec, httptest.NewRequest("GET", "/", nil))
	var be *backends.Error
	var de *backends.DialError
	if !errors.As(err, &be) || be.Status != http.StatusBadGateway || errors.As(err, &de) {
		t.Fatalf("Serve = %v, want a 502 *backends.Error", err)
	}
	assertNothingWritten(t, rec)
}

func TestClientCancelCancelsUpstream(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(cancelled)
	}))
	t.Cleanup(srv.Close)
	b := newBackend(t, Options{Addr: addrOf(srv)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", "/long", nil)
	rec := httptest.NewRecorder()
	done := make(chan error, 1)
	go func() { done <- b.Serve(rec, r) }()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the instance's request context was not cancelled")
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	assertNothingWritten(t, rec)
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "via unix "+r.Host)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	b := newBackend(t, Options{Addr: "unix:" + sock})
	rec := httptest.NewRecorder()
	if err := b.Serve(rec, httptest.NewRequest("GET", "http://app.example/", nil)); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if rec.Body.String() != "via unix app.example" {
		t.Errorf("body %q", rec.Body)
	}
}

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			io.WriteString(w, "ok")
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		addr, path string
		healthy    bool
		dial       bool
	}{
		{addrOf(srv), "/healthz", true, false},
		{addrOf(srv), "/moved", true, false},
		{addrOf(srv), "", false, false}, // "/" answers 500
		{deadAddr(t), "/healthz", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.addr+tt.path, func(t *testing.T) {
			b := newBackend(t, Options{Addr: tt.addr, HealthPath: tt.path})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := b.Check(ctx)
			if (err == nil) != tt.healthy {
				t.Fatalf("Check = %v, want healthy %v", err, tt.healthy)
			}
			var de *backends.DialError
			if errors.As(err, &de) != tt.dial {
				t.Errorf("Check = %v, want DialError %v", err, tt.dial)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{
		{Addr: ""},
		{Addr: "localhost"},
		{Addr: "unix:relative.sock"},
		{Addr: "127.0.0.1:80", StripPrefix: "app"},
		{Addr: "127.0.0.1:80", HealthPath: "health"},
		{Addr: "127.0.0.1:80", MaxConns: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestIsEventStream(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		{"text/event-stream", true},
		{"text/event-stream; charset=utf-8", true},
		{"Text/Event-Stream ;charset=utf-8", true},
		{" text/event-stream", true},
		{"text/event-streams", false},
		{"text/plain", false},
		{"", false},
		{"text/event-stream/x", false},
	}
	for _, tt := range tests {
		if got := isEventStream(tt.ct); got != tt.want {
			t.Errorf("isEventStream(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}
