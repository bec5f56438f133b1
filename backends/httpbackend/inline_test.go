package httpbackend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends/internal/idle"

	"github.com/junction-gw/junction/backends"
)

// rawInstance is an HTTP/1.1 instance written at the byte level. respond
// gets every request (the index of its connection in accept order and of
// the request on that connection) and writes whatever bytes it likes; it
// returns false to close the connection after its answer.
type rawInstance struct {
	l        net.Listener
	accepted atomic.Int32
	closed   chan int // the index of every connection the instance saw end

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

type respondFunc func(c net.Conn, r *http.Request, conn, req int) bool

func newRawInstance(t *testing.T, respond respondFunc) *rawInstance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ri := &rawInstance{l: l, closed: make(chan int, 100)}
	ri.wg.Add(1)
	go func() {
		defer ri.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			idx := int(ri.accepted.Add(1)) - 1
			ri.mu.Lock()
			ri.conns = append(ri.conns, c)
			ri.mu.Unlock()
			ri.wg.Add(1)
			go func() {
				defer ri.wg.Done()
				defer func() { ri.closed <- idx }()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body) // a broken body shows in the next read
					if !respond(c, r, idx, n) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		ri.mu.Lock()
		for _, c := range ri.conns {
			c.Close()
		}
		ri.mu.Unlock()
		ri.wg.Wait()
	})
	return ri
}

func (ri *rawInstance) addr() string { return ri.l.Addr().String() }
func (ri *rawInstance) url() string  { return "http://" + ri.addr() + "/x" }

// waitClosed waits until the instance saw n more connections end.
func (ri *rawInstance) waitClosed(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for range n {
		select {
		case <-ri.closed:
		case <-timeout:
			t.Fatalf("the instance did not see %d connections end", n)
		}
	}
}

// canned answers every request with the same bytes, keeping the
// connection unless close.
func canned(resp string, close bool) respondFunc {
	return func(c net.Conn, _ *http.Request, _, _ int) bool {
		_, _ = io.WriteString(c, resp) // a dead client shows in the test's own checks
		return !close
	}
}

// newInline returns a Backend and the inlineTransport New put in front of
// its http.Transport.
func newInline(t *testing.T, o Options) (*Backend, *inlineTransport) {
	t.Helper()
	b := newBackend(t, o)
	it, ok := b.proxied.(*inlineTransport)
	if !ok {
		t.Fatalf("New(%+v) proxies through %T, want *inlineTransport", o, b.proxied)
	}
	return b, it
}

func (t *inlineTransport) idleLen() int { return t.idle.Len() }

