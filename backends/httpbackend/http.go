// Package httpbackend proxies requests to one HTTP/1.1 application
// instance (a Go, Node.js, Python or Java server listening on TCP or a Unix
// socket). Its directory is backends/http; the package is named
// httpbackend so that it does not shadow net/http where both are imported.
//
// A Backend is one instance. Pools of instances, retries and health
// bookkeeping belong to the balancer, which holds one Backend per instance
// address and calls Check for active health checks.
//
// The proxy is net/http/httputil.ReverseProxy with a Rewrite function:
//
//   - The Host header is the client's (r.Host), so the application builds
//     its own URLs; X-Forwarded-Host says the same.
//   - X-Forwarded-For is the front server's value (the front server is
//     trusted) with the client address from r.RemoteAddr appended, unless
//     it already ends with that address. The codecs set r.RemoteAddr from
//     REMOTE_ADDR / the AJP remote_addr.
//   - X-Forwarded-Proto is "https" when r.TLS is set (the codecs set it
//     from HTTPS=on or AJP is_ssl), else "http"; X-Forwarded-Host is r.Host.
//     Both replace whatever came in: a client can send these headers through
//     the front server, and junction knows better.
//   - Forwarded (RFC 7239) gets one element for=…;host=…;proto=… appended
//     to the incoming value.
//   - Hop-by-hop headers are removed both ways (ReverseProxy does it), and
//     the Proxy request header is never forwarded (httpoxy, CVE-2016-5385).
//   - Bodies stream both ways; every write to the client is flushed, so
//     server-sent events and long polls pass through as they are produced.
//   - The request context cancels the upstream request.
//   - The transport never uses proxy settings from the environment and
//     never adds or removes compression.
//
// Failures before the first byte of the response was written are returned
// from Serve, never written: the client's own (a request body that failed
// or ended before its Content-Length, a client that went away) as
// *backends.ClientError, which a balancer never counts against the
// instance; a dial failure as *backends.DialError, a response-header
// timeout as a *backends.Error with status 504, anything else as a
// *backends.Error with status 502. On a dial failure the request
// body has not been read at all: http.Transport reads the body only on an
// established connection, and ReverseProxy hands the transport a wrapper
// whose Close leaves the inbound body open. A balancer may therefore retry
// a DialError with the same *http.Request, whatever the method. After any
// other failure the body may be partly consumed; a body without GetBody
// cannot be replayed, so only requests without a body (or idempotent
// requests whose body the caller can rebuild) may be retried then.
//
// Once the response head was written, a failure while copying the body
// ends the response early (under net/http's own server ReverseProxy aborts
// the connection with http.ErrAbortHandler) and Serve returns nil.
package httpbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/idle"
	"github.com/junction-gw/junction/internal/sockaddr"
)

// Options configure a Backend.
type Options struct {
	// Addr is the instance: "host:port" or "unix:/path/to/socket".
	Addr string
	// StripPrefix is removed from the request path before it is
	// forwarded ("/app" turns "/app/x" into "/x" and "/app" into "/"). A
	// request whose path is not under it is answered 404. Empty forwards
	// the full path unchanged.
	StripPrefix string
	// DialTimeout bounds connecting to the instance; 0 means 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response head after
	// the request was sent; 0 means 60s. The body may take longer.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes pooled keep-alive connections unused this
	// long; 0 means 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConns is how many keep-alive connections to the instance are
	// kept for reuse; 0 means 64.
	MaxIdleConns int
	// MaxConns caps connections to the instance (requests beyond it wait
	// for one); 0 means no cap. The balancer limits requests per instance
	// too; this is the transport's own bound.
	MaxConns int
	// HealthPath is what Check requests; "" means "/".
	HealthPath string
	// Logger receives failures after the response started and dial
	// problems; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	// DefaultDialTimeout: a local instance answers a connect in
	// microseconds; one that takes seconds is down or drowning, and the
	// balancer should try another.
	DefaultDialTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout matches the usual proxy read timeouts
	// (nginx proxy_read_timeout, Apache ProxyTimeout: 60s).
	DefaultResponseHeaderTimeout = 60 * time.Second
	// DefaultIdleConnTimeout is net/http's own default.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxIdleConns: net/http's per-host default of 2 would make a
	// busy proxy open and close a connection for most requests.
	DefaultMaxIdleConns = 64
	// healthBodyLimit bounds what Check reads of a health response.
	healthBodyLimit = 64 << 10
	// maxResponseHeaderBytes bounds a response head, as net/http's
	// Transport does by default.
	maxResponseHeaderBytes = 1 << 20
)

// Backend proxies to one HTTP instance. It implements backends.Backend and
// is safe for concurrent use.
type Backend struct {
	addr       string // as configured, for errors and logs
	target     *url.URL
	prefix     string
	healthPath string
	transport  *http.Transport
	// proxied is what ReverseProxy sends through: an inlineTransport in
	// front of transport, or transport itself when MaxConns caps it.
	proxied interface {
		http.RoundTripper
		CloseIdleConnections()
	}
	proxy *httputil.ReverseProxy
	log   *slog.Logger
}

var _ backends.Backend = (*Backend)(nil)

