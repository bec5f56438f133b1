package ajp13

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/vars"
)

func TestGetResponseEncoding(t *testing.T) {
	s := &Server{Route: "a", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("X-Route", vars.FromContext(r.Context()).Get(VarRoute))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "hello")
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 2, "/x", []string{"Host", "h"}))
	r := p.mustReply(nil)
	if r.status != 201 || r.message != "Created" || string(r.body) != "hello" || !r.reuse {
		t.Fatalf("reply %+v", r)
	}
	if r.header("X-Route") != "a" || r.header("Content-Length") != "5" || r.header("Content-Type") != "text/plain" {
		t.Errorf("headers %v", r.headers)
	}
	if !r.coded["Content-Type"] || !r.coded["Set-Cookie"] || !r.coded["Content-Length"] || r.coded["X-Route"] {
		t.Errorf("coded headers %v", r.coded)
	}
	cookies := 0
	for _, h := range r.headers {
		if h[0] == "Set-Cookie" {
			cookies++
		}
	}
	if cookies != 2 {
		t.Errorf("%d Set-Cookie headers, want 2", cookies)
	}
	// Exact bytes of the one body chunk: type, length, data, NUL.
	if want := []byte{3, 0, 5, 'h', 'e', 'l', 'l', 'o', 0}; !bytes.Equal(r.rawChunk[0], want) {
		t.Errorf("chunk % x, want % x", r.rawChunk[0], want)
	}
}

func TestBodyChunkSizes(t *testing.T) {
	for _, size := range []int{DefaultPacketSize, 16384, MaxPacketSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			maxData := size - 8
			n := 3*maxData + 5
			s := &Server{PacketSize: size, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write(bytes.Repeat([]byte{'x'}, n))
			})}
			p := startPeer(t, s)
			p.send(fwd(t, 2, "/", nil))
			r := p.mustReply(nil)
			if len(r.body) != n {
				t.Fatalf("body %d bytes, want %d", len(r.body), n)
			}
			for _, c := range r.chunks {
				if c > maxData || c == 0 {
					t.Errorf("chunk of %d bytes (max %d)", c, maxData)
				}
			}
			if r.chunks[0] != maxData {
				t.Errorf("first chunk %d, want a full %d", r.chunks[0], maxData)
			}
		})
	}
}

func TestFlushStreams(t *testing.T) {
	next := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-next // the test must see "first" before we go on
		io.WriteString(w, "second")
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 2, "/", nil))
	h, err := p.packet()
	if err != nil || outType(h[0]) != typeSendHeaders {
		t.Fatalf("want SEND_HEADERS, got % x %v", h, err)
	}
	c, err := p.packet()
	if err != nil || outType(c[0]) != typeSendBodyChunk || string(c[3:len(c)-1]) != "first" {
		t.Fatalf("want the flushed chunk, got %q %v", c, err)
	}
	close(next)
	r := p.mustReply(nil)
	if string(r.body) != "second" || !r.reuse {
		t.Fatalf("rest %+v", r)
	}
}

func TestHeadHasNoBody(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored")
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 3, "/", nil))
	r := p.mustReply(nil)
	if len(r.chunks) != 0 || r.status != 200 || !r.reuse {
		t.Fatalf("HEAD reply %+v", r)
	}
}

// echoSHA answers with the sha256 and length of the request body.
func echoSHA(t testing.TB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x %d %v", n, h.Sum(nil), r.ContentLength, err)
	})
}

func TestPostBodyFlow(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 2500) // 25000 bytes: 4 chunks of 8186 max
	s := &Server{Handler: echoSHA(t)}
	p := startPeer(t, s)
	max := DefaultPacketSize - 6
	p.send(fwd(t, 4, "/", []string{"Content-Length", fmt.Sprint(len(data))}), bodyPacket(data[:max]))
	rest := data[max:]
	r := p.mustReply(func(n int) {
		k := min(n, len(rest))
		p.send(bodyPacket(rest[:k]))
		rest = rest[k:]
	})
	want := fmt.Sprintf("%d %x %d <nil>", len(data), sha256.Sum256(data), len(data))
	if string(r.body) != want || !r.reuse {
		t.Fatalf("reply %q reuse %v, want %q", r.body, r.reuse, want)
	}
	if len(r.asks) != 3 {
		t.Errorf("%d GET_BODY_CHUNK, want 3 (never past Content-Length)", len(r.asks))
	}
	for _, a := range r.asks {
		if a != max {
			t.Errorf("GET_BODY_CHUNK(%d), want %d", a, max)
		}
	}
}

