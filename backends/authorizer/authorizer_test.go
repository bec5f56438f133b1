package authorizer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/internal/fcgiwire"
	"github.com/junction-gw/junction/vars"
)

// seen is what the guarded backend saw of a request.
type seen struct {
	vars   vars.Vars
	header http.Header
	body   string
}

// guarded is a backend that records what it got and answers 200 "ok".
type guarded struct {
	mu    sync.Mutex
	calls []seen
}

func (g *guarded) Serve(w http.ResponseWriter, r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.calls = append(g.calls, seen{vars: vars.FromContext(r.Context()), header: r.Header.Clone(), body: string(b)})
	g.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
	return nil
}

func (g *guarded) n() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func (g *guarded) last(t *testing.T) seen {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.calls) == 0 {
		t.Fatal("the guarded backend was not called")
	}
	return g.calls[len(g.calls)-1]
}

// counter is an Observer.
type counter struct{ allowed, denied, failed atomic.Int32 }

func (c *counter) Allowed() { c.allowed.Add(1) }
func (c *counter) Denied()  { c.denied.Add(1) }
func (c *counter) Failed()  { c.failed.Add(1) }

func newAuth(t *testing.T, next backends.Backend, o Options) *Authorizer {
	t.Helper()
	if o.Script == "" {
		o.Script = "/srv/auth/check.php"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := New(next, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// serve runs r through a and returns the response (an error page when Serve
// returned an error) and the error.
func serve(a *Authorizer, r *http.Request) (*httptest.ResponseRecorder, error) {
	w := httptest.NewRecorder()
	err := a.Serve(w, r)
	if err != nil {
		backends.WriteError(w, r, err, nil)
	}
	return w, err
}

// checkGoroutines fails t when goroutines started during the test are
// still running once it ends (gofast starts four per exchange).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestAllowPassesVariablesAndBody(t *testing.T) {
	checkGoroutines(t)
	var reads atomic.Int32
	var readsAtAuth atomic.Int32
	readsAtAuth.Store(-1)
	f := startFake(t, func(req fakeRequest) reply {
		readsAtAuth.Store(reads.Load())
		return reply{stdout: "Status: 200\r\nVariable-REMOTE_USER: alice\r\nVariable-Auth_Type: Basic\r\nX-Ignored: 1\r\nContent-Type: text/plain\r\n\r\nignored body"}
	})
	g := &guarded{}
	obs := &counter{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}, Observer: obs})

	body := strings.Repeat("0123456789", 100_000) // 1 MB, never seen by the authorizer
	r := httptest.NewRequest("POST", "/app/x?y=1", &countingReader{r: strings.NewReader(body), n: &reads})
	r.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
	r.Header.Set("Variable-REMOTE_USER", "mallory") // forged by the client
	r = r.WithContext(vars.NewContext(r.Context(), vars.Vars{{Name: "REMOTE_USER", Value: "front"}, {Name: "DOCUMENT_ROOT", Value: "/var/www"}}))
	w, err := serve(a, r)
	if err != nil || w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("Serve = %v, %d %q; want the guarded backend's 200 ok", err, w.Code, w.Body.String())
	}
	if readsAtAuth.Load() != 0 {
		t.Errorf("the request body was read %d times before the authorizer answered; want 0", readsAtAuth.Load())
	}
	s := g.last(t)
	if s.body != body {
		t.Errorf("guarded backend got %d body bytes, want %d intact", len(s.body), len(body))
	}
	if got := s.vars.Get("REMOTE_USER"); got != "alice" {
		t.Errorf("REMOTE_USER = %q, want alice (the authorizer's, over the front server's)", got)
	}
	if got := s.vars.Get("AUTH_TYPE"); got != "Basic" {
		t.Errorf("AUTH_TYPE = %q, want Basic", got)
	}
	if got := s.vars.Get("DOCUMENT_ROOT"); got != "/var/www" {
		t.Errorf("front server's DOCUMENT_ROOT = %q, want it kept", got)
	}
	if _, ok := s.vars.Lookup("X_IGNORED"); ok {
		t.Error("a header without Variable- became a variable")
	}
	if v := s.header.Get("Variable-REMOTE_USER"); v != "" {
		t.Errorf("the client's forged Variable-REMOTE_USER header reached the backend: %q", v)
	}

	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("authorizer got %d requests, want 1", len(reqs))
	}
	q := reqs[0]
	if q.role != fcgiwire.RoleAuthorizer {
		t.Errorf("role = %d, want FCGI_AUTHORIZER (2)", q.role)
	}
	if len(q.stdin) != 0 {
		t.Errorf("authorizer got %d bytes of stdin, want none", len(q.stdin))
	}
	for name, want := range map[string]string{
		"SCRIPT_FILENAME": "/srv/auth/check.php", "REQUEST_METHOD": "POST", "REQUEST_URI": "/app/x?y=1",
		"QUERY_STRING": "y=1", "HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0", "DOCUMENT_ROOT": "/var/www",
	} {
		if got := q.params[name]; got != want {
			t.Errorf("param %s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"CONTENT_LENGTH", "PATH_INFO", "PATH_TRANSLATED", "SCRIPT_NAME", "PATH"} {
		if v, ok := q.params[name]; ok {
			t.Errorf("param %s = %q sent; an authorizer must not get it", name, v)
		}
	}
	if obs.allowed.Load() != 1 || obs.denied.Load() != 0 || obs.failed.Load() != 0 {
		t.Errorf("observer allowed/denied/failed = %d/%d/%d, want 1/0/0", obs.allowed.Load(), obs.denied.Load(), obs.failed.Load())
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int32
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.n.Add(1)
	return c.r.Read(p)
}

func TestAllowAsHeaders(t *testing.T) {
	f := startFake(t, fixed("Status: 200\r\nVariable-REMOTE_USER: alice\r\nVariable-Role: admin\r\n\r\n"))
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}, Headers: true})
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Variable-Forged", "1")
	if w, err := serve(a, r); err != nil || w.Code != 200 {
		t.Fatalf("Serve = %v, %d", err, w.Code)
	}
	s := g.last(t)
	if got := s.header.Get("Variable-REMOTE_USER"); got != "alice" {
		t.Errorf("Variable-REMOTE_USER header = %q, want alice", got)
	}
	if got := s.header.Get("Variable-ROLE"); got != "admin" {
		t.Errorf("Variable-ROLE header = %q, want admin", got)
	}
	if got := s.header.Get("Variable-Forged"); got != "" {
		t.Errorf("forged Variable-Forged header reached the backend: %q", got)
	}
	if s.vars != nil {
		t.Errorf("vars = %v; with Headers the variables go in headers only", s.vars)
	}
}

