package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/internal/spool"
	"github.com/junction-gw/junction/protocols/internal/connserver"
)

// Defaults used when a Server field is zero.
const (
	// DefaultMaxHeaderBytes bounds PARAMS per request. nginx's default
	// large_client_header_buffers (4 x 8k) plus its own variables fit
	// well within it.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxRequests caps requests in flight across all connections:
	// each holds at most bodyMemLimit of body in memory.
	DefaultMaxRequests = 1000
	// DefaultMaxRequestsPerConn caps multiplexed requests per connection.
	DefaultMaxRequestsPerConn = 100
	// DefaultReadTimeout bounds a request's head (BEGIN_REQUEST and
	// PARAMS, whole) and each wait for its STDIN.
	DefaultReadTimeout = 60 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection with no request
	// in flight; nginx's upstream keepalive_timeout is 60s, so a longer
	// idle time lets nginx close first and never race a reused socket.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultWriteTimeout bounds the write of one record to the peer.
	DefaultWriteTimeout = connserver.DefaultWriteTimeout
)

// Server serves FastCGI RESPONDER requests with Handler. A Server with
// only a Handler set is usable: zero limits take the defaults above, and
// multiplexing is off until Multiplex is set.
type Server struct {
	// Handler serves each request. The request context is cancelled on
	// ABORT_REQUEST and when the connection is lost.
	Handler http.Handler
	// MaxHeaderBytes bounds the PARAMS bytes of one request; 0 means
	// DefaultMaxHeaderBytes. A larger request is answered 431.
	MaxHeaderBytes int
	// ReadTimeout bounds each request's head, from the first byte of its
	// BEGIN_REQUEST to the empty PARAMS record (one deadline: a peer
	// trickling it is cut off when a silent one would be), and each wait
	// for its STDIN; 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection with no request in flight; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds the write of each record; 0 means
	// DefaultWriteTimeout, a negative value none.
	WriteTimeout time.Duration
	// MaxConns caps open connections (Serve waits to accept beyond it)
	// and is answered as FCGI_MAX_CONNS; 0 means no cap and no answer.
	MaxConns int
	// MaxRequests caps requests in flight across all connections, answered
	// as FCGI_MAX_REQS; 0 means DefaultMaxRequests. Beyond it a request is
	// answered END_REQUEST FCGI_OVERLOADED.
	MaxRequests int
	// MaxRequestsPerConn caps requests in flight on one connection; 0
	// means DefaultMaxRequestsPerConn. Beyond it: FCGI_OVERLOADED.
	MaxRequestsPerConn int
	// Multiplex is answered as FCGI_MPXS_CONNS. When false a second
	// request on a busy connection is answered FCGI_CANT_MPX_CONN. The
	// composition root sets it (config default true); the zero value
	// means no multiplexing.
	Multiplex bool
	// SpoolBudget, if set, bounds the bytes of request bodies spooled to
	// temporary files across all connections (a multiplexing peer feeding
	// requests whose handlers do not read yet); the composition root
	// shares it with the listener's response spooling (max_spool_bytes).
	// A request that would exceed it is answered 503 like one beyond
	// the per-request spool limit. Nil: only the per-request limit.
	SpoolBudget *spool.Budget
	// WebServerAddrs, when not empty, lists the only peer IP addresses
	// allowed to connect (FCGI_WEB_SERVER_ADDRS); others are closed at
	// once with a logged reason.
	WebServerAddrs []string
	// Logger receives one line per connection closed for a reason, and
	// debug lines for accepted and ended connections.
	Logger *slog.Logger
	// Observer, if set, counts connections, decode errors (see Reason)
	// and protocol events: "fastcgi_end_request_<status>" for every
	// END_REQUEST sent (request_complete, cant_mpx_conn, overloaded,
	// unknown_role), "fastcgi_abort" and "fastcgi_get_values".
	Observer Observer

	initOnce sync.Once
	cs       connserver.Server
	inflight atomic.Int64 // requests in flight across connections
	allowed  []netip.Addr
	allowErr error
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.cs.Protocol = "fastcgi"
		s.cs.Logger = s.logger()
		s.cs.Handler = s.serveConn
		s.cs.Observer = s.Observer
		s.cs.Reason = Reason
		for _, a := range s.WebServerAddrs {
			ip, err := netip.ParseAddr(strings.TrimSpace(a))
			if err != nil {
				s.allowErr = errors.Join(s.allowErr, fmt.Errorf("fastcgi: web server address %q: %w", a, err))
				continue
			}
			s.allowed = append(s.allowed, ip.Unmap())
		}
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) maxHeaderBytes() int { return orDefault(s.MaxHeaderBytes, DefaultMaxHeaderBytes) }
func (s *Server) maxRequests() int    { return orDefault(s.MaxRequests, DefaultMaxRequests) }
func (s *Server) maxPerConn() int     { return orDefault(s.MaxRequestsPerConn, DefaultMaxRequestsPerConn) }
func (s *Server) readTimeout() time.Duration {
	return orDefault(s.ReadTimeout, DefaultReadTimeout)
}
func (s *Server) idleTimeout() time.Duration {
	return orDefault(s.IdleTimeout, DefaultIdleTimeout)
}
func (s *Server) writeTimeout() time.Duration {
	return connserver.WriteTimeout(s.WriteTimeout)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// acquire reserves one of MaxRequests slots.
func (s *Server) acquire() bool {
	limit := int64(s.maxRequests())
	for {
		n := s.inflight.Load()
		if n >= limit {
			return false
		}
		if s.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *Server) release() { s.inflight.Add(-1) }

// Serve accepts connections on l until Shutdown or Close. It returns
// connserver's ErrServerClosed after those, like http.Server.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	if s.allowErr != nil {
		return s.allowErr
	}
	if s.MaxConns > 0 {
		l = newLimitListener(l, s.MaxConns)
	}
	return s.cs.Serve(l)
}

// ServeConn serves one connection, for example an inherited socket, until
// the peer closes it, and returns why it ended.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.init()
	if s.allowErr != nil {
		c.Close()
		return s.allowErr
	}
	return s.cs.ServeConn(ctx, c)
}

// Shutdown stops accepting, closes idle connections and waits for
// requests in flight to finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	return s.cs.Shutdown(ctx)
}

// Close closes the listeners and every connection, cancelling requests in
// flight.
func (s *Server) Close() error {
	s.init()
	return s.cs.Close()
}

// peerAllowed applies WebServerAddrs. Peers without an IP address (unix
// sockets, pipes) are allowed: the file system guards those.
func (s *Server) peerAllowed(c net.Conn) error {
	if len(s.allowed) == 0 {
		return nil
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return nil
	}
	ip := ap.Addr().Unmap()
	for _, a := range s.allowed {
		if a == ip {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not in FCGI_WEB_SERVER_ADDRS", errPeerRefused, ip)
}

// ParseWebServerAddrs splits an FCGI_WEB_SERVER_ADDRS value
// ("127.0.0.1,10.0.0.5") into addresses for Server.WebServerAddrs and
// checks each.
func ParseWebServerAddrs(s string) ([]string, error) {
	var out []string
	var errs []error
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, err := netip.ParseAddr(f); err != nil {
			errs = append(errs, fmt.Errorf("fastcgi: FCGI_WEB_SERVER_ADDRS entry %q: %w", f, err))
			continue
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

// limitListener caps accepted connections that are still open.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, fmt.Errorf("fastcgi: accept: %w", net.ErrClosed)
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
