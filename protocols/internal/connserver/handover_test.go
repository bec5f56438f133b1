package connserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/keepopen"
)

// keepAliveHandler serves like the keep-alive codecs (FastCGI, AJP13):
// it marks the connection idle before waiting for each request. A request
// is one byte, answered with answer; with once, the connection ends after
// one request (as SCGI's).
func keepAliveHandler(answer string, once bool) Handler {
	return func(_ context.Context, c *Conn) error {
		for {
			if !c.SetIdle(true) {
				return nil
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failed read ends the connection
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				if c.ShuttingDown() {
					return nil
				}
				return err
			}
			c.SetIdle(false)
			if _, err := io.WriteString(c, answer); err != nil {
				return err
			}
			if once || c.ShuttingDown() {
				return nil
			}
		}
	}
}

// shutdownOnAccept is a listener that starts Shutdown of srv as it
// returns its first connection, and returns only once Shutdown began.
type shutdownOnAccept struct {
	net.Listener
	srv  *Server
	shut chan error
	once sync.Once
}

func (l *shutdownOnAccept) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.once.Do(func() {
		go func() { l.shut <- l.srv.Shutdown(context.Background()) }()
		for !l.srv.shutdown.Load() {
			time.Sleep(time.Millisecond)
		}
	})
	return c, nil
}

// TestShutdownServesAcceptedConn: a connection that Accept returned as
// Shutdown began, and whose request comes afterwards, is served, also by
// a codec that marks a connection idle before its first request.
func TestShutdownServesAcceptedConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Protocol: "test", Handler: keepAliveHandler("ok", false), Logger: slog.New(slog.DiscardHandler)}
	l := &shutdownOnAccept{Listener: ln, srv: s, shut: make(chan error, 1)}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
	time.Sleep(30 * time.Millisecond) // Shutdown's idle sweeps run meanwhile
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if string(got) != "ok" {
		t.Errorf("reply %q, %v; want ok and the connection closed", got, err)
	}
	if err := <-l.shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// recordingListener notes, for each connection it hands out, the
// server it was accepted for and the goroutine that accepted it.
type recordingListener struct {
	*net.TCPListener
	id  int
	rec *handOverRecord
}

type handOverRecord struct {
	mu         sync.Mutex
	acceptedBy map[string]int // peer address → server
	servedBy   map[string]int
	acceptG    map[int]int // server → goroutines that called Accept
}

func (l *recordingListener) Accept() (net.Conn, error) {
	g := goid()
	c, err := l.TCPListener.Accept()
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	if old, ok := l.rec.acceptG[l.id]; ok && old != g {
		l.rec.acceptG[l.id] = -1 // more than one goroutine accepted
	} else {
		l.rec.acceptG[l.id] = g
	}
	if err == nil {
		l.rec.acceptedBy[c.RemoteAddr().String()] = l.id
	}
	return c, err
}

// TestHandOverUnderLoad passes one socket along a chain of servers while
// clients connect as fast as they can, as junction's reload does: each
// server's Shutdown stops its accept loop, leaving the socket open, and
// the next Serves it. No connection is refused or lost, each is served by
// the server that accepted it, and Accept runs on Serve's own goroutine
// (no goroutine hands connections to the server).
func TestHandOverUnderLoad(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rec := &handOverRecord{acceptedBy: map[string]int{}, servedBy: map[string]int{}, acceptG: map[int]int{}}
	serveG := map[int]int{}
	var serveGMu sync.Mutex

	var stop atomic.Bool
	var ok, failed atomic.Int64
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			for !stop.Load() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Log(err)
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write([]byte{'x'})
				b := make([]byte, 8)
				n, rerr := c.Read(b)
				c.Close()
				if err != nil || rerr != nil || n == 0 {
					t.Logf("request: %v, reply %q, %v", err, b[:n], rerr)
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}

	start := func(id int) (*Server, chan error) {
		s := &Server{Protocol: "test", Logger: slog.New(slog.DiscardHandler)}
		h := keepAliveHandler(strconv.Itoa(id), true)
		s.Handler = func(ctx context.Context, c *Conn) error {
			rec.mu.Lock()
			rec.servedBy[c.RemoteAddr().String()] = id
			rec.mu.Unlock()
			return h(ctx, c)
		}
		l := keepopen.Wrap(&recordingListener{TCPListener: ln.(*net.TCPListener), id: id, rec: rec})
		served := make(chan error, 1)
		go func() {
			serveGMu.Lock()
			serveG[id] = goid()
			serveGMu.Unlock()
			served <- s.Serve(l)
		}()
		return s, served
	}
	const handOvers = 20
	s, served := start(0)
	var shutdowns sync.WaitGroup
	for i := range handOvers {
		time.Sleep(10 * time.Millisecond)
		old := s
		shutdowns.Go(func() {
			if err := old.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		})
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		s, served = start(i + 1)
	}
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	clients.Wait()
	shutdowns.Wait()
	s.Shutdown(context.Background())
	<-served

	if failed.Load() != 0 {
		t.Errorf("%d of %d connections failed across %d hand-overs", failed.Load(), failed.Load()+ok.Load(), handOvers)
	}
	if ok.Load() == 0 {
		t.Fatal("no connection was served")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for peer, by := range rec.servedBy {
		if acc, found := rec.acceptedBy[peer]; !found || acc != by {
			t.Errorf("connection from %s accepted by server %d (found %v), served by %d", peer, acc, found, by)
		}
	}
	serveGMu.Lock()
	defer serveGMu.Unlock()
	for id, g := range rec.acceptG {
		if g != serveG[id] {
			t.Errorf("server %d: Accept ran on goroutine %d, Serve on %d", id, g, serveG[id])
		}
	}
}
