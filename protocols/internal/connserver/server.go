// Package connserver is the accept loop shared by junction's codec servers
// (SCGI, FastCGI, AJP13). It owns what every codec needs and nobody should
// write twice: connection tracking, a per-connection context, panic
// recovery, one log line per failed connection, and graceful shutdown with
// the method set of *http.Server (Serve, Shutdown, Close).
//
// Shutdown and Close stop Serve by closing its listener. A listener whose
// Close only stops its Accept calls (internal/keepopen) lets the next
// server take the same socket over; a connection Accept returned before
// that is served by the server that accepted it.
package connserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/internal/rawconn"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("connserver: server closed")

// Handler serves one connection until it is done with it. A returned error
// other than io.EOF (or a closed connection during shutdown) is logged once
// with the peer address; the server then closes the connection.
type Handler func(ctx context.Context, c *Conn) error

// Server accepts connections and hands each to Handler in its own goroutine.
type Server struct {
	// Protocol names the codec in log lines ("scgi", "fastcgi", "ajp13").
	Protocol string
	// Handler serves each connection.
	Handler Handler
	// Logger receives one line per connection that ended with an error.
	Logger *slog.Logger
	// NewConnGrace overrides the package's NewConnGrace (tests).
	NewConnGrace time.Duration
	// BaseContext, if set, returns the base context for connections.
	BaseContext func(net.Listener) context.Context
	// Observer, if set, is told of connections opening and closing, of
	// connections closed for an error (labelled by Reason) and of the
	// codec's protocol events.
	Observer Observer
	// Reason maps the error that ended a connection to a short, stable
	// label for Observer.DecodeError; "" means the error is not counted.
	// Nil means GenericReason.
	Reason func(error) string

	initOnce sync.Once
	mu       sync.Mutex
	serving  map[*serving]struct{} // Serve calls running
	conns    map[*Conn]struct{}
	shutdown atomic.Bool   // Shutdown or Close was called
	closed   bool          // Close was called; guarded by mu
	done     chan struct{} // closed by Close
	stop     chan struct{} // closed by Shutdown and Close
	stopOnce sync.Once
	doneOnce sync.Once // closes done exactly once, however many Close calls race

	// Idle workers: a goroutine that served a connection waits a while
	// for the next one (work), so a connection runs on a stack that has
	// already grown to what serving takes instead of growing (copying) a
	// fresh goroutine's stack every time. Idle workers exit on stop.
	work chan job
}

// serving is one running Serve call: its listener, and done closed when
// Serve returns.
type serving struct {
	l    net.Listener
	done chan struct{}
}

// job is a tracked connection waiting for a worker.
type job struct {
	ctx context.Context
	c   *Conn
}

// workerIdle is how long a worker waits for another connection.
const workerIdle = 10 * time.Second

// Conn is a served connection. Handlers of protocols with keep-alive mark
// the connection idle between requests so Shutdown can close it.
type Conn struct {
	net.Conn
	srv      *Server
	idle     atomic.Bool
	started  atomic.Bool // a request began (SetIdle(false) was called)
	accepted time.Time
	cancel   context.CancelFunc

	reads, writes Deadline
}

// newConn wraps an accepted connection.
func newConn(nc net.Conn, s *Server, cancel context.CancelFunc) *Conn {
	c := &Conn{Conn: rawconn.Wrap(nc), srv: s, cancel: cancel, accepted: time.Now()}
	c.reads.conn, c.writes.conn, c.writes.write = c.Conn, c.Conn, true
	return c
}

// NewConnGrace is how long Shutdown lets a new connection (one on which
// no request began: SetIdle(false) was never called) send its first
// request before closing it, as net/http does for new connections. A
// front server that just connected is almost always about to send its
// request; closing it at once would turn that request into an error, and
// a connection accepted just before Shutdown would be lost.
const NewConnGrace = 5 * time.Second

// SetIdle records whether the connection is between requests. It returns
// false when the server is shutting down and an idle connection should end:
// the handler then returns nil. A new connection is not ended that way:
// it may send its first request (see NewConnGrace).
func (c *Conn) SetIdle(idle bool) bool {
	if !idle {
		c.started.Store(true)
	}
	c.idle.Store(idle)
	return !(idle && c.ShuttingDown())
}

// ShuttingDown reports whether the connection should end once it is idle:
// Shutdown or Close was called and a request began on it. A new
// connection is closed by the server instead when its grace has passed.
func (c *Conn) ShuttingDown() bool { return c.srv.shutdown.Load() && c.started.Load() }

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.done = make(chan struct{})
		s.stop = make(chan struct{})
		s.work = make(chan job)
	})
}