// TestAllowBothForms: with Both (a route whose shadow is of the other
// kind) the variables are CGI variables and Variable-NAME headers alike.
func TestAllowBothForms(t *testing.T) {
	f := startFake(t, fixed("Status: 200\r\nVariable-REMOTE_USER: alice\r\n\r\n"))
	for _, headers := range []bool{false, true} {
		g := &guarded{}
		a := newAuth(t, g, Options{Instances: []string{f.addr()}, Headers: headers, Both: true})
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("Variable-Remote_user", "forged")
		if w, err := serve(a, r); err != nil || w.Code != 200 {
			t.Fatalf("Serve = %v, %d", err, w.Code)
		}
		s := g.last(t)
		if got := s.header.Values("Variable-Remote_user"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("Headers %v: Variable-REMOTE_USER headers %q, want only alice", headers, got)
		}
		if got := s.vars.Get("REMOTE_USER"); got != "alice" {
			t.Errorf("Headers %v: REMOTE_USER = %q, want alice", headers, got)
		}
	}
}

func TestVariablesDropped(t *testing.T) {
	f := startFake(t, fixed("Status: 200\r\nVariable-LD_PRELOAD: /tmp/x.so\r\nVariable-SCRIPT_FILENAME: /etc/passwd\r\n"+
		"Variable-HTTP_HOST: evil\r\nVariable-1BAD: x\r\nVariable-OK: yes\r\n\r\n"))
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}})
	if w, err := serve(a, httptest.NewRequest("GET", "/x", nil)); err != nil || w.Code != 200 {
		t.Fatalf("Serve = %v, %d", err, w.Code)
	}
	got := g.last(t).vars
	if len(got) != 1 || got.Get("OK") != "yes" {
		t.Errorf("vars = %v, want only OK=yes", got)
	}
}

