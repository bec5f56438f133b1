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
// allocated; ReadTimeout bounds reading the head and each body read;
// IdleTimeout bounds the wait for the first byte; WriteTimeout bounds each
// write to the front server. Malformed input closes the connection with one
// log line; variables that frame well but break vars.Validate (a method
// that is not a token, CR or LF in a value) are answered 400 before any
// handler runs. The request body is streamed to the handler, never
// buffered whole, and a body that ends short fails the read instead of
// being served. The response head is cgihead's; a WriteHeader code outside
// 100–999 is sent as 500 and logged.
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
	"sync"
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
	// ReadTimeout bounds reading the request head and each body read.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for the request to start after accept.
	IdleTimeout time.Duration
	// WriteTimeout, if positive, bounds each write of the response.
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

// Serve accepts connections on l until Shutdown or Close.
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

	// Wait for the first byte under the idle timeout, the rest under the
	// read timeout.
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
	c.SetIdle(false)
	if err := c.SetReadDeadline(time.Now().Add(readTimeout)); err != nil {
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
	// front server closing still cancels a long request.
	// watch is set under body.mu (onDone runs there, perhaps on another
	// goroutine reading the body).
	var watch *time.Timer
	body := &body{r: br, c: c, left: length, timeout: readTimeout, onDone: func() {
		watch = time.AfterFunc(watchDelay, func() { watchClose(c, cancel) })
	}}
	defer func() {
		body.mu.Lock()
		if watch != nil {
			watch.Stop()
		}
		body.mu.Unlock()
	}()
	w := newResponse(c, s.WriteTimeout, s.logger())
	req, err := vars.Request(ctx, v, body)
	if err != nil {
		w.fail(http.StatusBadRequest)
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if length == 0 {
		body.finish()
	}
	s.Handler.ServeHTTP(w, req)
	if err := w.finish(); err != nil {
		return err
	}
	return body.err()
}

// watchDelay is how long a request runs before watchClose starts: the
// longest a front server's close goes unnoticed.
const watchDelay = 10 * time.Millisecond

// watchClose cancels the request when the front server closes the
// connection after sending the whole request (nginx does so when its client
// aborts). It returns when the connection is closed at the end.
func watchClose(c net.Conn, cancel context.CancelFunc) {
	var buf [64]byte
	c.SetReadDeadline(time.Time{}) // no deadline: this read lasts the request
	for {
		if _, err := c.Read(buf[:]); err != nil {
			cancel()
			return
		}
	}
}

// body streams exactly CONTENT_LENGTH bytes, each read under the read
// timeout. A body that ends early is an error, never a short EOF.
type body struct {
	r       *bufio.Reader
	c       net.Conn
	left    int64
	timeout time.Duration
	onDone  func()

	mu       sync.Mutex
	readErr  error
	finished bool
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.readErr != nil {
		return 0, b.readErr
	}
	if b.left == 0 {
		b.finishLocked()
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	if err := b.c.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
		b.readErr = err
		return 0, err
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = ErrShortBody
		}
		b.readErr = err
		return n, err
	}
	if b.left == 0 {
		b.finishLocked()
		return n, io.EOF
	}
	return n, nil
}

func (b *body) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

// finishLocked starts watching for the peer closing once the whole body is
// in: only then is the connection free to read.
func (b *body) finishLocked() {
	if !b.finished {
		b.finished = true
		b.onDone()
	}
}

// Close marks the body consumed for the handler; the connection closes
// after the response anyway, so unread bytes need no draining.
func (b *body) Close() error { return nil }

// err reports a body failure (short body, timeout) seen by the handler, so
// the connection's log line says why the request failed.
func (b *body) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readErr
}
