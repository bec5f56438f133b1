package fastcgi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	fcgifront "github.com/junction-gw/junction/protocols/fastcgi"
)

// keepInstance is a FastCGI instance that honours FCGI_KEEP_CONN: on each
// connection it reads requests one after another and calls respond with
// the request's number on that connection (1, 2, ...), its keep flag and
// its STDIN. respond writes the response records; returning false closes
// the connection. accepted counts the connections.
func keepInstance(t *testing.T, respond func(n int, keep bool, stdin []byte, c net.Conn) bool) (addr string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 1; ; n++ {
					keep, stdin, err := readFakeRequest(br)
					if err != nil || !respond(n, keep, stdin, c) || !keep {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), accepted
}

// readFakeRequest reads one request's records up to the end of STDIN.
func readFakeRequest(br *bufio.Reader) (keep bool, stdin []byte, err error) {
	for {
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return false, nil, err
		}
		content := make([]byte, int(binary.BigEndian.Uint16(h[4:]))+int(h[6]))
		if _, err := io.ReadFull(br, content); err != nil {
			return false, nil, err
		}
		content = content[:binary.BigEndian.Uint16(h[4:])]
		switch recType(h[1]) {
		case 1: // BEGIN_REQUEST
			keep = content[2]&1 != 0
		case 5: // STDIN
			if len(content) == 0 {
				return keep, stdin, nil
			}
			stdin = append(stdin, content...)
		}
	}
}

func okResponse(c net.Conn, body string) {
	c.Write(rec(typeStdout, "Content-Type: text/plain\r\n\r\n"+body))
	c.Write(rec(typeStdout, ""))
	c.Write(endRequest(0))
}

func keepBackend(t *testing.T, addr string, keep int) *Backend {
	t.Helper()
	b, err := New(Options{Addr: addr, Root: "/srv", KeepAlive: keep, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func serveOK(t *testing.T, b *Backend, r *http.Request, want string) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := b.Serve(w, r); err != nil || w.Code != 200 || w.Body.String() != want {
		t.Fatalf("Serve %s %s = %v, %d %q; want 200 %q", r.Method, r.URL.Path, err, w.Code, w.Body, want)
	}
}

// With KeepAlive, requests carry FCGI_KEEP_CONN and their connections are
// kept; a GET reuses one, a POST (never sent twice) closes an idle one and
// dials its own, which is kept after it. Without, each request has its own
// connection and the flag is clear.
func TestKeepAliveReuse(t *testing.T) {
	var keepSeen atomic.Int32
	addr, accepted := keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool {
		if keep {
			keepSeen.Add(1)
		}
		okResponse(c, "req "+string(rune('0'+n))+" body "+string(stdin))
		return true
	})
	b := keepBackend(t, addr, 2)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "req 1 body ")
	serveOK(t, b, httptest.NewRequest("POST", "/a.php", strings.NewReader("hello")), "req 1 body hello")
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "req 2 body ")
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections for GET, POST, GET; want 2", n)
	}
	if n := keepSeen.Load(); n != 3 {
		t.Errorf("FCGI_KEEP_CONN on %d of 3 requests", n)
	}
	if n := b.idle.Len(); n != 1 {
		t.Errorf("%d idle connections after the requests, want 1", n)
	}

	keepSeen.Store(0)
	plain := keepBackend(t, addr, 0)
	before := accepted.Load()
	serveOK(t, plain, httptest.NewRequest("GET", "/a.php", nil), "req 1 body ")
	serveOK(t, plain, httptest.NewRequest("GET", "/a.php", nil), "req 1 body ")
	if n := accepted.Load() - before; n != 2 {
		t.Errorf("without keepalive: %d connections for 2 requests, want 2", n)
	}
	if n := keepSeen.Load(); n != 0 {
		t.Errorf("without keepalive: FCGI_KEEP_CONN on %d requests", n)
	}
}