func newRequest(t *testing.T, ctx context.Context, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// roundTrip sends a bodiless request and reads the whole body.
func roundTrip(t *testing.T, rt http.RoundTripper, method, url string) (*http.Response, string, error) {
	t.Helper()
	resp, err := rt.RoundTrip(newRequest(t, context.Background(), method, url))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func TestInlineReuse(t *testing.T) {
	const requests = 3
	tests := []struct {
		name      string
		method    string
		respond   respondFunc
		reqClose  bool
		readBytes int // read only this much, then Close; 0 reads all
		wantBody  string
		wantLen   int64
		wantConns int
	}{
		{name: "content length", respond: canned("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false),
			wantBody: "hello", wantLen: 5, wantConns: 1},
		{name: "chunked", respond: canned("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", false),
			wantBody: "hello", wantLen: -1, wantConns: 1},
		{name: "stray 100 before the response", respond: canned("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false),
			wantBody: "hello", wantLen: 5, wantConns: 1},
		{name: "204", respond: canned("HTTP/1.1 204 No Content\r\n\r\n", false),
			wantBody: "", wantLen: 0, wantConns: 1},
		{name: "HEAD with content length", method: http.MethodHead, respond: canned("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false),
			wantBody: "", wantLen: 1000, wantConns: 1},
		{name: "Connection: close", respond: canned("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", true),
			wantBody: "hello", wantLen: 5, wantConns: requests},
		{name: "HTTP/1.0 without keep-alive", respond: canned("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", true),
			wantBody: "hello", wantLen: 5, wantConns: requests},
		{name: "body until close", respond: canned("HTTP/1.1 200 OK\r\n\r\nhello", true),
			wantBody: "hello", wantLen: -1, wantConns: requests},
		{name: "request Connection: close", reqClose: true, respond: func(c net.Conn, r *http.Request, _, _ int) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
			return !r.Close
		}, wantBody: "hello", wantLen: 5, wantConns: requests},
		{name: "body closed before its end", readBytes: 3, respond: canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhelloworld", false),
			wantBody: "hel", wantLen: 10, wantConns: requests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ri := newRawInstance(t, tt.respond)
			_, it := newInline(t, Options{Addr: ri.addr()})
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			for i := range requests {
				req := newRequest(t, context.Background(), method, ri.url())
				req.Close = tt.reqClose
				resp, err := it.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				var body []byte
				if tt.readBytes > 0 {
					body = make([]byte, tt.readBytes)
					_, err = io.ReadFull(resp.Body, body)
				} else {
					body, err = io.ReadAll(resp.Body)
				}
				resp.Body.Close()
				if err != nil || string(body) != tt.wantBody || resp.ContentLength != tt.wantLen {
					t.Fatalf("request %d: body %q (length %d), %v; want %q (length %d)", i, body, resp.ContentLength, err, tt.wantBody, tt.wantLen)
				}
			}
			if got := int(ri.accepted.Load()); got != tt.wantConns {
				t.Errorf("%d requests used %d connections, want %d", requests, got, tt.wantConns)
			}
			wantIdle := 0
			if tt.wantConns == 1 {
				wantIdle = 1
			}
			if got := it.idleLen(); got != wantIdle {
				t.Errorf("%d idle connections, want %d", got, wantIdle)
			}
		})
	}
}

// TestInlineEarlyCloseDoesNotDrain: closing a body before its end closes
// the connection at once, however much the instance still has to send.
func TestInlineEarlyCloseDoesNotDrain(t *testing.T) {
	chunk := strings.Repeat("x", 32<<10)
	tests := []struct {
		name string
		head string
		part string // written until the connection breaks
	}{
		{"endless chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk)},
		{"1 GiB content length", "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", chunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ri := newRawInstance(t, func(c net.Conn, _ *http.Request, conn, _ int) bool {
				if conn > 0 {
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					return true
				}
				_, _ = io.WriteString(c, tt.head)
				for {
					if _, err := io.WriteString(c, tt.part); err != nil {
						return false
					}
				}
			})
			_, it := newInline(t, Options{Addr: ri.addr()})
			resp, err := it.RoundTrip(newRequest(t, context.Background(), http.MethodGet, ri.url()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
				t.Fatalf("reading the start of the body: %v", err)
			}
			closed := make(chan struct{})
			go func() { resp.Body.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(2 * time.Second):
				t.Fatal("Close blocked on the rest of the body")
			}
			ri.waitClosed(t, 1)
			if _, body, err := roundTrip(t, it, http.MethodGet, ri.url()); err != nil || body != "ok" {
				t.Fatalf("next request: %q, %v", body, err)
			}
			if got := ri.accepted.Load(); got != 2 {
				t.Errorf("%d connections, want 2 (the cut one is not reused)", got)
			}
		})
	}
}

// TestInlineClosedIdleRetry: an instance closes kept connections while
// they sit in the pool. A connection seen closed (or holding unasked
// bytes) when it leaves the pool is dropped and the request goes on a new
// one; when the instance closes it only on seeing the request ("drop"),
// an idempotent request is sent again on a new connection and a bodiless
// POST is not. http.Transport is the reference.
func TestInlineClosedIdleRetry(t *testing.T) {
	tests := []struct {
		name      string
		transport bool // the reference http.Transport instead of inlineTransport
		method    string
		how       string // "fin", "rst", "408": how the instance ends its idle connections; "drop": it closes on the next request
		stale     int    // idle connections the instance closes
		wantErr   bool
	}{
		{name: "GET fin", method: "GET", how: "fin", stale: 1},
		{name: "HEAD fin", method: "HEAD", how: "fin", stale: 1},
		{name: "bodiless POST fin", method: "POST", how: "fin", stale: 1},
		{name: "GET rst", method: "GET", how: "rst", stale: 1},
		{name: "bodiless POST rst", method: "POST", how: "rst", stale: 1},
		{name: "GET two stale", method: "GET", how: "fin", stale: 2},
		{name: "GET 408 then close", method: "GET", how: "408", stale: 1},
		{name: "GET dropped", method: "GET", how: "drop", stale: 1},
		{name: "HEAD dropped", method: "HEAD", how: "drop", stale: 1},
		{name: "bodiless POST dropped", method: "POST", how: "drop", stale: 1, wantErr: true},
		{name: "reference GET fin", transport: true, method: "GET", how: "fin", stale: 1},
		{name: "reference GET rst", transport: true, method: "GET", how: "rst", stale: 1},
		{name: "reference GET two stale", transport: true, method: "GET", how: "fin", stale: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kill := make(chan struct{})
			ri := newRawInstance(t, func(c net.Conn, _ *http.Request, conn, n int) bool {
				if tt.how == "drop" && n > 0 {
					return false // the request arrived; close without an answer
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				if tt.how == "drop" {
					return true
				}
				if conn >= tt.stale {
					return true
				}
				<-kill
				switch tt.how {
				case "rst":
					_ = c.(*net.TCPConn).SetLinger(0) // Close then sends RST
				case "408":
					_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
				return false
			})
			b, it := newInline(t, Options{Addr: ri.addr()})
			var rt http.RoundTripper = it
			if tt.transport {
				rt = b.transport
			}
			// Hold every response open until all are in, so each has its
			// own connection.
			var held []*http.Response
			for range tt.stale {
				resp, err := rt.RoundTrip(newRequest(t, context.Background(), http.MethodGet, ri.url()))
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, resp)
			}
			for _, resp := range held {
				if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "ok" {
					t.Fatalf("setup body %q, %v", body, err)
				}
				resp.Body.Close()
			}
			if !tt.transport && it.idleLen() != tt.stale {
				t.Fatalf("%d idle connections after setup, want %d", it.idleLen(), tt.stale)
			}
			close(kill)
			if tt.how != "drop" {
				ri.waitClosed(t, tt.stale)
			}
			resp, body, err := roundTrip(t, rt, tt.method, ri.url())
			if tt.wantErr {
				if err == nil {
					t.Fatalf("%s on a closed idle connection = %d %q, want an error (not retried)", tt.method, resp.StatusCode, body)
				}
				if got := int(ri.accepted.Load()); got != tt.stale {
					t.Errorf("%d connections, want %d (no new dial)", got, tt.stale)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s after the instance closed its idle connections: %v", tt.method, err)
			}
			if resp.StatusCode != http.StatusOK || (tt.method != "HEAD" && body != "ok") {
				t.Fatalf("%s = %d %q, want 200 \"ok\" from a new connection", tt.method, resp.StatusCode, body)
			}
			if got := int(ri.accepted.Load()); got != tt.stale+1 {
				t.Errorf("%d connections, want %d", got, tt.stale+1)
			}
		})
	}
}

// bigHead is a response head of at least n bytes.
func bigHead(n int) string {
	var sb strings.Builder
	sb.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
	line := "X-Pad: " + strings.Repeat("a", 1000) + "\r\n"
	for sb.Len() < n {
		sb.WriteString(line)
	}
	sb.WriteString("\r\n")
	return sb.String()
}

func TestInlineBadHeads(t *testing.T) {
	tests := []struct {
		name       string
		resp       string
		wantErr    string // in the RoundTrip error; "" = success
		wantStatus int    // Serve's error status
	}{
		{"head over 1 MiB", bigHead(maxResponseHeaderBytes + 1000), "larger than", http.StatusBadGateway},
		{"head just under 1 MiB", bigHead(maxResponseHeaderBytes-8<<10) + "ok", "", 0},
		{"101 without upgrade", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n", "101", http.StatusBadGateway},
		{"garbage", "HTTP/9 what\r\n\r\n", "malformed", http.StatusBadGateway},
		{"closed after a partial head", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "EOF", http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ri := newRawInstance(t, canned(tt.resp, true))
			b, it := newInline(t, Options{Addr: ri.addr()})
			_, body, err := roundTrip(t, it, http.MethodGet, ri.url())
			if tt.wantErr == "" {
				if err != nil || body != "ok" {
					t.Fatalf("RoundTrip: %q, %v", body, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("RoundTrip error %v, want one containing %q", err, tt.wantErr)
			}
			rec := httptest.NewRecorder()
			err = b.Serve(rec, httptest.NewRequest("GET", "/x", nil))
			var be *backends.Error
			if !errors.As(err, &be) || be.Status != tt.wantStatus {
				t.Fatalf("Serve = %v, want a %d *backends.Error", err, tt.wantStatus)
			}
			assertNothingWritten(t, rec)
			if got := ri.accepted.Load(); got != 2 {
				t.Errorf("%d connections, want 2 (no retry of a response that arrived)", got)
			}
		})
	}
}

func TestInlineHeaderTimeout(t *testing.T) {
	tests := []struct {
		name  string
		first string // written before the instance goes silent
	}{
		{"silent", ""},
		{"silent after 103", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"},
		{"silent in the head", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			ri := newRawInstance(t, func(c net.Conn, _ *http.Request, _, _ int) bool {
				_, _ = io.WriteString(c, tt.first)
				<-release
				return false
			})
			t.Cleanup(func() { close(release) }) // runs before the instance's cleanup
			b, _ := newInline(t, Options{Addr: ri.addr(), ResponseHeaderTimeout: 50 * time.Millisecond})
			rec := httptest.NewRecorder()
			start := time.Now()
			err := b.Serve(rec, httptest.NewRequest("GET", "/slow", nil))
			var be *backends.Error
			if !errors.As(err, &be) || be.Status != http.StatusGatewayTimeout {
				t.Fatalf("Serve = %v, want a 504 *backends.Error", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Serve took %v with a 50ms header timeout", d)
			}
			if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
				t.Errorf("something was written: header %v body %q", rec.Header(), rec.Body)
			}
		})
	}
}

// TestInline1xx: informational responses reach the client through a real
// front server exactly as with http.Transport.
func TestInline1xx(t *testing.T) {
	const resp = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nLink: </final>\r\n\r\nok"
	want := []string{"103 </a.css>; rel=preload", "103 </b.js>; rel=preload"}
	for _, tt := range []struct {
		name     string
		maxConns int // 0: inlineTransport; else http.Transport alone
	}{{"inline", 0}, {"http.Transport", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			ri := newRawInstance(t, canned(resp, false))
			b := newBackend(t, Options{Addr: ri.addr(), MaxConns: tt.maxConns})
			if _, inline := b.proxied.(*inlineTransport); inline != (tt.maxConns == 0) {
				t.Fatalf("proxied through %T", b.proxied)
			}
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := b.Serve(w, r); err != nil {
					http.Error(w, err.Error(), backends.Status(err))
				}
			}))
			t.Cleanup(front.Close)
			var got []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				got = append(got, fmt.Sprintf("%d %s", code, strings.Join(h.Values("Link"), ",")))
				return nil
			}}
			ctx := httptrace.WithClientTrace(context.Background(), trace)
			for i := range 2 { // the second over the kept connection
				got = nil
				res, err := front.Client().Do(newRequest(t, ctx, http.MethodGet, front.URL+"/page"))
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 || string(body) != "ok" || res.Header.Get("Link") != "</final>" {
					t.Fatalf("request %d: %d %q %v, Link %q", i, res.StatusCode, body, err, res.Header.Get("Link"))
				}
				if !slices.Equal(got, want) {
					t.Errorf("request %d: client saw 1xx %q, want %q", i, got, want)
				}
			}
			if n := ri.accepted.Load(); n != 1 {
				t.Errorf("%d connections to the instance, want 1", n)
			}
		})
	}
}

// TestInlineCancelDuringBody: cancelling the request while its body is
// read ends the read at once and the connection is not reused.
func TestInlineCancelDuringBody(t *testing.T) {
	tests := []struct {
		name string
		head string
	}{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"},
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			ri := newRawInstance(t, func(c net.Conn, _ *http.Request, conn, _ int) bool {
				if conn > 0 {
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					return true
				}
				_, _ = io.WriteString(c, tt.head)
				<-release // the rest never comes
				return false
			})
			t.Cleanup(func() { close(release) })
			_, it := newInline(t, Options{Addr: ri.addr()})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp, err := it.RoundTrip(newRequest(t, ctx, http.MethodGet, ri.url()))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
				t.Fatalf("first bytes %q, %v", first, err)
			}
			readErr := make(chan error, 1)
			go func() {
				_, err := resp.Body.Read(make([]byte, 10))
				readErr <- err
			}()
			cancel()
			select {
			case err := <-readErr:
				// The context's error, as with http.Transport: ReverseProxy
				// logs any other read error as a failure ("read error
				// during body copy") for every client that leaves mid-stream.
				if !errors.Is(err, context.Canceled) {
					t.Errorf("read after cancel: %v, want context.Canceled", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("read went on after the request was cancelled")
			}
			if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
				t.Error("a later read succeeded")
			}
			if it.idleLen() != 0 {
				t.Error("the cancelled connection went back to the pool")
			}
			if _, body, err := roundTrip(t, it, http.MethodGet, ri.url()); err != nil || body != "ok" {
				t.Fatalf("next request: %q, %v", body, err)
			}
			if got := ri.accepted.Load(); got != 2 {
				t.Errorf("%d connections, want 2", got)
			}
		})
	}
}

