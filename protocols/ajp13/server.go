package ajp13

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
)

// Defaults for zero Server fields, the same as junction's config defaults.
const (
	// DefaultReadTimeout bounds the rest of a request packet once its
	// first byte arrived, and each request body packet.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout bounds the wait for the next request on a pooled
	// connection. mod_proxy_ajp and mod_jk check a pooled connection before
	// reuse (and with ping= / ping_mode send CPING), so closing an idle one
	// costs a reconnect, not a failed request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes bounds the header names and values of one
	// request. The packet size bounds the whole FORWARD_REQUEST anyway.
	DefaultMaxHeaderBytes = 64 << 10
)

// Server serves AJP13 connections from a web server.
type Server struct {
	// Handler serves each request. Required.
	Handler http.Handler
	// PacketSize is the largest packet, 8192..65536; zero means
	// DefaultPacketSize. It must match the web server's ProxyIOBufferSize
	// (mod_proxy_ajp) or worker max_packet_size (mod_jk).
	PacketSize int
	// Secret, when set, must be sent by the web server with every request
	// (mod_proxy_ajp secret=, mod_jk worker secret); requests without the
	// exact value are answered 403, logged, and their connection closed.
	Secret string
	// Route is this instance's route (jvmRoute) for sticky sessions. It is
	// given to handlers in the JUNCTION_ROUTE variable.
	Route string
	// MaxHeaderBytes bounds the sum of request header name and value
	// lengths; zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// ReadTimeout bounds reading a whole FORWARD_REQUEST (or CPING) from
	// its first byte, header included (one deadline: a web server
	// trickling it is cut off when a silent one would be), and each
	// request body packet; zero means DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a connection;
	// zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the web server; zero means
	// connserver.DefaultWriteTimeout (60s), a negative value none.
	WriteTimeout time.Duration
	// Logger receives one line per connection closed for a reason, and per
	// refused request; nil means slog.Default().
	Logger *slog.Logger
	// Observer, if set, counts connections, decode errors (see Reason)
	// and protocol events: "ajp_cping" (CPING and PING), and
	// "ajp_secret_refused" and "ajp_shutdown_refused" for refused
	// requests whose connection is then closed.
	Observer Observer

	once sync.Once
	cs   *connserver.Server
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) packetSize() int {
	if s.PacketSize == 0 {
		return DefaultPacketSize
	}
	return s.PacketSize
}

func (s *Server) readTimeout() time.Duration {
	if s.ReadTimeout <= 0 {
		return DefaultReadTimeout
	}
	return s.ReadTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout <= 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return s.MaxHeaderBytes
}

func (s *Server) check() error {
	var errs []error
	if s.Handler == nil {
		errs = append(errs, errors.New("ajp13: Server.Handler is nil"))
	}
	if n := s.packetSize(); n < DefaultPacketSize || n > MaxPacketSize {
		errs = append(errs, fmt.Errorf("ajp13: PacketSize %d outside %d..%d", n, DefaultPacketSize, MaxPacketSize))
	}
	return errors.Join(errs...)
}

func (s *Server) server() *connserver.Server {
	s.once.Do(func() {
		s.cs = &connserver.Server{
			Protocol: "ajp13",
			Logger:   s.Logger,
			Observer: s.Observer,
			Reason:   Reason,
			Handler: func(ctx context.Context, c *connserver.Conn) error {
				return newConn(s, c).serve(ctx)
			},
		}
	})
	return s.cs
}

// Serve accepts connections on l and serves them until Shutdown or Close;
// it then returns connserver's ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.server().Serve(l)
}

// ServeConn serves one accepted connection until the web server closes it.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	if err := s.check(); err != nil {
		c.Close()
		return err
	}
	return s.server().ServeConn(ctx, c)
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish (their END_RESPONSE says reuse=0) and waits for them or
// for ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.server().Shutdown(ctx) }

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.server().Close() }

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = connserver.ErrServerClosed