func TestChunkedBodyFlow(t *testing.T) {
	s := &Server{Handler: echoSHA(t)}
	p := startPeer(t, s)
	p.send(fwd(t, 4, "/", []string{"Transfer-Encoding", "chunked"}))
	parts := [][]byte{[]byte("chunk one "), []byte("chunk two"), nil}
	r := p.mustReply(func(n int) {
		p.send(bodyPacket(parts[0]))
		parts = parts[1:]
	})
	all := []byte("chunk one chunk two")
	want := fmt.Sprintf("%d %x -1 <nil>", len(all), sha256.Sum256(all))
	if string(r.body) != want || !r.reuse || len(r.asks) != 3 {
		t.Fatalf("reply %q reuse %v asks %v, want %q", r.body, r.reuse, r.asks, want)
	}
}

func TestUnreadBodyDrained(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	p := startPeer(t, s)
	data := bytes.Repeat([]byte("z"), 20000)
	max := DefaultPacketSize - 6
	p.send(fwd(t, 4, "/", []string{"Content-Length", fmt.Sprint(len(data))}), bodyPacket(data[:max]))
	rest := data[max:]
	r := p.mustReply(func(n int) {
		k := min(n, len(rest))
		p.send(bodyPacket(rest[:k]))
		rest = rest[k:]
	})
	if !r.reuse || len(rest) != 0 || string(r.body) != "ok" {
		t.Fatalf("reuse %v, %d bytes undrained, body %q", r.reuse, len(rest), r.body)
	}
	// The connection still works.
	p.send(rawPacket(byte(typeCPing)))
	if b, err := p.packet(); err != nil || !bytes.Equal(b, []byte{byte(typeCPong)}) {
		t.Fatalf("CPONG after drain: % x %v", b, err)
	}
}

func TestLargeUnreadBodyClosesConnection(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 4, "/", []string{"Content-Length", "10000000"}), bodyPacket(make([]byte, DefaultPacketSize-6)))
	r := p.mustReply(nil)
	if r.reuse || r.status != 413 {
		t.Fatalf("reply %+v, want 413 with reuse=0", r)
	}
	if err := p.serveErr(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestBodyFramingErrors(t *testing.T) {
	tests := []struct {
		name  string
		hdrs  []string
		first []byte // sent right after the request (nil: none)
		ask   []byte // sent in answer to the first GET_BODY_CHUNK
	}{
		{"chunk longer than Content-Length", []string{"Content-Length", "4"}, bodyPacket([]byte("12345")), nil},
		{"chunk longer than asked", []string{"Transfer-Encoding", "chunked"}, nil, bodyPacket(make([]byte, DefaultPacketSize-5))},
		{"length disagrees with packet", []string{"Content-Length", "4"}, rawPacket(0, 9, '1', '2', '3', '4'), nil},
		{"early end", []string{"Content-Length", "4"}, bodyPacket(nil), nil},
		{"bad magic", []string{"Content-Length", "4"}, []byte{0x13, 0x34, 0, 2, 0, 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readErr := make(chan error, 1)
			s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.Copy(io.Discard, r.Body)
				readErr <- err
			})}
			p := startPeer(t, s)
			p.send(fwd(t, 4, "/", tt.hdrs))
			if tt.first != nil {
				p.send(tt.first)
			}
			go func() {
				// Answer a GET_BODY_CHUNK if one comes; ignore the rest.
				for {
					b, err := p.packet()
					if err != nil {
						return
					}
					if outType(b[0]) == typeGetBodyChunk && tt.ask != nil {
						p.send(tt.ask)
					}
				}
			}()
			if err := <-readErr; err == nil {
				t.Fatal("body read succeeded")
			}
			err := p.serveErr()
			if err == nil {
				t.Fatal("connection ended without a reason")
			}
		})
	}
}

func TestSequentialRequestsAndCPing(t *testing.T) {
	count := 0
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count++
		fmt.Fprintf(w, "%d %s", count, r.URL.Path)
	})}
	p := startPeer(t, s)
	for i := 1; i <= 50; i++ {
		if i%10 == 0 {
			p.send(rawPacket(byte(typeCPing)))
			if b, err := p.packet(); err != nil || !bytes.Equal(b, []byte{byte(typeCPong)}) {
				t.Fatalf("CPONG: % x %v", b, err)
			}
		}
		p.send(fwd(t, 2, fmt.Sprintf("/r%d", i), nil))
		r := p.mustReply(nil)
		if want := fmt.Sprintf("%d /r%d", i, i); string(r.body) != want || !r.reuse {
			t.Fatalf("request %d: %q reuse %v", i, r.body, r.reuse)
		}
	}
}

