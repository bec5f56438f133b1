// Package scgi serves HTTP handlers over SCGI, the protocol nginx
// (scgi_pass), Apache (mod_proxy_scgi) and lighttpd (mod_scgi) speak to
// application servers.
//
// Spec: https://python.ca/scgi/protocol.txt. A request is a netstring of
// NUL-separated variables (CONTENT_LENGTH first, SCGI=1 required) followed by
// exactly CONTENT_LENGTH body bytes; the response is CGI-style and always
// starts with a Status line; one request per connection.
//
// Limits: the variable block is bounded by MaxHeaderBytes before anything is
// allocated; IdleTimeout bounds the wait for the first byte; ReadTimeout
// bounds the whole head from that byte (one deadline: a peer trickling it
// is cut off when a silent one would be) and each body read; WriteTimeout
// bounds each write to the front server (0: 60s, -1: none). Malformed
// input closes the connection with one log line; variables that frame
// well but break vars.Validate (a method that is not a token, CR or LF in
// a value) are answered 400 before any handler runs. The request body is
// streamed to the handler, never buffered whole, and a body that ends
// short fails the read instead of being served. The response head is
// cgihead's; a WriteHeader code outside 100–999 is sent as 500 and logged;
// bytes beyond a declared Content-Length are cut (http.ErrContentLength)
// and logged.
//
// The ResponseWriter supports http.ResponseController's SetWriteDeadline
// (a backend aborting a response: a write blocked on a front server that
// reads nothing fails when it passes, and the connection closes) and
// SetReadDeadline (a body read blocked on the front server fails when it
// passes). A handler that returns before reading its whole body has the
// rest read and discarded for a short while (connserver.Linger) after the
// response went out, so that a front server still sending it is not reset
// and does not lose the response.
package scgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
	"github.com/junction-gw/junction/vars"
)

// DefaultMaxHeaderBytes is the variable-block limit when MaxHeaderBytes is 0.
// nginx's default large header buffers (4 × 8 KiB) fit well inside it.
const DefaultMaxHeaderBytes = 64 << 10

// Defaults for zero timeouts: generous for a front server on the same host,
// short enough that a stuck peer does not pin a goroutine for long.
const (
	DefaultReadTimeout = 30 * time.Second
	DefaultIdleTimeout = 60 * time.Second
)

// Server serves SCGI connections. Its method set matches *http.Server.
type Server struct {
	// Handler serves each request.
	Handler http.Handler
	// MaxHeaderBytes bounds the netstring variable block.
	MaxHeaderBytes int
	// ReadTimeout bounds reading the whole request head, from its first
	// byte, and each body read; 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for the request to start after accept.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write of the response; 0 means
	// connserver.DefaultWriteTimeout (60s), a negative value none.
	WriteTimeout time.Duration
	// Logger receives connection errors; nil means slog.Default().
	Logger *slog.Logger
	// Observer, if set, counts connections and the reasons connections
	// were closed for bad input (see Reason).
	Observer Observer

	once sync.Once
	cs   connserver.Server
}

func (s *Server) init() {
	s.once.Do(func() {
		s.cs.Protocol = "scgi"
		s.cs.Logger = s.Logger
		s.cs.Handler = s.serveConn
		s.cs.Observer = s.Observer
		s.cs.Reason = Reason
	})
}

// ErrServerClosed is returned by Serve after Shutdown or Close, as
// http.ErrServerClosed is by *http.Server.
var ErrServerClosed = connserver.ErrServerClosed

// Serve accepts connections on l until Shutdown or Close; it then returns
// ErrServerClosed.
func (s *Server) Serve(l net.Listener) error { s.init(); return s.cs.Serve(l) }

// ServeConn serves the one request on c (inetd mode) and closes c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.init()
	return s.cs.ServeConn(ctx, c)
}

// Shutdown stops accepting and waits for requests in flight, or ctx.
func (s *Server) Shutdown(ctx context.Context) error { s.init(); return s.cs.Shutdown(ctx) }

