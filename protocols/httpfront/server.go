// Package httpfront serves junction's handlers over plain HTTP/1.1, for
// trying junction without a front server and for tests. It is a thin layer
// over net/http.Server with the same options as the other codecs.
package httpfront

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults for zero options, matching the other codecs.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultReadTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
)

// Server serves HTTP. Its method set matches the other codec servers.
type Server struct {
	// Handler serves each request.
	Handler http.Handler
	// MaxHeaderBytes bounds the request head.
	MaxHeaderBytes int
	// ReadTimeout bounds reading the request head, and each read of a
	// request body.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection.
	IdleTimeout time.Duration
	// WriteTimeout, if positive, bounds writing the whole response.
	WriteTimeout time.Duration
	// Logger receives server errors; nil means slog.Default().
	Logger *slog.Logger
	// ConnState, if set, is called when a connection changes state, as
	// http.Server's hook of the same name (junction counts open
	// connections with it).
	ConnState func(net.Conn, http.ConnState)

	once sync.Once
	hs   *http.Server

	mu       sync.Mutex
	serving  map[*net.Listener]chan struct{} // Serve calls running; closed when one returned
	fresh    map[net.Conn]time.Time          // accepted connections yet to send a request
	stopping bool                            // Shutdown or Close was called
}

// newConnGrace is how long Shutdown waits for a connection accepted
// before it to send its first request (net/http's own grace for new
// connections is 5 s too).
const newConnGrace = 5 * time.Second

func (s *Server) init() {
	s.once.Do(func() {
		s.serving = map[*net.Listener]chan struct{}{}
		s.fresh = map[net.Conn]time.Time{}
		log := s.Logger
		if log == nil {
			log = slog.Default()
		}
		s.hs = &http.Server{
			Handler:           bodyDeadlines(s.Handler, or(s.ReadTimeout, DefaultReadTimeout)),
			MaxHeaderBytes:    or(s.MaxHeaderBytes, DefaultMaxHeaderBytes),
			ReadHeaderTimeout: or(s.ReadTimeout, DefaultReadTimeout),
			IdleTimeout:       or(s.IdleTimeout, DefaultIdleTimeout),
			WriteTimeout:      s.WriteTimeout,
			ConnState:         s.connState,
			ErrorLog:          slog.NewLogLogger(log.With("protocol", "http").Handler(), slog.LevelWarn),
		}
	})
}

func or[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// connState follows the connections that have not sent a request yet,
// then calls the ConnState hook.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	if st == http.StateNew {
		s.fresh[c] = time.Now()
	} else {
		delete(s.fresh, c)
	}
	s.mu.Unlock()
	if s.ConnState != nil {
		s.ConnState(c, st)
	}
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ErrServerClosed
	}
	done := make(chan struct{})
	s.serving[&l] = done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.serving, &l)
		s.mu.Unlock()
		close(done)
	}()
	err := s.hs.Serve(l)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		// Shutdown closed l before net/http knew it was shutting down.
		return ErrServerClosed
	}
	return err
}

// ServeConn serves HTTP requests on the one connection c until it closes.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.init()
	l := &oneConn{c: c, done: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
			s.hs.Close()
		case <-l.done:
		}
	}()
	err := s.hs.Serve(l)
	<-l.closed()
	if errors.Is(err, errListenerDone) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for requests in flight, or ctx.
//
// net/http closes a connection unanswered when it reads a request after
// its Shutdown began, so the listeners are closed first and the
// connections accepted until then get their first request read (at most
// newConnGrace) before net/http shuts down: a connection accepted just
// before Shutdown is served.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	if err := s.stopAccepting(ctx); err != nil {
		return err
	}
	return s.hs.Shutdown(ctx)
}

// stopAccepting closes the listeners, waits for Serve to return and for
// the fresh connections to send a request, or for ctx.
func (s *Server) stopAccepting(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	var serving []chan struct{}
	for l, done := range s.serving {
		// Should Close fail, Serve goes on accepting and the wait below
		// ends with ctx; the caller's Close then closes it through net/http.
		_ = (*l).Close()
		serving = append(serving, done)
	}
	s.mu.Unlock()
	for _, done := range serving {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.waitingFresh() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waitingFresh reports whether a connection accepted less than
// newConnGrace ago has not sent a request yet.
func (s *Server) waitingFresh() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.fresh {
		if time.Since(t) < newConnGrace {
			return true
		}
	}
	return false
}

// Close stops at once.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	return s.hs.Close()
}

var errListenerDone = errors.New("httpfront: single connection served")

// oneConn is a listener that yields c once, then blocks until c closes.
type oneConn struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	used bool
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	used := l.used
	l.used = true
	l.mu.Unlock()
	if !used {
		return &watchedConn{Conn: l.c, onClose: func() { l.once.Do(func() { close(l.done) }) }}, nil
	}
	<-l.done
	return nil, errListenerDone
}

func (l *oneConn) closed() <-chan struct{} { return l.done }
func (l *oneConn) Close() error            { return nil }
func (l *oneConn) Addr() net.Addr          { return l.c.LocalAddr() }

type watchedConn struct {
	net.Conn
	onClose func()
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}