// A connection is not kept after a response that did not end cleanly, or
// while a health check waits for a connection of its own.
func TestKeepAliveNotKept(t *testing.T) {
	addr, _ := keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool {
		c.Write(rec(typeStdout, "Content-Type: text/plain\r\n\r\npartial"))
		return false // closed before END_REQUEST
	})
	b := keepBackend(t, addr, 2)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "partial")
	if n := b.idle.Len(); n != 0 {
		t.Errorf("a connection without END_REQUEST was kept (%d idle)", n)
	}

	addr, _ = keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool {
		okResponse(c, "ok")
		return true
	})
	b = keepBackend(t, addr, 2)
	b.probing.Add(1)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "ok")
	if n := b.idle.Len(); n != 0 {
		t.Errorf("kept a connection while a check waits for one (%d idle)", n)
	}
	b.probing.Add(-1)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "ok")
	if n := b.idle.Len(); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// A kept connection the instance drops when the next request arrives
// (after the quiet check passed): a GET is sent again on a new connection.
func TestKeepAliveStaleRetry(t *testing.T) {
	addr, accepted := keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool {
		if n == 2 {
			return false // read the request, answer nothing, close
		}
		okResponse(c, "ok")
		return true
	})
	b := keepBackend(t, addr, 1)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "ok")
	serveOK(t, b, httptest.NewRequest("HEAD", "/a.php", nil), "ok") // stale, then a new connection
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	// The same failure on a new connection is not retried.
	addr, accepted = keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool { return false })
	b = keepBackend(t, addr, 1)
	w := httptest.NewRecorder()
	err := b.Serve(w, httptest.NewRequest("GET", "/a.php", nil))
	var be *backends.Error
	if !errors.As(err, &be) || be.Status != http.StatusBadGateway || errors.Is(err, errStale) {
		t.Errorf("Serve = %v, want a 502 that is not errStale", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// A kept connection the instance closed while it sat idle fails the quiet
// check and is replaced before the request is sent.
func TestKeepAliveClosedWhileIdle(t *testing.T) {
	closed := make(chan struct{}, 1)
	addr, accepted := keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool {
		okResponse(c, "ok")
		c.Close() // like a worker reaching pm.max_requests
		closed <- struct{}{}
		return false
	})
	b := keepBackend(t, addr, 1)
	for i := 0; i < 3; i++ {
		serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "ok")
		<-closed
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests, want 3", n)
	}
}

// Junction's own FastCGI front end keeps connections too: GETs and POSTs
// from two goroutines, over a pool of two kept connections; the
// GET_VALUES health check takes an idle connection.
func TestKeepAliveJunctionInstance(t *testing.T) {
	srv := &fcgifront.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.URL.Path+" "+string(body))
	}), MaxConns: 10}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	go srv.Serve(countListener{l, &conns})
	t.Cleanup(func() { srv.Close() })
	b := keepBackend(t, l.Addr().String(), 2)
	b.sem = nil
	errs := make(chan error, 2)
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				w := httptest.NewRecorder()
				var r *http.Request
				if i%2 == 0 {
					r = httptest.NewRequest("GET", "/x.php", nil)
				} else {
					r = httptest.NewRequest("POST", "/x.php", strings.NewReader("b"))
				}
				if err := b.Serve(w, r); err != nil {
					errs <- err
					return
				}
				if want := "/x.php "; !strings.HasPrefix(w.Body.String(), want) {
					errs <- errors.New("body " + w.Body.String())
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 2; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Each POST has a connection of its own; the GETs share at most two.
	if n := conns.Load(); n > 2+50 {
		t.Errorf("%d connections for 50 GETs and 50 POSTs from 2 goroutines, want at most 52", n)
	}
	idleBefore := b.idle.Len()
	if err := b.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if idleBefore > 0 && b.idle.Len() != idleBefore-1 {
		t.Errorf("Check did not use an idle connection: %d idle before, %d after", idleBefore, b.idle.Len())
	}
}

type countListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// A kept connection outlives the read deadline of its last response (a
// Timeout shorter than the time it sits idle) and is still reused.
func TestKeepAliveReuseAfterReadTimeout(t *testing.T) {
	addr, accepted := keepInstance(t, func(n int, keep bool, stdin []byte, c net.Conn) bool {
		okResponse(c, "ok")
		return true
	})
	b := keepBackend(t, addr, 1)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "ok")
	// As if the connection sat idle longer than Timeout.
	c, ok := b.idle.Get()
	if !ok {
		t.Fatal("the connection was not kept")
	}
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	b.idle.Put(c)
	serveOK(t, b, httptest.NewRequest("GET", "/a.php", nil), "ok")
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections for 2 GETs, want 1: the kept one was dropped", n)
	}
}
