package keepopen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// acceptAsync runs l.Accept on another goroutine.
func acceptAsync(l net.Listener) <-chan error {
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	return errc
}

// stillServes checks that ln accepts a new connection with no deadline
// left on it.
func stillServes(t *testing.T, ln *net.TCPListener) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial after Close: %v (the socket was closed)", err)
	}
	defer c.Close()
	errc := acceptAsync(ln)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Accept on the socket after Close: %v (deadline left behind?)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the socket did not hand out the waiting connection")
	}
}

func TestCloseWakesBlockedAccept(t *testing.T) {
	ln := listenTCP(t)
	k := Wrap(ln)
	errc := acceptAsync(k)
	time.Sleep(10 * time.Millisecond) // let Accept block (either order is correct)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Accept")
	}
	if _, err := k.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a later Accept = %v, want net.ErrClosed", err)
	}
	stillServes(t, ln)
}

func TestCloseBeforeAccept(t *testing.T) {
	ln := listenTCP(t)
	k := Wrap(ln)
	k.Close()
	if _, err := k.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	stillServes(t, ln)
}

// TestOtherListenerUnaffected: closing one server's listener wakes every
// Accept on the socket; the other server's goes on accepting.
func TestOtherListenerUnaffected(t *testing.T) {
	ln := listenTCP(t)
	a, b := Wrap(ln), Wrap(ln)
	errA := acceptAsync(a)
	got := make(chan error, 3)
	go func() {
		for range 3 {
			c, err := b.Accept()
			if c != nil {
				c.Close()
			}
			got <- err
		}
	}()
	time.Sleep(10 * time.Millisecond)
	a.Close()
	if err := <-errA; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed listener's Accept = %v", err)
	}
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("the other listener's Accept = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the other listener stopped accepting")
		}
	}
}

// fakeListener's Accept waits for a connection from the test, ignoring
// deadlines, and records the deadlines set.
type fakeListener struct {
	net.Listener // nil; only Addr would use it
	conns        chan net.Conn
	entered      chan struct{}
	mu           sync.Mutex
	deadlines    []time.Time
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.entered <- struct{}{}
	return <-f.conns, nil
}

func (f *fakeListener) SetDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadlines = append(f.deadlines, t)
	return nil
}

// TestConnArrivingAtCloseIsReturned: a connection the socket handed out
// as Close came belongs to the server that accepted it.
func TestConnArrivingAtCloseIsReturned(t *testing.T) {
	f := &fakeListener{conns: make(chan net.Conn), entered: make(chan struct{}, 1)}
	k := Wrap(f)
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() { c, err := k.Accept(); res <- result{c, err} }()
	<-f.entered
	k.Close()
	srv, cli := net.Pipe()
	defer cli.Close()
	f.conns <- srv
	r := <-res
	if r.err != nil || r.c != srv {
		t.Fatalf("Accept = %v, %v; want the connection that arrived", r.c, r.err)
	}
	r.c.Close()
	if _, err := k.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("next Accept = %v, want net.ErrClosed", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.deadlines) != 2 || f.deadlines[0].IsZero() || !f.deadlines[1].IsZero() {
		t.Errorf("deadlines set = %v, want one in the past, then cleared", f.deadlines)
	}
}

func TestWithoutSetDeadline(t *testing.T) {
	var l net.Listener = struct{ net.Listener }{listenTCP(t)}
	if Wrap(l) != l {
		t.Error("a listener without SetDeadline was wrapped")
	}
}

// serveIDs answers every connection on l with id until Accept fails.
func serveIDs(l net.Listener, id int) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			fmt.Fprint(c, id)
		}()
	}
}

// TestHandOverUnderLoad passes one socket along a chain of servers while
// clients connect as fast as they can: no connection is refused, and
// every one is answered by the server that accepted it.
func TestHandOverUnderLoad(t *testing.T) {
	ln := listenTCP(t)
	var stop atomic.Bool
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Log(err)
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				c.Close()
				if err != nil || len(b) == 0 {
					t.Logf("reply %q, %v", b, err)
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}
	const handOvers = 20
	l := Wrap(ln)
	served := make(chan error, 1)
	go func() { served <- serveIDs(l, 0) }()
	for i := range handOvers {
		time.Sleep(10 * time.Millisecond)
		l.Close()
		if err := <-served; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("server %d: Accept = %v, want net.ErrClosed", i, err)
		}
		l = Wrap(ln)
		go func() { served <- serveIDs(l, i+1) }()
	}
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	l.Close()
	<-served
	if failed.Load() != 0 {
		t.Errorf("%d of %d connections failed across %d hand-overs", failed.Load(), failed.Load()+ok.Load(), handOvers)
	}
	if ok.Load() == 0 {
		t.Error("no connection was served")
	}
}
