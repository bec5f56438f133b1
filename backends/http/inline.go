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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/junction-gw/junction/protocols/rawconn"
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
	idleTimeout   time.Duration
	maxIdle       int
	// maxHeaderBytes bounds a response head (net/http's default: 1 MiB).
	maxHeaderBytes int64

	mu      sync.Mutex
	idle    []*persistConn // most recently used last
	sweeper *time.Timer    // closes connections idle longer than idleTimeout
}

// persistConn is one keep-alive connection owned by inlineTransport.
type persistConn struct {
	conn   net.Conn
	lr     io.LimitedReader // conn, with the head's byte budget while a head is read
	br     *bufio.Reader    // reads lr
	bw     *bufio.Writer
	idleAt time.Time

	// The quiet check, set up once per connection: rc is nil when conn
	// has no descriptor to peek at.
	rc    syscall.RawConn
	peek  func(fd uintptr) bool
	clean bool // the last peek found nothing to read
}

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
		if reused && !retried && ctx.Err() == nil && closedIdle(err) && idempotent(req.Method) {
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

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
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
	now := time.Now()
	for pooled {
		t.mu.Lock()
		if len(t.idle) == 0 {
			t.mu.Unlock()
			break
		}
		pc = t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		t.mu.Unlock()
		if now.Sub(pc.idleAt) < t.idleTimeout && pc.quiet() {
			return pc, true, nil
		}
		pc.conn.Close()
	}
	c, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	// Reads and writes on a kept connection are raw system calls
	// (package rawconn says why).
	c = rawconn.Wrap(c)
	pc = &persistConn{conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if pc.rc, err = sc.SyscallConn(); err != nil {
			c.Close()
			return nil, false, err
		}
		pc.peek = pc.peekFD
	}
	pc.lr.R = c
	pc.br = bufio.NewReaderSize(&pc.lr, 4096)
	pc.bw = bufio.NewWriterSize(c, 4096)
	return pc, false, nil
}

// quiet reports whether an idle connection has nothing to read: no
// end of stream and no bytes the instance sent unasked (a 408 before it
// closes). One non-blocking MSG_PEEK; http.Transport learns the same from
// the read its per-connection goroutine keeps pending.
func (pc *persistConn) quiet() bool {
	if pc.rc == nil {
		return true
	}
	pc.clean = false
	err := pc.rc.Read(pc.peek)
	return err == nil && pc.clean
}

// peekFD is quiet's one MSG_PEEK, through RawConn.Read so the descriptor
// stays valid while it runs.
func (pc *persistConn) peekFD(fd uintptr) bool {
	var buf [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	pc.clean = errno == syscall.EAGAIN
	return true // never wait: this is a check
}

// put keeps pc for reuse, or closes it when the pool is full.
func (t *inlineTransport) put(pc *persistConn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle) >= t.maxIdle {
		pc.conn.Close()
		return
	}
	t.idle = append(t.idle, pc)
	if t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.idleTimeout, t.sweep)
	}
}

// sweep closes connections idle for idleTimeout and re-arms while any
// connection is left.
func (t *inlineTransport) sweep() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	keep := t.idle[:0]
	for _, pc := range t.idle { // oldest first
		if now.Sub(pc.idleAt) >= t.idleTimeout {
			pc.conn.Close()
			continue
		}
		keep = append(keep, pc)
	}
	clear(t.idle[len(keep):])
	t.idle = keep
	t.sweeper = nil
	if len(t.idle) > 0 {
		t.sweeper = time.AfterFunc(t.idle[0].idleAt.Add(t.idleTimeout).Sub(now), t.sweep)
	}
}

// CloseIdleConnections closes every idle connection of both transports.
func (t *inlineTransport) CloseIdleConnections() {
	t.mu.Lock()
	for _, pc := range t.idle {
		pc.conn.Close()
	}
	clear(t.idle)
	t.idle = t.idle[:0]
	if t.sweeper != nil {
		t.sweeper.Stop()
		t.sweeper = nil
	}
	t.mu.Unlock()
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
		b.t.put(b.pc)
		return
	}
	b.pc.conn.Close()
}