func TestDenialRelayed(t *testing.T) {
	for _, tt := range []struct {
		name, stdout string
		status       int
		header       map[string]string
		body         string
	}{
		{"403 page", "Status: 403 Forbidden\r\nContent-Type: text/html\r\nX-Reason: no token\r\n\r\n<h1>go away</h1>",
			403, map[string]string{"Content-Type": "text/html", "X-Reason": "no token"}, "<h1>go away</h1>"},
		{"401 challenge", "Status: 401\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Type: text/plain\r\n\r\nlogin",
			401, map[string]string{"WWW-Authenticate": `Basic realm="r"`}, "login"},
		{"explicit 302", "Status: 302 Found\r\nLocation: /login?next=%2Fx\r\n\r\n",
			302, map[string]string{"Location": "/login?next=%2Fx"}, ""},
		{"Location alone", "Location: https://sso.example/\r\n\r\n",
			302, map[string]string{"Location": "https://sso.example/"}, ""},
		// CGI field names are case-insensitive (RFC 3875 6.3): this is a
		// denial, though gofast takes only "Status" as the status.
		{"status in lower case", "status: 403 Forbidden\r\nContent-Type: text/html\r\n\r\nno",
			403, map[string]string{"Status": "", "Content-Type": "text/html"}, "no"},
		{"STATUS in upper case", "STATUS: 401\r\nContent-Type: text/plain\r\n\r\nlogin",
			401, map[string]string{"Status": ""}, "login"},
		{"hop-by-hop dropped", "Status: 403\r\nContent-Type: text/plain\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nno",
			403, map[string]string{"Connection": "", "Transfer-Encoding": "", "Content-Length": "2"}, "no"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, fixed(tt.stdout))
			g := &guarded{}
			obs := &counter{}
			a := newAuth(t, g, Options{Instances: []string{f.addr()}, Observer: obs})
			w, err := serve(a, httptest.NewRequest("POST", "/x", strings.NewReader("body")))
			if err != nil {
				t.Fatalf("Serve = %v, want the authorizer's answer", err)
			}
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Body.String(), tt.status, tt.body)
			}
			for k, v := range tt.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if g.n() != 0 {
				t.Error("the guarded backend ran for a denied request")
			}
			if obs.denied.Load() != 1 {
				t.Errorf("denied = %d, want 1", obs.denied.Load())
			}
		})
	}
}