func TestSecret(t *testing.T) {
	tests := []struct {
		name   string
		attrs  []attribute
		status int
	}{
		{"accepted", []attribute{strAttr(attrSecret, "s3cr3t")}, 200},
		{"wrong", []attribute{strAttr(attrSecret, "s3cr3T")}, 403},
		{"prefix", []attribute{strAttr(attrSecret, "s3cr3")}, 403},
		{"missing", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			var mu sync.Mutex
			served := false
			s := &Server{Secret: "s3cr3t", Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true })}
			p := startPeer(t, s)
			p.send(fwd(t, 2, "/", nil, tt.attrs...))
			r := p.mustReply(nil)
			if r.status != tt.status || served != (tt.status == 200) || r.reuse != (tt.status == 200) {
				t.Fatalf("status %d served %v reuse %v", r.status, served, r.reuse)
			}
			if tt.status == 403 {
				if err := p.serveErr(); err == nil {
					t.Error("refused connection ended without a reason")
				}
				mu.Lock()
				defer mu.Unlock()
				if !strings.Contains(logs.String(), "refused") || strings.Contains(logs.String(), "s3cr3") {
					t.Errorf("log %q: want a refusal line without the secret", logs.String())
				}
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestConnectionEnders(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"shutdown", rawPacket(byte(typeShutdown)), errShutdownRefused},
		{"unknown type", rawPacket(42), ErrMalformed},
		{"empty packet", rawPacket(), ErrMalformed},
		{"bad magic", []byte{'A', 'B', 0, 1, 10}, ErrMalformed},
		{"oversize", []byte{0x12, 0x34, 0x20, 0x00}, ErrTooLarge},
		{"malformed request", fwd(t, 0, "/", nil), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })}
			p := startPeer(t, s)
			p.send(tt.pkt)
			if err := p.serveErr(); !errors.Is(err, tt.want) {
				t.Fatalf("ServeConn = %v, want %v", err, tt.want)
			}
			if called {
				t.Error("handler ran")
			}
		})
	}
}

func TestBadRequestAnswered(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler ran") })}
	p := startPeer(t, s)
	p.send(fwd(t, 4, "/", []string{"Content-Length", "abc"}))
	r := p.mustReply(nil)
	if r.status != 400 || r.reuse {
		t.Fatalf("reply %+v", r)
	}
}

func TestStalledBodyTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		readErr := make(chan error, 1)
		s := &Server{ReadTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			readErr <- err
		})}
		p := startPeer(t, s)
		p.send(fwd(t, 4, "/", []string{"Content-Length", "100"}))
		// The first chunk never comes.
		start := time.Now()
		err := <-readErr
		if err == nil || !strings.Contains(err.Error(), "stalled") {
			t.Fatalf("body read err = %v", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("gave up after %v, want 5s", d)
		}
		go io.Copy(io.Discard, p.c)
		if err := <-p.done; err == nil {
			t.Error("connection ended without a reason")
		}
		p.close()
	})
}

func TestIdleTimeoutClosesQuietly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{IdleTimeout: 7 * time.Second, Handler: http.NotFoundHandler()}
		p := startPeer(t, s)
		start := time.Now()
		if err := <-p.done; err != nil {
			t.Fatalf("ServeConn = %v, want a quiet close", err)
		}
		if d := time.Since(start); d != 7*time.Second {
			t.Errorf("closed after %v, want 7s", d)
		}
		p.close()
	})
}

func TestPeerCloseCancelsRequest(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 2, "/", nil))
	<-started
	p.c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("request context not cancelled when the web server closed the connection")
	}
}

func TestPeerCloseAfterBodyCancelsRequest(t *testing.T) {
	cancelled := make(chan struct{})
	read := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		close(read)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 4, "/", []string{"Content-Length", "3"}), bodyPacket([]byte("abc")))
	<-read
	p.c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("request context not cancelled")
	}
}

func TestServerConfigErrors(t *testing.T) {
	for _, s := range []*Server{{}, {Handler: http.NotFoundHandler(), PacketSize: 4096}, {Handler: http.NotFoundHandler(), PacketSize: 70000}} {
		if err := s.ServeConn(context.Background(), nopConn{}); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

func TestServeAndShutdownClosesIdlePooledConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Logger: slog.New(slog.DiscardHandler), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(fwd(t, 2, "/", nil)); err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, c: c}
	if r := p.mustReply(nil); string(r.body) != "ok" || !r.reuse {
		t.Fatalf("reply %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("idle pooled connection still open after Shutdown (read %d bytes)", n)
	}
}
