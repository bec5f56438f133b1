package scgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/internal/syncbuf"
	"github.com/junction-gw/junction/vars"
)

// request builds a full SCGI request with the usual nginx variables.
func request(method, uri string, body string, extra ...string) string {
	pairs := []string{"CONTENT_LENGTH", itoa(len(body)), "SCGI", "1", "REQUEST_METHOD", method, "REQUEST_URI", uri,
		"SERVER_PROTOCOL", "HTTP/1.1", "REMOTE_ADDR", "192.0.2.1", "REMOTE_PORT", "5555", "SERVER_NAME", "example.org", "SERVER_PORT", "80"}
	return head(append(pairs, extra...)...) + body
}

// roundTrip serves raw on one end of a pipe and returns what the server wrote
// back, the handler's error from ServeConn and the log output.
func roundTrip(t *testing.T, s *Server, raw string) (string, error, string) {
	t.Helper()
	var logs syncbuf.Buffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), server) }()
	go func() {
		client.Write([]byte(raw))
	}()
	out, _ := io.ReadAll(client)
	client.Close()
	return string(out), <-done, logs.String()
}

func TestServeRequest(t *testing.T) {
	var got *http.Request
	var gotBody string
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading body: %v", err)
		}
		gotBody = string(b)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Add("X-Two", "a")
		w.Header().Add("X-Two", "b")
		io.WriteString(w, "hello")
	})}
	raw := request("POST", "/cgi-bin/x.sh/p%20i?q=1", "body!",
		"CONTENT_TYPE", "text/plain", "HTTP_HOST", "example.org:8080",
		"HTTP_X_MULTI", "1", "HTTP_X_MULTI", "2", "HTTP_COOKIE", "a=1", "HTTP_COOKIE", "b=2",
		"SCRIPT_FILENAME", "/srv/x.sh", "HTTPS", "on")
	out, err, _ := roundTrip(t, s, raw)
	if err != nil {
		t.Fatal(err)
	}
	want := "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Two: a\r\nX-Two: b\r\n\r\nhello"
	if out != want {
		t.Errorf("response\n got %q\nwant %q", out, want)
	}
	if got.Method != "POST" || got.URL.Path != "/cgi-bin/x.sh/p i" || got.URL.RawQuery != "q=1" || got.Host != "example.org:8080" {
		t.Errorf("request line: %s %s host %s", got.Method, got.URL, got.Host)
	}
	if gotBody != "body!" || got.ContentLength != 5 {
		t.Errorf("body %q length %d", gotBody, got.ContentLength)
	}
	if v := got.Header.Values("X-Multi"); len(v) != 2 || v[0] != "1" || v[1] != "2" {
		t.Errorf("X-Multi = %q", v)
	}
	if c := got.Header.Values("Cookie"); len(c) != 1 || c[0] != "a=1; b=2" {
		t.Errorf("Cookie = %q", c)
	}
	if got.RemoteAddr != "192.0.2.1:5555" || got.TLS == nil {
		t.Errorf("RemoteAddr %q TLS %v", got.RemoteAddr, got.TLS)
	}
	if v := vars.FromContext(got.Context()); v.Get("SCRIPT_FILENAME") != "/srv/x.sh" {
		t.Errorf("raw vars not in context: %q", v)
	}
}

func TestResponseHead(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, "Status: 200 OK\r\n\r\n"},
		{"status only", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, "Status: 404 Not Found\r\n\r\n"},
		{"unknown status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) }, "Status: 599\r\n\r\n"},
		{"sniffed type", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") },
			"Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html>"},
		{"redirect passes unchanged", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "../x")
			w.WriteHeader(302)
		}, "Status: 302 Found\r\nLocation: ../x\r\n\r\n"},
		{"header injection dropped", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-Bad"] = []string{"a\r\nSet-Cookie: evil=1"}
			w.Header()["Bad Name"] = []string{"x"}
			w.Header()["Status"] = []string{"500"}
			w.Header().Set("X-Good", "ok")
			w.WriteHeader(200)
		}, "Status: 200 OK\r\nX-Good: ok\r\n\r\n"},
		{"interim status ignored", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(103)
			w.WriteHeader(201)
		}, "Status: 201 Created\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err, _ := roundTrip(t, &Server{Handler: tt.handler}, request("GET", "/", ""))
			if err != nil {
				t.Fatal(err)
			}
			if out != tt.want {
				t.Errorf("got %q, want %q", out, tt.want)
			}
		})
	}
}

func TestMalformedClosesWithLogLine(t *testing.T) {
	tests := []struct {
		name, raw, reason string
		wantOut           string
	}{
		{"garbage", "GET / HTTP/1.1\r\n\r\n", "netstring length", ""},
		{"too big", "999999:", "too large", ""},
		{"duplicate CONTENT_LENGTH", head("CONTENT_LENGTH", "0", "SCGI", "1", "CONTENT_LENGTH", "0"), "repeated variable CONTENT_LENGTH", ""},
		{"bad uri", head("CONTENT_LENGTH", "0", "SCGI", "1", "REQUEST_METHOD", "GET", "REQUEST_URI", "no-slash"), "REQUEST_URI",
			"Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBad Request\n"},
		{"no method", head("CONTENT_LENGTH", "0", "SCGI", "1", "REQUEST_URI", "/"), "REQUEST_METHOD",
			"Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBad Request\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			s := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })}
			out, err, logs := roundTrip(t, s, tt.raw)
			if err == nil {
				t.Fatal("no error")
			}
			if called {
				t.Error("handler ran for a malformed request")
			}
			if out != tt.wantOut {
				t.Errorf("output %q, want %q", out, tt.wantOut)
			}
			if strings.Count(logs, "connection closed") != 1 || !strings.Contains(logs, tt.reason) {
				t.Errorf("want one log line mentioning %q, got:\n%s", tt.reason, logs)
			}
		})
	}
}