func TestInlineTrailers(t *testing.T) {
	const resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\n\r\n"
	ri := newRawInstance(t, canned(resp, false))
	b, it := newInline(t, Options{Addr: ri.addr()})
	tests := []struct {
		name string
		get  func(t *testing.T) (body string, trailer http.Header)
	}{
		{"RoundTrip", func(t *testing.T) (string, http.Header) {
			resp, body, err := roundTrip(t, it, http.MethodGet, ri.url())
			if err != nil {
				t.Fatal(err)
			}
			return body, resp.Trailer
		}},
		{"Serve", func(t *testing.T) (string, http.Header) {
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, httptest.NewRequest("GET", "/x", nil)); err != nil {
				t.Fatal(err)
			}
			res := rec.Result()
			return rec.Body.String(), res.Trailer
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, trailer := tt.get(t)
			if body != "hello world" || trailer.Get("X-Sum") != "abc" {
				t.Errorf("body %q trailer %v, want \"hello world\" and X-Sum: abc", body, trailer)
			}
		})
	}
	if got := ri.accepted.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// TestInlineFallback: requests with a body (or an upgrade) go through the
// http.Transport; bodiless ones through the inline pool.
func TestInlineFallback(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Upgrade", r.Header.Get("Upgrade"))
		body, err := io.ReadAll(r.Body) // all of it before answering: no full duplex
		if err != nil {
			t.Errorf("instance reading the body: %v", err)
		}
		// A known length: a streaming (chunked) answer would meet the flush
		// race TestStreamingFlushRace shows.
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body) // the test compares the echo
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	payload := strings.Repeat("payload-", 10000)
	tests := []struct {
		name     string
		method   string
		body     string
		header   map[string]string
		wantPool int // inline pool size after the request
	}{
		{"GET", "GET", "", nil, 1},
		{"bodiless POST", "POST", "", nil, 1},
		{"POST with a body", "POST", payload, nil, 0},
		{"PUT with a body", "PUT", "x", nil, 0},
		{"upgrade", "GET", "", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, it := newInline(t, Options{Addr: addrOf(srv)})
			r := httptest.NewRequest(tt.method, "/echo", strings.NewReader(tt.body))
			if tt.body == "" {
				r = httptest.NewRequest(tt.method, "/echo", nil)
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, r); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if rec.Body.String() != tt.body || rec.Header().Get("X-Method") != tt.method {
				t.Errorf("echo %s %d bytes, want %s %d bytes", rec.Header().Get("X-Method"), rec.Body.Len(), tt.method, len(tt.body))
			}
			if got := it.idleLen(); got != tt.wantPool {
				t.Errorf("inline pool holds %d connections, want %d", got, tt.wantPool)
			}
		})
	}
}

