package connserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// goid returns the calling goroutine's id, read from its stack header
// ("goroutine 42 [running]:"). Tests only: it tells workers apart.
func goid() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 {
		return -1
	}
	id, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return id
}

// workerG is a worker goroutine seen in a stack dump.
type workerG struct {
	id    int
	state string // "select" while waiting for work
}

// workers lists the goroutines running (*Server).worker, of any server.
func workers() []workerG {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var ws []workerG
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if !bytes.Contains(g, []byte("connserver.(*Server).worker(")) {
			continue
		}
		head, _, _ := strings.Cut(string(g), "\n") // goroutine 42 [select, 2 minutes]:
		idText, state, _ := strings.Cut(strings.TrimPrefix(head, "goroutine "), " [")
		id, _ := strconv.Atoi(idText) // -1 ids never match a handler's
		ws = append(ws, workerG{id: id, state: strings.TrimSuffix(state, "]:")})
	}
	return ws
}

// waitWorkers polls until ok accepts the current workers.
func waitWorkers(t *testing.T, what string, ok func([]workerG) bool) []workerG {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws := workers()
		if ok(ws) {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: workers %v", what, ws)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func allIdle(ws []workerG) bool {
	for _, w := range ws {
		if !strings.HasPrefix(w.state, "select") {
			return false
		}
	}
	return len(ws) > 0
}

func noWorkers(ws []workerG) bool { return len(ws) == 0 }

// idHandler answers every connection with the id of the goroutine that
// serves it. A connection that sends "p" makes it panic instead.
func idHandler(ids chan<- int) Handler {
	return func(_ context.Context, c *Conn) error {
		id := goid()
		if ids != nil {
			ids <- id
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second)) // a failed read ends the connection
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		switch b[0] {
		case 'p':
			panic("boom")
		case 'n':
			var m map[string]int
			m["x"]++ // a runtime error panic
		}
		_, err := fmt.Fprint(c, id)
		return err
	}
}

// serveResult is Serve's return value, waited for once.
type serveResult struct {
	once sync.Once
	ch   chan error
	err  error
}

func (r *serveResult) wait() error {
	r.once.Do(func() { r.err = <-r.ch })
	return r.err
}

// startServer serves h on a loopback listener until the test ends.
func startServer(t *testing.T, h Handler) (*Server, string, *serveResult) {
	t.Helper()
	waitWorkers(t, "no workers before the test", noWorkers)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &fakeObserver{}
	s := &Server{Protocol: "test", Handler: h, Logger: slog.New(slog.DiscardHandler), Observer: o}
	res := &serveResult{ch: make(chan error, 1)}
	go func() { res.ch <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := res.wait(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
		waitWorkers(t, "no workers after the test", noWorkers)
	})
	return s, l.Addr().String(), res
}

// ask sends b on a new connection and returns everything the server
// wrote before closing it.
func ask(t *testing.T, addr string, b byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // a timeout fails the read below
	if _, err := c.Write([]byte{b}); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return string(out)
}

