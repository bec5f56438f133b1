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
}

func (s *Server) init() {
	s.once.Do(func() {
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
			ConnState:         s.ConnState,
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

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error { s.init(); return s.hs.Serve(l) }

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
func (s *Server) Shutdown(ctx context.Context) error { s.init(); return s.hs.Shutdown(ctx) }

// Close stops at once.
func (s *Server) Close() error { s.init(); return s.hs.Close() }

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