// TestInlineIdleTimeout: the sweep closes connections left idle for
// IdleConnTimeout; connections in use are not touched.
func TestInlineIdleTimeout(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ri := newRawInstance(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false))
			_, it := newInline(t, Options{Addr: ri.addr(), IdleConnTimeout: 100 * time.Millisecond})
			var held []*http.Response
			for range n {
				resp, err := it.RoundTrip(newRequest(t, context.Background(), http.MethodGet, ri.url()))
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, resp)
			}
			// The last one stays busy past the timeout.
			for _, resp := range held[:n-1] {
				_, _ = io.ReadAll(resp.Body) // checked by the pool size
				resp.Body.Close()
			}
			if got := it.idleLen(); got != n-1 {
				t.Fatalf("%d idle, want %d", got, n-1)
			}
			ri.waitClosed(t, n-1)
			if got := it.idleLen(); got != 0 {
				t.Errorf("%d idle after the sweep, want 0", got)
			}
			if body, err := io.ReadAll(held[n-1].Body); err != nil || string(body) != "ok" {
				t.Errorf("the busy connection: %q, %v", body, err)
			}
			held[n-1].Body.Close()
			if got := it.idleLen(); got != 1 {
				t.Fatalf("%d idle, want 1", got)
			}
			start := time.Now()
			ri.waitClosed(t, 1)
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("closed after %v, before the idle timeout", d)
			}
		})
	}
}