// fetch reads what the server writes on a new connection before closing
// it, or returns the error's text.
func fetch(addr string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a timeout fails the read below
	out, err := io.ReadAll(c)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// TestWorkerReuse: sequential connections run on the same worker once it
// waits for work again.
func TestWorkerReuse(t *testing.T) {
	s, addr, _ := startServer(t, idHandler(nil))
	seen := map[string]int{}
	for i := range 30 {
		if i > 0 {
			waitWorkers(t, "the worker to wait for work", allIdle)
		}
		id := ask(t, addr, 'x')
		if _, err := strconv.Atoi(id); err != nil {
			t.Fatalf("connection %d answered %q", i, id)
		}
		seen[id]++
	}
	if len(seen) != 1 {
		t.Errorf("30 sequential connections ran on %d goroutines (%v), want 1", len(seen), seen)
	}
	if ws := workers(); len(ws) != 1 {
		t.Errorf("%d workers, want 1", len(ws))
	}
	// The client has its answer before the server counts the close.
	deadline := time.Now().Add(5 * time.Second)
	for s.ActiveConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := s.ActiveConns(); n != 0 {
		t.Errorf("%d active connections", n)
	}
}

// TestWorkerSurvivesPanic: a handler panic closes its connection and the
// same worker serves the next one.
func TestWorkerSurvivesPanic(t *testing.T) {
	for _, tt := range []struct {
		name string
		send byte
	}{{"panic value", 'p'}, {"runtime error", 'n'}} {
		t.Run(tt.name, func(t *testing.T) {
			ids := make(chan int, 10)
			s, addr, _ := startServer(t, idHandler(ids))
			if out := ask(t, addr, tt.send); out != "" {
				t.Fatalf("panicking handler answered %q", out)
			}
			panicked := <-ids
			waitWorkers(t, "the worker to wait for work", allIdle)
			out := ask(t, addr, 'x')
			<-ids
			if out != strconv.Itoa(panicked) {
				t.Errorf("next connection served by goroutine %s, want the worker %d that recovered", out, panicked)
			}
			// The client sees the end of its connection before the server
			// counts it closed: wait for the count.
			o := s.Observer.(*fakeObserver)
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				o.mu.Lock()
				closed := o.closed
				o.mu.Unlock()
				if closed >= 2 || time.Now().After(deadline) {
					break
				}
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.opened != 2 || o.closed != 2 || len(o.reasons) != 1 || o.reasons[0] != ReasonPanic {
				t.Errorf("observer opened %d closed %d reasons %q", o.opened, o.closed, o.reasons)
			}
		})
	}
}

// TestConcurrentConns: connections that all block at once each get a
// worker at once; none waits for another to finish.
func TestConcurrentConns(t *testing.T) {
	const n = 50
	var started atomic.Int32
	allIn := make(chan struct{})
	release := make(chan struct{})
	handler := func(ctx context.Context, c *Conn) error {
		if started.Add(1) == n+1 { // n blocked plus the warm-up one
			close(allIn)
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := fmt.Fprint(c, goid())
		return err
	}
	s, addr, _ := startServer(t, handler)
	// One idle worker first, so dispatch meets both an idle worker and
	// none.
	warm := make(chan string, 1)
	go func() { warm <- fetch(addr) }()
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{}
	if w := <-warm; w == "" {
		t.Fatal("warm-up connection got no answer")
	}
	waitWorkers(t, "the warm-up worker to wait for work", allIdle)

	answers := make(chan string, n)
	for range n {
		go func() { answers <- fetch(addr) }()
	}
	select {
	case <-allIn:
	case <-time.After(5 * time.Second):
		t.Fatalf("only %d of %d blocked connections are being served", started.Load()-1, n)
	}
	if got := s.ActiveConns(); got != n {
		t.Errorf("%d active connections, want %d", got, n)
	}
	if ws := workers(); len(ws) != n {
		t.Errorf("%d workers while %d connections block, want %d", len(ws), n, n)
	}
	close(release)
	ids := map[string]bool{}
	for range n {
		a := <-answers
		if _, err := strconv.Atoi(a); err != nil {
			t.Fatalf("answer %q", a)
		}
		ids[a] = true
	}
	if len(ids) != n {
		t.Errorf("%d concurrent connections ran on %d goroutines", n, len(ids))
	}
}

// TestWorkersExit: Shutdown and Close end idle workers, and workers busy
// with a connection exit when it ends instead of waiting for more.
func TestWorkersExit(t *testing.T) {
	const n = 10
	tests := []struct {
		name string
		busy bool // connections still open when the server stops
		stop func(*Server) error
	}{
		{"Shutdown idle", false, func(s *Server) error { return s.Shutdown(context.Background()) }},
		{"Close idle", false, (*Server).Close},
		{"Shutdown busy", true, func(s *Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		}},
		{"Close busy", true, (*Server).Close},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			var wg sync.WaitGroup
			release := make(chan struct{})
			handler := func(ctx context.Context, c *Conn) error {
				c.SetIdle(false)
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			}
			s, addr, served := startServer(t, handler)
			var clients []net.Conn
			for range n {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			defer func() {
				for _, c := range clients {
					c.Close()
				}
			}()
			waitWorkers(t, "a worker per connection", func(ws []workerG) bool { return len(ws) == n })
			if !tt.busy {
				close(release)
				waitWorkers(t, "idle workers", allIdle)
			}
			wg.Add(1)
			stopped := make(chan error, 1)
			go func() { defer wg.Done(); stopped <- tt.stop(s) }()
			if tt.busy && strings.HasPrefix(tt.name, "Shutdown") {
				// Shutdown waits for the running connections.
				select {
				case err := <-stopped:
					t.Fatalf("Shutdown returned %v while connections run", err)
				case <-time.After(20 * time.Millisecond):
				}
				close(release)
			}
			if err := <-stopped; err != nil {
				t.Errorf("stopping: %v", err)
			}
			wg.Wait()
			if err := served.wait(); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve = %v", err)
			}
			waitWorkers(t, "workers to exit", noWorkers)
			for range 500 {
				if runtime.NumGoroutine() <= base+1 { // +1: Serve's own, gone by now too
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			if g := runtime.NumGoroutine(); g > base+1 {
				t.Errorf("%d goroutines after the server stopped, %d before it started", g, base)
			}
			if tt.busy && !strings.HasPrefix(tt.name, "Shutdown") {
				close(release)
			}
		})
	}
}

// pipeListener hands out net.Pipe connections, so a synctest bubble can
// serve them.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// ask sends b on a new connection and returns the answer.
func (l *pipeListener) ask(t *testing.T, b byte) string {
	t.Helper()
	srv, cli := net.Pipe()
	l.conns <- srv
	defer cli.Close()
	if _, err := cli.Write([]byte{b}); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(cli)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestWorkerIdleTimeout: a worker waits workerIdle for the next
// connection, then exits.
func TestWorkerIdleTimeout(t *testing.T) {
	waitWorkers(t, "no workers before the test", noWorkers)
	synctest.Test(t, func(t *testing.T) {
		l := newPipeListener()
		s := &Server{Protocol: "test", Handler: idHandler(nil), Logger: slog.New(slog.DiscardHandler)}
		errc := make(chan error, 1)
		go func() { errc <- s.Serve(l) }()

		first := l.ask(t, 'x')
		synctest.Wait()
		time.Sleep(workerIdle - time.Millisecond)
		synctest.Wait()
		if ws := workers(); len(ws) != 1 {
			t.Fatalf("%d workers just before workerIdle, want 1", len(ws))
		}
		if again := l.ask(t, 'x'); again != first {
			t.Errorf("connection within workerIdle served by %s, want the waiting worker %s", again, first)
		}
		synctest.Wait()
		time.Sleep(workerIdle) // the wait starts again after every connection
		synctest.Wait()
		if ws := workers(); len(ws) != 0 {
			t.Errorf("%d workers after workerIdle without work, want 0", len(ws))
		}
		if later := l.ask(t, 'x'); later == first || later == "" {
			t.Errorf("connection after workerIdle answered %q (the exited worker was %s)", later, first)
		}
		s.Close()
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
}
