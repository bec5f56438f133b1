package httpbackend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/idle"
	"github.com/junction-gw/junction/internal/rawconn"
)

// inlineTransport runs a request without a body on the calling goroutine:
// it writes the request, reads the response head and hands back a body
// that reads the connection directly, which puts the connection back in
// the idle pool at its end. http.Transport spends a reader and a writer
// goroutine per connection and passes every request and response between
// them and the caller; on a proxy that forwards small GETs, those
// hand-offs (each a goroutine wake-up, often a thread wake-up) cost about
// as much as the proxying itself.
//
// Requests with a body, upgrades and anything not plain http go to
// fallback (an http.Transport with the same dialer and limits), which
// reads the response while the body is still being written.
type inlineTransport struct {
	dial          func(ctx context.Context) (net.Conn, error)
	fallback      *http.Transport
	headerTimeout time.Duration
	// maxHeaderBytes bounds a response head (net/http's default: 1 MiB).
	maxHeaderBytes int64
	// idle holds the kept connections.
	idle *idle.Pool[*persistConn]
}

// persistConn is one keep-alive connection owned by inlineTransport.
type persistConn struct {
	conn net.Conn
	lr   io.LimitedReader // conn, with the head's byte budget while a head is read
	br   *bufio.Reader    // reads lr
	bw   *bufio.Writer
}

// Close closes the connection.
func (pc *persistConn) Close() error { return pc.conn.Close() }

// fit reports whether a kept connection can carry a request: it has
// nothing to read, no end of stream and no bytes the instance sent unasked
// (a 408 before it closes). http.Transport learns the same from the read
// its per-connection goroutine keeps pending.
func (pc *persistConn) fit() bool { return rawconn.Quiet(pc.conn) }

// noLimit is the LimitedReader budget while a body is read.
const noLimit = 1<<63 - 1

// aLongTimeAgo is a deadline that fails pending and later I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

func (t *inlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !inlineable(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	for retried := false; ; retried = true {
		pc, reused, err := t.get(ctx, !retried)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		pc.conn.Close()
		// A kept connection the instance closed while it was idle: the
		// request never reached the application, so an idempotent one is
		// sent again on a new connection (http.Transport does the same).
		if reused && !retried && ctx.Err() == nil && closedIdle(err) && backends.Idempotent(req.Method) {
			continue
		}
		return nil, err
	}
}

// inlineable reports whether req has no body and nothing that needs the
// full http.Transport.
func inlineable(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.ContentLength != 0 || (req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	return true
}

// errClosedIdle marks a kept connection that ended before any byte of the
// response arrived.
var errClosedIdle = errors.New("httpbackend: connection ended before the response")

func closedIdle(err error) bool {
	return errors.Is(err, errClosedIdle)
}

// get returns an idle connection (reused) or, when there is none or
// pooled is false, dials a new one. A pooled connection the instance
// closed, or wrote to, while it sat idle is dropped.
func (t *inlineTransport) get(ctx context.Context, pooled bool) (pc *persistConn, reused bool, err error) {
	if pooled {
		if pc, ok := t.idle.Get(); ok {
			return pc, true, nil
		}
	}
	c, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	// Reads and writes on a kept connection are raw system calls
	// (package rawconn says why).
	pc = &persistConn{conn: rawconn.Wrap(c)}
	pc.lr.R = pc.conn
	pc.br = bufio.NewReaderSize(&pc.lr, 4096)
	pc.bw = bufio.NewWriterSize(pc.conn, 4096)
	return pc, false, nil
}

// CloseIdleConnections closes every idle connection of both transports.
func (t *inlineTransport) CloseIdleConnections() {
	t.idle.CloseIdle()
	t.fallback.CloseIdleConnections()
}

// exchange writes req on pc and reads the response head. On success the
// response body owns pc.
func (t *inlineTransport) exchange(ctx context.Context, pc *persistConn, req *http.Request) (*http.Response, error) {
	// The caller going away interrupts whatever is in progress; the
	// connection is then closed rather than reused. cancelled keeps
	// exchange's own deadline changes from undoing the interruption.
	var cancelled atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		cancelled.Store(true)
		_ = pc.conn.SetDeadline(aLongTimeAgo)
	})
	setReadDeadline := func(d time.Time) {
		_ = pc.conn.SetReadDeadline(d) // a closed conn fails the next read
		if cancelled.Load() {
			_ = pc.conn.SetDeadline(aLongTimeAgo)
		}
	}
	fail := func(err error) (*http.Response, error) {
		if !stop() {
			// The context fired: report that, not the deadline it caused.
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	if err := req.Write(pc.bw); err != nil {
		return fail(closedBeforeResponse(err))
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(closedBeforeResponse(err))
	}
	if t.headerTimeout > 0 {
		setReadDeadline(time.Now().Add(t.headerTimeout))
	}
	pc.lr.N = t.maxHeaderBytes
	// Nothing at all before the end of the stream: the instance closed the
	// connection without seeing the request (http.ReadResponse would call
	// that an unexpected EOF, like a head cut short).
	if _, err := pc.br.Peek(1); err != nil {
		return fail(closedBeforeResponse(err))
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.lr.N <= 0 {
				err = fmt.Errorf("httpbackend: response head larger than %d bytes", t.maxHeaderBytes)
			}
			return fail(err)
		}
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("httpbackend: 101 Switching Protocols without an upgrade request"))
		}
		// 1xx (103 Early Hints, a stray 100): ReverseProxy forwards them
		// through the trace hook, as with http.Transport.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	setReadDeadline(time.Time{})
	pc.lr.N = noLimit
	resp.Body = &inlineBody{rc: resp.Body, pc: pc, t: t, ctx: ctx, stop: stop, keep: !resp.Close && !req.Close}
	return resp, nil
}

// closedBeforeResponse marks an end of stream or a reset met before any
// byte of the response: on a kept connection, the instance had closed it.
func closedBeforeResponse(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", errClosedIdle, err)
	}
	return err
}

// inlineBody is a response body read straight off its connection.
type inlineBody struct {
	rc   io.ReadCloser
	pc   *persistConn
	t    *inlineTransport
	ctx  context.Context
	stop func() bool
	keep bool // the response allows reuse
	done bool
	// flush, when set, sends what the caller wrote of earlier reads to
	// the client; called before a read that has to wait for the
	// connection, so a response that arrived whole goes out in one write.
	flush   func()
	pending bool // data was returned since the last flush
}

func (b *inlineBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.pending && b.flush != nil && b.pc.br.Buffered() == 0 {
		b.flush()
		b.pending = false
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.pending = true
	}
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
		if b.ctx.Err() != nil {
			// The deadline the cancellation set ended the read: say
			// why (ReverseProxy stays quiet about context.Canceled).
			err = b.ctx.Err()
		}
	}
	return n, err
}

func (b *inlineBody) Close() error {
	if b.done {
		return nil
	}
	// Not read to its end: the rest is unread on the connection, which
	// cannot be reused. Closing it first keeps rc.Close from draining.
	b.release(false)
	_ = b.rc.Close() // the connection is closed; nothing is lost
	return nil
}

// release ends the body's hold on the connection: back to the pool after
// a complete body on a reusable connection, closed otherwise.
func (b *inlineBody) release(complete bool) {
	b.done = true
	if b.stop() && complete && b.keep && b.pc.br.Buffered() == 0 {
		b.t.idle.Put(b.pc)
		return
	}
	b.pc.conn.Close()
}
