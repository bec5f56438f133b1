package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/vars"
)

// stepClock returns start, then start+step, start+2*step, ...
func stepClock(start time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := start.Add(time.Duration(n) * step)
		n++
		return t
	}
}

var t0 = time.Date(2026, 3, 7, 14, 5, 9, 0, time.FixedZone("", -7*3600))

// backendHandler plays a balancer: it fills the Record and answers.
func backendHandler(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := FromContext(r.Context())
		rec.SetInstance("127.0.0.1:9000")
		rec.SetUpstreamTime(12 * time.Millisecond)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

func serve(t *testing.T, f Format, h http.Handler, r *http.Request) string {
	t.Helper()
	var out bytes.Buffer
	l := New(Options{Writer: &out, Format: f, Now: stepClock(t0, 15*time.Millisecond)})
	l.Middleware("main", "fastcgi", func(*http.Request) string { return "php" }, h).ServeHTTP(httptest.NewRecorder(), r)
	return out.String()
}

func TestCombined(t *testing.T) {
	get := httptest.NewRequest("GET", "/a/b?q=1", nil)
	get.RemoteAddr = "192.0.2.7:51000"
	get.Header.Set("Referer", "https://example.org/")
	get.Header.Set("User-Agent", "curl/8.0")

	post := httptest.NewRequest("POST", "/form", strings.NewReader("x=1"))
	post.RemoteAddr = "[2001:db8::1]:443"
	post.SetBasicAuth("alice", "pw")

	evil := httptest.NewRequest("GET", "/", nil)
	evil.RemoteAddr = "unix"
	evil.Header.Set("User-Agent", "a\"b\n127.0.0.1 - - [forged]\\ é")

	spaced := httptest.NewRequest("GET", "/", nil)
	spaced.RemoteAddr = "192.0.2.9:1"
	spaced.SetBasicAuth(`a b] "GET /x`, "pw")

	remoteUser := httptest.NewRequest("GET", "/", nil)
	remoteUser = remoteUser.WithContext(vars.NewContext(context.Background(), vars.Vars{{Name: "REMOTE_USER", Value: "bob"}}))
	remoteUser.RemoteAddr = "198.51.100.2:1"

	tests := []struct {
		name string
		r    *http.Request
		h    http.Handler
		want string
	}{
		{"get", get, backendHandler(200, "hello"),
			`192.0.2.7 - - [07/Mar/2026:14:05:09 -0700] "GET /a/b?q=1 HTTP/1.1" 200 5 "https://example.org/" "curl/8.0" listener="main" protocol="fastcgi" backend="php" instance="127.0.0.1:9000" upstream_time=0.012 duration=0.015` + "\n"},
		{"post with basic auth", post, backendHandler(201, ""),
			`2001:db8::1 - alice [07/Mar/2026:14:05:09 -0700] "POST /form HTTP/1.1" 201 - "-" "-" listener="main" protocol="fastcgi" backend="php" instance="127.0.0.1:9000" upstream_time=0.012 duration=0.015` + "\n"},
		{"escaping", evil, http.NotFoundHandler(),
			`unix - - [07/Mar/2026:14:05:09 -0700] "GET / HTTP/1.1" 404 19 "-" "a\x22b\x0A127.0.0.1 - - [forged]\x5C \xC3\xA9" listener="main" protocol="fastcgi" backend="php" instance="" upstream_time=- duration=0.015` + "\n"},
		{"user with spaces cannot forge fields", spaced, backendHandler(200, ""),
			`192.0.2.9 - a\x20b]\x20\x22GET\x20/x [07/Mar/2026:14:05:09 -0700] "GET / HTTP/1.1" 200 - "-" "-" listener="main" protocol="fastcgi" backend="php" instance="127.0.0.1:9000" upstream_time=0.012 duration=0.015` + "\n"},
		{"remote user from front server", remoteUser, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			FromContext(r.Context()).SetBackend("static")
		}),
			`198.51.100.2 - bob [07/Mar/2026:14:05:09 -0700] "GET / HTTP/1.1" 200 - "-" "-" listener="main" protocol="fastcgi" backend="static" instance="" upstream_time=- duration=0.015` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serve(t, Combined, tt.h, tt.r); got != tt.want {
				t.Errorf("line\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	r := httptest.NewRequest("POST", "/form?a=b", strings.NewReader("0123456789"))
	r.RemoteAddr = "192.0.2.7:51000"
	r.Header.Set("User-Agent", "curl/8.0")
	out := serve(t, JSON, backendHandler(502, "bad gateway"), r)
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want one line, got %q", out)
	}
	var got jsonLine
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := jsonLine{
		Time: t0.Format(time.RFC3339Nano), RemoteAddr: "192.0.2.7", Method: "POST", URI: "/form?a=b",
		Proto: "HTTP/1.1", Host: "example.com", Status: 502, BytesSent: 11, BytesReceived: 10,
		UserAgent: "curl/8.0", Listener: "main", Protocol: "fastcgi", Backend: "php",
		Instance: "127.0.0.1:9000", UpstreamTime: 0.012, Duration: 0.015,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestOffIsPassThrough(t *testing.T) {
	h := http.NotFoundHandler()
	for _, l := range []*Logger{nil, New(Options{Writer: io.Discard, Format: Off}), New(Options{Format: Combined})} {
		if got := l.Middleware("l", "scgi", nil, h); fmt.Sprint(got) != fmt.Sprint(h) {
			t.Errorf("Middleware with format off wrapped the handler")
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Format
		ok   bool
	}{{"combined", Combined, true}, {"json", JSON, true}, {"off", Off, true}, {"", Off, false}, {"Combined", Off, false}} {
		got, err := ParseFormat(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseFormat(%q) = %v, %v", tt.in, got, err)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

// callWriter records every Write call separately.
type callWriter struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (w *callWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	w := &callWriter{}
	h := New(Options{Writer: w, Format: Combined}).Middleware("l", "ajp13", nil, backendHandler(200, "ok"))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r := httptest.NewRequest("GET", fmt.Sprintf("/%d", i), nil)
			h.ServeHTTP(httptest.NewRecorder(), r)
		})
	}
	wg.Wait()
	if len(w.calls) != 50 {
		t.Fatalf("%d writes, want 50", len(w.calls))
	}
	for _, c := range w.calls {
		if strings.Count(c, "\n") != 1 || !strings.HasSuffix(c, "\n") {
			t.Errorf("write %q is not one whole line", c)
		}
	}
}

func TestWriteErrorLoggedOnce(t *testing.T) {
	w := &callWriter{err: errors.New("disk full")}
	var logs bytes.Buffer
	h := New(Options{Writer: w, Format: Combined, ErrorLog: slog.New(slog.NewTextHandler(&logs, nil))}).
		Middleware("l", "scgi", nil, backendHandler(200, "ok"))
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	w.err = nil
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if n := strings.Count(logs.String(), "write failed"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "writing again") || len(w.calls) != 1 {
		t.Errorf("recovery not noticed (%d lines written):\n%s", len(w.calls), logs.String())
	}
}

func TestRecordNilSafe(t *testing.T) {
	rec := FromContext(context.Background())
	rec.SetInstance("x")
	rec.SetUpstreamTime(time.Second)
	rec.SetBackend("b")
	if rec.Instance() != "" || rec.UpstreamTime() != 0 || rec.Backend() != "" {
		t.Error("nil Record returned values")
	}
}

func TestFlushReachesCodec(t *testing.T) {
	h := New(Options{Writer: io.Discard, Format: JSON}).Middleware("l", "scgi", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !rec.Flushed {
		t.Error("flush did not reach the codec's writer")
	}
}

// lookupOnly is a lazy variable source that must not be rendered whole.
type lookupOnly struct{ t *testing.T }

func (s lookupOnly) Vars() vars.Vars {
	s.t.Error("the access log rendered all the variables")
	return nil
}

func (s lookupOnly) Lookup(name string) (string, bool) {
	if name == "REMOTE_USER" {
		return "carol", true
	}
	return "", false
}

// TestRemoteUserLookup: REMOTE_USER is read without rendering an AJP
// request's variables.
func TestRemoteUserLookup(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(vars.NewLazyContext(r.Context(), lookupOnly{t}))
	if u := remoteUser(r, nil); u != "carol" {
		t.Errorf("remoteUser = %q, want carol", u)
	}
}