// Close stops at once, cancelling requests in flight.
func (s *Server) Close() error { s.init(); return s.cs.Close() }

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// serveConn reads one request from c, runs the handler and finishes the reply.
func (s *Server) serveConn(ctx context.Context, c *connserver.Conn) error {
	readTimeout := orDefault(s.ReadTimeout, DefaultReadTimeout)
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() { br.Reset(nil); readerPool.Put(br) }()

	// Wait for the first byte under the idle timeout, the rest of the
	// head under the read timeout from that byte.
	if err := c.SetReadDeadline(time.Now().Add(orDefault(s.IdleTimeout, DefaultIdleTimeout))); err != nil {
		return err
	}
	// Until its first byte the connection counts as new: Shutdown closes it
	// only after connserver.NewConnGrace, since nginx sends its request
	// right after connecting.
	if _, err := br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) || c.ShuttingDown() {
			return nil
		}
		return err
	}
	if err := c.BeginHead(readTimeout); err != nil {
		return err
	}
	v, length, err := readHead(br, orDefault(s.MaxHeaderBytes, DefaultMaxHeaderBytes))
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Most requests are answered within watchDelay: they never pay for the
	// watcher's goroutine and read syscall. Slower ones get it then, so a
	// front server closing still cancels a long request. onDone may run
	// on a goroutine the handler left reading the body, even after the
	// request ended: watchMu orders it with the end.
	var (
		watchMu sync.Mutex
		watch   *time.Timer
		ended   bool
	)
	body := newBody(br, c, length, readTimeout, func() {
		watchMu.Lock()
		defer watchMu.Unlock()
		if !ended {
			watch = time.AfterFunc(watchDelay, func() { watchClose(c, cancel) })
		}
	})
	defer func() {
		watchMu.Lock()
		ended = true
		if watch != nil {
			watch.Stop()
		}
		watchMu.Unlock()
	}()
	w := newResponse(c, connserver.WriteTimeout(s.WriteTimeout), s.logger())
	req, err := vars.Request(ctx, v, body)
	if err != nil {
		if w.fail(http.StatusBadRequest) == nil && length > 0 {
			c.Linger(body.rest())
		}
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if length == 0 {
		body.finish()
	}
	s.Handler.ServeHTTP(w, req)
	if err := w.finish(); err != nil {
		return err
	}
	if !body.complete() {
		// The handler left part of the body unread, and perhaps something
		// it started still waits to read it: neither may keep the
		// connection, nor make its close reset the response away.
		c.Linger(body.rest())
	}
	return body.err()
}

// watchDelay is how long a request runs before watchClose starts: the
// longest a front server's close goes unnoticed.
const watchDelay = 10 * time.Millisecond

// watchClose cancels the request when the front server closes the
// connection after sending the whole request (nginx does so when its client
// aborts). It returns when the connection is closed at the end. A timeout
// is not the front server: a handler set a read deadline.
func watchClose(c net.Conn, cancel context.CancelFunc) {
	var buf [64]byte
	c.SetReadDeadline(time.Time{}) // no deadline: this read lasts the request
	for {
		if _, err := c.Read(buf[:]); err != nil {
			if isTimeout(err) && c.SetReadDeadline(time.Time{}) == nil {
				continue
			}
			cancel()
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// body streams exactly CONTENT_LENGTH bytes, each read under the read
// timeout (or the handler's read deadline). A body that ends early is an
// error, never a short EOF.
type body struct {
	r       *bufio.Reader
	c       *connserver.Conn
	timeout time.Duration
	onDone  func()

	// turn is held by whoever reads r, across the read of the connection;
	// a channel, not a mutex, so that nothing else waits on a read that
	// may block (the end of the request reads err without it, and
	// lingering waits for it only as long as its deadline lets the read
	// last).
	turn     chan struct{}
	left     int64 // guarded by turn
	finished atomic.Bool

	mu      sync.Mutex // guards readErr; never held across I/O
	readErr error
}

func newBody(r *bufio.Reader, c *connserver.Conn, length int64, timeout time.Duration, onDone func()) *body {
	return &body{r: r, c: c, left: length, timeout: timeout, onDone: onDone, turn: make(chan struct{}, 1)}
}

func (b *body) lock()   { b.turn <- struct{}{} }
func (b *body) unlock() { <-b.turn }

func (b *body) Read(p []byte) (int, error) {
	b.lock()
	defer b.unlock()
	if err := b.err(); err != nil {
		return 0, err
	}
	if b.left == 0 {
		b.finishLocked()
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	reads := b.c.Reads()
	if reads.Passed() {
		return 0, fmt.Errorf("scgi: reading the request body: %w", os.ErrDeadlineExceeded)
	}
	if err := reads.Arm(b.timeout); err != nil {
		b.setErr(err)
		return 0, err
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = ErrShortBody
		}
		if isTimeout(err) && reads.Passed() {
			// The handler's own deadline (or lingering's): not the front
			// server's failure, and a later read may go on.
			return n, err
		}
		b.setErr(err)
		return n, err
	}
	if b.left == 0 {
		b.finishLocked()
		return n, io.EOF
	}
	return n, nil
}

func (b *body) setErr(err error) {
	b.mu.Lock()
	if b.readErr == nil {
		b.readErr = err
	}
	b.mu.Unlock()
}

func (b *body) finish() {
	b.lock()
	defer b.unlock()
	b.finishLocked()
}

// finishLocked starts watching for the peer closing once the whole body is
// in: only then is the connection free to read.
func (b *body) finishLocked() {
	if !b.finished.Load() {
		b.finished.Store(true)
		b.onDone()
	}
}

// complete reports whether the whole body was read.
func (b *body) complete() bool { return b.finished.Load() }

// Close marks the body consumed for the handler; what is left is
// discarded when the request ends (connserver.Conn.Linger).
func (b *body) Close() error { return nil }

// err reports a body failure (short body, timeout) seen by the handler, so
// the connection's log line says why the request failed. It never waits
// for a read in progress.
func (b *body) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readErr
}

// rest returns a reader of what is left of the body, for lingering after
// the response: reads fail once the body ended or failed.
func (b *body) rest() io.Reader { return restReader{b} }

type restReader struct{ b *body }

func (r restReader) Read(p []byte) (int, error) {
	b := r.b
	b.lock()
	defer b.unlock()
	if b.left == 0 || b.err() != nil {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