// Serve accepts connections on l until Shutdown or Close and serves each
// on a worker goroutine. It always returns a non-nil error; after
// Shutdown or Close, ErrServerClosed. A connection that Accept returned
// is served even when Shutdown began meanwhile (Shutdown waits for it):
// the peer has connected, and closing it unserved would lose it.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	sv := &serving{l: l, done: make(chan struct{})}
	if s.serving == nil {
		s.serving = make(map[*serving]struct{})
	}
	s.serving[sv] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.serving, sv)
		s.mu.Unlock()
		close(sv.done)
	}()

	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(l)
	}
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept failed; retrying", "protocol", s.Protocol, "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("%s: accept: %w", s.Protocol, err)
		}
		backoff = 0
		ctx, cancel := context.WithCancel(base)
		c := newConn(nc, s, cancel)
		if !s.track(c, true) {
			cancel()
			nc.Close()
			return ErrServerClosed
		}
		s.dispatch(job{ctx: ctx, c: c})
	}
}

// dispatch hands j to an idle worker, or starts one.
func (s *Server) dispatch(j job) {
	select {
	case s.work <- j:
	default:
		go s.worker(j)
	}
}

// worker serves j, then further connections until none comes for
// workerIdle or the server shuts down.
func (s *Server) worker(j job) {
	var idle *time.Timer
	for {
		s.serveConn(j.ctx, j.c) // logs its own error
		if s.shutdown.Load() {
			return
		}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case j = <-s.work:
			idle.Stop()
		case <-idle.C:
			return
		case <-s.stop:
			return
		}
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ECONNABORTED).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track adds c to the connections being served. It refuses once Close
// was called, and once Shutdown was called unless c was accepted (by
// Serve, which Shutdown waits for).
func (s *Server) track(c *Conn, accepted bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !accepted && s.shutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

// ServeConn serves one already-accepted connection (junction inetd: the
// connection is stdin/stdout) and returns the handler's error.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) error {
	s.init()
	ctx, cancel := context.WithCancel(ctx)
	c := newConn(nc, s, cancel)
	if !s.track(c, false) {
		cancel()
		nc.Close()
		return ErrServerClosed
	}
	return s.serveConn(ctx, c)
}

func (s *Server) serveConn(ctx context.Context, c *Conn) (err error) {
	if s.Observer != nil {
		s.Observer.ConnOpened()
		defer s.Observer.ConnClosed()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: panic serving connection: %v", s.Protocol, p)
			s.logger().Error("connection closed after panic", "protocol", s.Protocol,
				"remote", remote(c), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			s.DecodeError(ReasonPanic)
		} else if err != nil && !quiet(err) {
			s.logger().Warn("connection closed", "protocol", s.Protocol, "remote", remote(c), "reason", err.Error())
			s.DecodeError(s.reason(err))
		}
		c.cancel()
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	return s.Handler(ctx, c)
}

// quiet reports errors that are a normal end of a connection: the peer
// closed it (a net.Pipe, as inetd tests use, says io.ErrClosedPipe) or
// it was closed here.
func quiet(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, ErrServerClosed)
}

func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "local"
}

// Shutdown stops accepting, closes idle connections and waits for active
// ones to finish, or for ctx to end (then it returns ctx.Err() and leaves
// the rest to Close). Serve returns as soon as it stopped accepting.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.shutdown.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
	accepting, _ := s.closeListeners() // a listener's close error is Close's to report
	// A connection accepted while the listeners closed is served: wait
	// until every Serve has returned before counting what is left.
	for _, done := range accepting {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes listeners and every connection at once, cancelling the
// contexts of requests in flight.
func (s *Server) Close() error {
	s.init()
	s.shutdown.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
	s.doneOnce.Do(func() { close(s.done) })
	_, err := s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.cancel()
		c.Close()
	}
	return err
}

// closeListeners closes the listeners of every running Serve and returns
// channels closed when those Serve calls have returned.
func (s *Server) closeListeners() ([]chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var done []chan struct{}
	var errs []error
	for sv := range s.serving {
		if err := sv.l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		done = append(done, sv.done)
	}
	return done, errors.Join(errs...)
}

// closeIdle closes idle connections and returns how many remain.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if !c.started.Load() && time.Since(c.accepted) > s.newConnGrace() || c.started.Load() && c.idle.Load() {
			c.cancel()
			c.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) newConnGrace() time.Duration {
	if s.NewConnGrace > 0 {
		return s.NewConnGrace
	}
	return NewConnGrace
}

// ActiveConns returns how many connections are being served.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