func TestStderrDoesNotSpoilDenial(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	f := startFake(t, func(fakeRequest) reply {
		return reply{stdout: "Status: 403\r\nContent-Type: text/plain\r\n\r\ndenied", stderr: "PHP Notice: something"}
	})
	a := newAuth(t, &guarded{}, Options{Instances: []string{f.addr()},
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	w, err := serve(a, httptest.NewRequest("GET", "/x", nil))
	if err != nil || w.Code != 403 || w.Body.String() != "denied" {
		t.Fatalf("got %v %d %q, want 403 denied", err, w.Code, w.Body.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "PHP Notice: something") {
		t.Errorf("stderr not logged: %s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestFailures(t *testing.T) {
	long := "Status: 403\r\nX-Long: " + strings.Repeat("a", 2000) + "\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("b", 3000)
	for _, tt := range []struct {
		name   string
		reply  reply
		status int
	}{
		{"no END_REQUEST", reply{stdout: "Status: 200\r\n\r\n", noEnd: true}, 502},
		{"nothing at all", reply{noEnd: true}, 502},
		{"unknown role", reply{status: fcgiwire.StatusUnknownRole}, 502},
		{"overloaded", reply{status: fcgiwire.StatusOverloaded}, 503},
		{"no head", reply{stdout: "just text"}, 502},
		{"bad status", reply{stdout: "Status: abc\r\n\r\n"}, 502},
		{"bad lower-case status", reply{stdout: "status: abc\r\nContent-Type: text/plain\r\n\r\n"}, 502},
		{"line without colon", reply{stdout: "Status: 403\r\nnonsense\r\n\r\nbody"}, 502},
		{"head without status or type", reply{stdout: "Variable-X: 1\r\n\r\n"}, 502},
		{"empty head", reply{stdout: "\r\nbody"}, 502},
		// An informational status is no answer: relayed, the client's
		// connection would carry the authorizer's body as a 200.
		{"1xx status", reply{stdout: "Status: 100 Continue\r\nContent-Type: text/plain\r\n\r\nbody"}, 502},
		{"101 status", reply{stdout: "Status: 101 Switching Protocols\r\nUpgrade: x\r\nContent-Type: text/plain\r\n\r\n"}, 502},
		{"hangs", reply{hang: true}, 504},
		{"header line over gofast's 1 KiB", reply{stdout: long}, 502},
		{"denial too big", reply{stdout: "Status: 403\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", 70_000)}, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			f := startFake(t, func(fakeRequest) reply { return tt.reply })
			g := &guarded{}
			obs := &counter{}
			a := newAuth(t, g, Options{Instances: []string{f.addr()}, Timeout: 300 * time.Millisecond, Observer: obs})
			w, err := serve(a, httptest.NewRequest("GET", "/x", nil))
			if err == nil || w.Code != tt.status {
				t.Fatalf("Serve = %v, page %d; want an error, %d", err, w.Code, tt.status)
			}
			if strings.Contains(w.Body.String(), "unix") || strings.Contains(w.Body.String(), "authorizer") {
				t.Errorf("error page leaks details: %q", w.Body.String())
			}
			if g.n() != 0 {
				t.Error("the guarded backend ran though the authorizer failed")
			}
			if obs.failed.Load() != 1 {
				t.Errorf("failed = %d, want 1", obs.failed.Load())
			}
		})
	}
}

func TestDown(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{"unix:" + filepath.Join(dir, "none.sock"), closedPort}})
	w, err := serve(a, httptest.NewRequest("GET", "/x", nil))
	var be *backends.Error
	if !errors.As(err, &be) || w.Code != 502 {
		t.Fatalf("Serve = %v, page %d; want a *backends.Error, 502", err, w.Code)
	}
	if errors.As(err, new(*backends.DialError)) {
		t.Error("the error is a DialError: a pool around the guarded backend would count it against its instance")
	}
	if !strings.Contains(err.Error(), "none.sock") || !strings.Contains(err.Error(), closedPort) {
		t.Errorf("error %q does not name both instances", err)
	}
}

func TestFailoverAndRoundRobin(t *testing.T) {
	var hits [2]atomic.Int32
	f0 := startFake(t, func(fakeRequest) reply { hits[0].Add(1); return reply{stdout: "Status: 200\r\n\r\n"} })
	f1 := startFake(t, func(fakeRequest) reply { hits[1].Add(1); return reply{stdout: "Status: 200\r\n\r\n"} })
	down := "unix:" + filepath.Join(t.TempDir(), "down.sock")
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f0.addr(), down, f1.addr()}})
	for i := range 6 {
		if w, err := serve(a, httptest.NewRequest("GET", "/x", nil)); err != nil || w.Code != 200 {
			t.Fatalf("request %d: Serve = %v, %d; want the down instance skipped", i, err, w.Code)
		}
	}
	// Starts 0, 1 (down, so 2), 2: f0 gets 2 of 6, f1 gets 4.
	if hits[0].Load() != 2 || hits[1].Load() != 4 {
		t.Errorf("hits = %d, %d; want 2, 4 (round robin, the down instance's turn going to the next)", hits[0].Load(), hits[1].Load())
	}
}

func TestKeepAlive(t *testing.T) {
	checkGoroutines(t)
	f := startFake(t, fixed("Status: 200\r\n\r\n"))
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}, KeepAlive: 2})
	for i := range 5 {
		if w, err := serve(a, httptest.NewRequest("GET", "/x", nil)); err != nil || w.Code != 200 {
			t.Fatalf("request %d: %v %d", i, err, w.Code)
		}
	}
	if n := f.accepts.Load(); n != 1 {
		t.Errorf("authorizer accepted %d connections for 5 sequential requests, want 1", n)
	}
	for _, q := range f.requests() {
		if q.flags&fcgiwire.FlagKeepConn == 0 {
			t.Error("request without FCGI_KEEP_CONN")
		}
	}
}

func TestKeptConnectionClosedByApplication(t *testing.T) {
	f := startFake(t, func(fakeRequest) reply { return reply{stdout: "Status: 200\r\n\r\n", closeIt: true} })
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}, KeepAlive: 2})
	for i := range 4 {
		if w, err := serve(a, httptest.NewRequest("GET", "/x", nil)); err != nil || w.Code != 200 {
			t.Fatalf("request %d: %v %d; want a closed kept connection replaced", i, err, w.Code)
		}
	}
	if n := f.accepts.Load(); n != 4 {
		t.Errorf("accepted %d connections, want 4 (one per request)", n)
	}
}