// New validates o and returns a Backend. No connection is made yet.
func New(o Options) (*Backend, error) {
	network, address, err := parseAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	if o.StripPrefix != "" && !strings.HasPrefix(o.StripPrefix, "/") {
		return nil, fmt.Errorf("httpbackend: strip prefix %q must start with /", o.StripPrefix)
	}
	hp := o.HealthPath
	if hp == "" {
		hp = "/"
	}
	if !strings.HasPrefix(hp, "/") {
		return nil, fmt.Errorf("httpbackend: health path %q must start with /", o.HealthPath)
	}
	if o.DialTimeout < 0 || o.ResponseHeaderTimeout < 0 || o.IdleConnTimeout < 0 || o.MaxIdleConns < 0 || o.MaxConns < 0 {
		return nil, errors.New("httpbackend: negative timeout or limit")
	}
	host := address
	if network == "unix" {
		// Any name will do: the dialer ignores it. The Host header is the
		// client's anyway.
		host = "localhost"
	}
	b := &Backend{
		addr:       o.Addr,
		target:     &url.URL{Scheme: "http", Host: host},
		prefix:     strings.TrimSuffix(o.StripPrefix, "/"),
		healthPath: hp,
		log:        o.Logger,
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("instance", o.Addr)
	dialer := &net.Dialer{Timeout: orDefault(o.DialTimeout, DefaultDialTimeout), KeepAlive: 30 * time.Second}
	maxIdle := orDefault(o.MaxIdleConns, DefaultMaxIdleConns)
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, address)
		if err != nil {
			return nil, &dialError{err: err}
		}
		return c, nil
	}
	b.transport = &http.Transport{
		Proxy:                  nil, // never the environment's proxy settings
		DialContext:            func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		ResponseHeaderTimeout:  orDefault(o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		IdleConnTimeout:        orDefault(o.IdleConnTimeout, DefaultIdleConnTimeout),
		MaxIdleConns:           maxIdle,
		MaxIdleConnsPerHost:    maxIdle,
		MaxConnsPerHost:        o.MaxConns,
		// Pass Accept-Encoding and compressed bodies through untouched.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	b.proxied = b.transport
	if o.MaxConns == 0 {
		// The cap is http.Transport's; without one, requests without a
		// body skip its goroutine hand-offs.
		b.proxied = &inlineTransport{
			dial:           dial,
			fallback:       b.transport,
			headerTimeout:  b.transport.ResponseHeaderTimeout,
			maxHeaderBytes: maxResponseHeaderBytes,
			idle:           idle.New(maxIdle, b.transport.IdleConnTimeout, (*persistConn).fit),
		}
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite:   b.rewrite,
		Transport: b.proxied,
		// Flushes come from the response bodies instead (flushBody,
		// inlineBody): before a read that may wait for the instance, so a
		// response that arrived whole goes out in one write. Streaming
		// responses (text/event-stream, unknown length) are flushed after
		// every write by ReverseProxy itself.
		FlushInterval: 0,
		ModifyResponse: func(resp *http.Response) error {
			if proxyFlushes(resp) {
				// ReverseProxy flushes these, partly from a timer of its
				// own; a second flusher would race with it.
				return nil
			}
			flush := flusherOf(resp.Request.Context())
			if body, ok := resp.Body.(*inlineBody); ok {
				body.flush = flush
			} else {
				resp.Body = &flushBody{ReadCloser: resp.Body, flush: flush}
			}
			return nil
		},
		BufferPool:   copyBuffers,
		ErrorHandler: b.errorHandler,
		ErrorLog:     slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	return b, nil
}

// copyBuffers saves the 32 KiB body-copy buffer ReverseProxy would
// otherwise allocate (and clear) for every request.
var copyBuffers = &bufferPool{free: make(chan []byte, 64)}

// bufferPool is a free list of body-copy buffers. A channel of slices,
// not a sync.Pool: ReverseProxy hands a buffer back as a slice, and
// putting a slice in a sync.Pool allocates a pointer to it every time.
type bufferPool struct{ free chan []byte }

func (bp *bufferPool) Get() []byte {
	select {
	case b := <-bp.free:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

func (bp *bufferPool) Put(b []byte) {
	select {
	case bp.free <- b:
	default: // enough kept; the collector takes this one
	}
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// parseAddr splits "unix:/path" and "host:port".
func parseAddr(addr string) (network, address string, err error) {
	a, err := sockaddr.ParseDial(addr)
	if err != nil {
		return "", "", fmt.Errorf("httpbackend: %w", err)
	}
	return a.Network, a.Address, nil
}

// Close closes the idle keep-alive connections to the instance. The
// Backend stays usable: later requests open new connections.
func (b *Backend) Close() error {
	b.proxied.CloseIdleConnections()
	return nil
}

// Check is an active health check: a GET of HealthPath (with Host set to
// the instance address), healthy when the status is 2xx or 3xx. Redirects
// are not followed. The context bounds the check; the transport's dial and
// response-header timeouts apply too.
func (b *Backend) Check(ctx context.Context) error {
	u := *b.target
	u.Path = b.healthPath
	if p, q, ok := strings.Cut(b.healthPath, "?"); ok {
		u.Path, u.RawQuery = p, q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("httpbackend: %s: health check: %w", b.addr, err)
	}
	req.Header.Set("User-Agent", "junction-health-check")
	resp, err := b.transport.RoundTrip(req)
	if err != nil {
		return b.classify(ctx, fmt.Errorf("health check: %w", err))
	}
	// Drain a little so the connection can be reused; a huge body is not
	// worth reading.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, healthBodyLimit)) // a read error changes nothing: the status decides
	_ = resp.Body.Close()                                                  // nothing was written; closing cannot lose data
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("httpbackend: %s: health check %s: status %d", b.addr, b.healthPath, resp.StatusCode)
	}
	return nil
}