func TestShortBodyIsAnError(t *testing.T) {
	bodyErr := make(chan error, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	})}
	// TCP, not net.Pipe: a pipe refuses deadlines once the peer has closed.
	client, server := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), server) }()
	raw := request("POST", "/", "0123456789")
	client.Write([]byte(raw[:len(raw)-4])) // six of ten body bytes, then the peer goes away
	client.Close()
	if err := <-bodyErr; !errors.Is(err, ErrShortBody) {
		t.Errorf("body read error = %v, want ErrShortBody", err)
	}
	if err := <-done; !errors.Is(err, ErrShortBody) {
		t.Errorf("ServeConn = %v, want ErrShortBody", err)
	}
}

func TestStreamingFlush(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
		<-release
		io.WriteString(w, "second")
	})}
	client, server := net.Pipe()
	go s.ServeConn(context.Background(), server)
	go client.Write([]byte(request("GET", "/", "")))
	want := "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst"
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != want {
		t.Fatalf("before handler finished: %q, %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(client)
	if string(rest) != "second" {
		t.Errorf("rest = %q", rest)
	}
}

func TestPeerCloseCancelsRequest(t *testing.T) {
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})}
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), server) }()
	client.Write([]byte(request("GET", "/", "")))
	<-started
	client.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("request context not cancelled after the front server closed")
	}
}

func TestHeadReadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{ReadTimeout: time.Second, IdleTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler ran") })}
		var logs syncbuf.Buffer
		s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- s.ServeConn(context.Background(), server) }()
		client.Write([]byte("100:CONTENT_LENGTH")) // and then nothing
		start := time.Now()
		err := <-done
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Errorf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("closed after %v, want the 1s read timeout", d)
		}
		client.Close()
	})
}

func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{ReadTimeout: time.Second, IdleTimeout: 3 * time.Second, Handler: http.NotFoundHandler()}
		s.Logger = slog.New(slog.DiscardHandler)
		client, server := net.Pipe()
		start := time.Now()
		err := s.ServeConn(context.Background(), server)
		if !isTimeout(err) {
			t.Errorf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("closed after %v, want the 3s idle timeout", d)
		}
		client.Close()
	})
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestPanicClosesConnectionOnly(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("handler bug")
		}
		io.WriteString(w, "ok")
	})}
	var logs syncbuf.Buffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	get := func(path string) string {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, request("GET", path, ""))
		out, _ := io.ReadAll(c)
		return string(out)
	}
	if out := get("/panic"); strings.Contains(out, "ok") {
		t.Errorf("panicking handler produced %q", out)
	}
	if out := get("/fine"); !strings.HasSuffix(out, "\r\n\r\nok") {
		t.Errorf("server did not survive a panic: %q", out)
	}
	if !strings.Contains(logs.String(), "handler bug") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err == nil {
		t.Error("Serve returned nil after Shutdown")
	}
}

func TestLargeBodyStreams(t *testing.T) {
	const size = 8 << 20
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d %v", n, err)
	})}
	client, server := net.Pipe()
	go s.ServeConn(context.Background(), server)
	go func() {
		io.WriteString(client, request("PUT", "/", "")[0:0])
		hd := head("CONTENT_LENGTH", itoa(size), "SCGI", "1", "REQUEST_METHOD", "PUT", "REQUEST_URI", "/")
		io.WriteString(client, hd)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < size/len(chunk); i++ {
			client.Write(chunk)
		}
	}()
	out, _ := io.ReadAll(client)
	if !strings.HasSuffix(string(out), fmt.Sprintf("%d <nil>", size)) {
		t.Errorf("got %q", out)
	}
}

// TestShutdownClosesWaitingConnection: a front server that connected but
// has not sent a byte does not hold up Shutdown until the idle timeout,
// only for the new-connection grace.
func TestShutdownClosesWaitingConnection(t *testing.T) {
	s := &Server{IdleTimeout: time.Hour, Handler: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler)}
	s.init()
	s.cs.NewConnGrace = time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Wait until the server has accepted and is waiting for the first byte.
	deadline := time.Now().Add(5 * time.Second)
	for s.cs.ActiveConns() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a waiting connection held it up)", err)
	}
}

// TestShutdownServesJustConnected: a connection accepted just before
// Shutdown still gets its request served (nginx connects, then sends).
func TestShutdownServesJustConnected(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") }),
		Logger: slog.New(slog.DiscardHandler)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for s.cs.ActiveConns() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond) // Shutdown is under way
	io.WriteString(c, request("GET", "/", ""))
	out, _ := io.ReadAll(c)
	if !strings.HasSuffix(string(out), "served") {
		t.Errorf("response %q", out)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