func TestNoKeepAliveClosesConnections(t *testing.T) {
	checkGoroutines(t)
	f := startFake(t, fixed("Status: 200\r\n\r\n"))
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}})
	for range 3 {
		if _, err := serve(a, httptest.NewRequest("GET", "/x", nil)); err != nil {
			t.Fatal(err)
		}
	}
	// The fake serves each connection until junction closes it (gofast
	// asks to keep it); checkGoroutines fails if a connection stays open.
	if n := f.accepts.Load(); n != 3 {
		t.Errorf("accepted %d, want 3", n)
	}
}

func TestClientGone(t *testing.T) {
	checkGoroutines(t)
	f := startFake(t, func(fakeRequest) reply { return reply{hang: true} })
	g := &guarded{}
	obs := &counter{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}, Observer: obs})
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
	go func() {
		for len(f.requests()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	err := a.Serve(httptest.NewRecorder(), r)
	if !backends.IsClientError(err) || !errors.Is(err, backends.ErrClientGone) {
		t.Fatalf("Serve = %v, want a ClientError wrapping ErrClientGone", err)
	}
	if obs.failed.Load() != 0 || a.Stats() != (Stats{}) {
		t.Errorf("a client that left counted as an authorizer failure (Stats %+v)", a.Stats())
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(&guarded{}, Options{Instances: []string{"nohost", "unix:relative"}})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{"script", "instances[0]", "instances[1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(&guarded{}, Options{Script: "/x.php"}); err == nil || !strings.Contains(err.Error(), "instances") {
		t.Errorf("New without instances = %v", err)
	}
}

// TestHeadLineLimit pins junction's copy of gofast's head rules to
// gofast's parser: a line of 1024 bytes with its CR LF passes, one more
// byte is refused at once (502) instead of stalling gofast until the
// timeout (504).
func TestHeadLineLimit(t *testing.T) {
	for _, tt := range []struct {
		lineLen int // with CR LF
		status  int
	}{{1024, 403}, {1025, 502}} {
		value := strings.Repeat("v", tt.lineLen-len("X-Long: \r\n"))
		f := startFake(t, fixed("Status: 403\r\nX-Long: "+value+"\r\nContent-Type: text/plain\r\n\r\nno"))
		a := newAuth(t, &guarded{}, Options{Instances: []string{f.addr()}, Timeout: 2 * time.Second})
		w, err := serve(a, httptest.NewRequest("GET", "/x", nil))
		if w.Code != tt.status {
			t.Errorf("line of %d bytes: %d (%v), want %d", tt.lineLen, w.Code, err, tt.status)
		}
		if tt.status == 403 && w.Header().Get("X-Long") != value {
			t.Errorf("line of %d bytes: X-Long not relayed", tt.lineLen)
		}
	}
}

func TestConcurrent(t *testing.T) {
	checkGoroutines(t)
	f := startFake(t, func(req fakeRequest) reply {
		if req.params["HTTP_AUTHORIZATION"] == "yes" {
			return reply{stdout: "Status: 200\r\nVariable-USER: " + req.params["QUERY_STRING"] + "\r\n\r\n"}
		}
		return reply{stdout: "Status: 403\r\nContent-Type: text/plain\r\n\r\n" + req.params["QUERY_STRING"]}
	})
	g := &guarded{}
	a := newAuth(t, g, Options{Instances: []string{f.addr()}, KeepAlive: 4})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			q := "u" + strconv.Itoa(i)
			r := httptest.NewRequest("POST", "/x?"+q, strings.NewReader(q))
			if i%2 == 0 {
				r.Header.Set("Authorization", "yes")
			}
			w, err := serve(a, r)
			switch {
			case err != nil:
				t.Errorf("request %d: %v", i, err)
			case i%2 == 0 && (w.Code != 200 || w.Body.String() != "ok"):
				t.Errorf("request %d: %d %q, want allowed", i, w.Code, w.Body.String())
			case i%2 == 1 && (w.Code != 403 || w.Body.String() != q):
				t.Errorf("request %d: %d %q, want its own denial", i, w.Code, w.Body.String())
			}
		})
	}
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.calls) != 25 {
		t.Fatalf("guarded backend ran %d times, want 25", len(g.calls))
	}
	for _, c := range g.calls {
		if c.vars.Get("USER") != c.body {
			t.Errorf("request with body %q got USER=%q: variables crossed requests", c.body, c.vars.Get("USER"))
		}
	}
}