func TestInlineCloseIdleAndMaxIdle(t *testing.T) {
	tests := []struct {
		name      string
		maxIdle   int
		closeIdle bool
		wantIdle  int
	}{
		{"pool full", 2, false, 2},
		{"CloseIdleConnections", 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ri := newRawInstance(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false))
			b, it := newInline(t, Options{Addr: ri.addr(), MaxIdleConns: tt.maxIdle})
			const n = 3
			var held []*http.Response
			for range n {
				resp, err := it.RoundTrip(newRequest(t, context.Background(), http.MethodGet, ri.url()))
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, resp)
			}
			for _, resp := range held {
				_, _ = io.ReadAll(resp.Body) // checked by the pool size
				resp.Body.Close()
			}
			if tt.closeIdle {
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if got := it.idleLen(); got != tt.wantIdle {
				t.Fatalf("%d idle, want %d", got, tt.wantIdle)
			}
			ri.waitClosed(t, n-tt.wantIdle)
			if _, body, err := roundTrip(t, it, http.MethodGet, ri.url()); err != nil || body != "ok" {
				t.Fatalf("next request: %q, %v", body, err)
			}
			wantConns := n
			if tt.wantIdle == 0 {
				wantConns++
			}
			if got := int(ri.accepted.Load()); got != wantConns {
				t.Errorf("%d connections, want %d", got, wantConns)
			}
		})
	}
}

// hookConn lets a test act at the moments exchange changes deadlines.
type hookConn struct {
	net.Conn
	afterWrite  func()         // after the first Write
	beforeClear func()         // before SetReadDeadline(zero time) applies
	deadlineSet chan time.Time // SetDeadline calls (the cancel hook)
	once        sync.Once
}

func (c *hookConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.afterWrite != nil {
		c.once.Do(c.afterWrite)
	}
	return n, err
}

func (c *hookConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	select {
	case c.deadlineSet <- t:
	default:
	}
	return err
}

func (c *hookConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() && c.beforeClear != nil {
		c.once.Do(c.beforeClear)
	}
	return c.Conn.SetReadDeadline(t)
}

// TestInlineCancelRacesDeadlines: a cancel that lands between two of
// exchange's own deadline changes must still end the request promptly.
func TestInlineCancelRacesDeadlines(t *testing.T) {
	tests := []struct {
		name string
		head string // what the instance sends before going silent
		hook string // "write" or "clear"
	}{
		// Cancelled after the request is written: the header-timeout
		// deadline replaces the cancel's, and the request waits the full
		// header timeout.
		{"cancel after the write", "", "write"},
		// Cancelled after the head is read: the cleared read deadline
		// replaces the cancel's, and the body read waits on the instance.
		{"cancel after the head", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "clear"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			ri := newRawInstance(t, func(c net.Conn, _ *http.Request, _, _ int) bool {
				_, _ = io.WriteString(c, tt.head)
				<-release
				return false
			})
			t.Cleanup(func() { close(release) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var conn atomic.Pointer[hookConn]
			it := &inlineTransport{
				dial: func(ctx context.Context) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, "tcp", ri.addr())
					if err != nil {
						return nil, err
					}
					hc := &hookConn{Conn: c, deadlineSet: make(chan time.Time, 1)}
					conn.Store(hc)
					wait := func() {
						cancel()
						select {
						case <-hc.deadlineSet:
						case <-time.After(2 * time.Second):
							t.Error("the cancel hook did not set a deadline")
						}
					}
					if tt.hook == "write" {
						hc.afterWrite = wait
					} else {
						hc.beforeClear = wait
					}
					return hc, nil
				},
				fallback:       &http.Transport{},
				headerTimeout:  3 * time.Second,
				maxHeaderBytes: maxResponseHeaderBytes,
				idle:           idle.New(4, time.Minute, (*persistConn).fit),
			}
			done := make(chan error, 1)
			go func() {
				resp, err := it.RoundTrip(newRequest(t, ctx, http.MethodGet, ri.url()))
				if err == nil {
					_, err = resp.Body.Read(make([]byte, 10))
					resp.Body.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Error("the cancelled request succeeded")
				}
			case <-time.After(1 * time.Second):
				t.Error("the cancelled request did not end within 1s")
				conn.Load().Conn.Close()
				<-done
			}
		})
	}
}

// TestStreamingFlushRace: for a response of unknown length ReverseProxy
// flushes from a timer goroutine (copyResponse arms one even with a
// negative interval) under its own lock, while flushBody and inlineBody
// flush the same ResponseWriter from the copying goroutine without it.
// Only -race sees it; under a codec both flushes touch its buffers.
func TestStreamingFlushRace(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 5 {
			_, _ = io.WriteString(w, strings.Repeat("x", 100))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name string
		body string // a body sends the request through http.Transport
	}{{"inline", ""}, {"http.Transport", "payload"}} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, Options{Addr: addrOf(srv)})
			for range 20 {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				rec := httptest.NewRecorder()
				if err := b.Serve(rec, httptest.NewRequest("POST", "/", body)); err != nil || rec.Body.Len() != 500 {
					t.Fatalf("Serve: %v, %d bytes", err, rec.Body.Len())
				}
			}
		})
	}
}
