package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yookoala/gofast"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/backends/internal/cgiresp"
	"github.com/junction-gw/junction/internal/fcgiwire"
)

// bodyBufSize is the stdout buffer: one read from it is at most one
// record's content, written and flushed at once.
const bodyBufSize = 32 << 10

var stdoutPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bodyBufSize) }}

var errShortBody = errors.New("fastcgi: request body ended early")

// errStale marks a kept connection that ended before a record of the
// response came: the instance closed it while it sat idle.
var errStale = errors.New("fastcgi: kept connection closed before the response")

// exchange sends the request on conn and relays the response. conn is
// closed, or kept for the next request when the exchange ended cleanly
// and keep-alive is on; reused says it was kept from an earlier one.
func (b *Backend) exchange(w http.ResponseWriter, r *http.Request, conn net.Conn, s cgienv.Script, reused bool) error {
	ctx := r.Context()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.Close() // wakes the reads below; their error is reported instead
	})
	defer stop()

	in := &stdin{conn: conn, left: max(r.ContentLength, 0), body: r.Body}
	var writerDone chan struct{}
	var wo *writeOnly // gofast's connection, for a request with a body
	werrText := new(bytes.Buffer)
	if r.ContentLength == 0 {
		writerDone = closedChan
		if err := b.sendHead(r, conn, s); err != nil {
			_ = conn.Close() // nothing was sent that could be kept
			switch {
			case ctx.Err() != nil:
				return fmt.Errorf("fastcgi: %s: %s: %w", b.addr, s.Name, context.Cause(ctx))
			case reused:
				err = fmt.Errorf("%w: %w", errStale, err)
			}
			return &backends.Error{Status: http.StatusBadGateway, Err: err}
		}
	} else {
		writerDone, werrText, wo = b.send(r, conn, s, in)
	}
	finish := func() {
		_ = conn.Close() // ends gofast's writes; nothing buffered is worth keeping
		select {
		case <-writerDone:
		default:
			// gofast's writer is blocked reading the client's body for a
			// response that is over: interrupt the read where the codec
			// supports it, else wait for the codec's own read deadline.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // ErrNotSupported: see above
			<-writerDone
		}
		if t := werrText.String(); t != "" {
			b.log.Debug("fastcgi: request writer", "script", s.Name, "err", strings.TrimSpace(t))
		}
	}

	rr := newResponseReader(conn, b.timeout, func(p []byte) { b.logStderr(s.Name, p) })
	defer rr.release()
	br := stdoutPool.Get().(*bufio.Reader)
	br.Reset(rr)
	defer func() {
		br.Reset(nil)
		stdoutPool.Put(br)
	}()

	resp, err := cgiresp.Parse(br, b.limits)
	if err == nil && resp.LocalRedirect != "" {
		finish()
		return &backends.LocalRedirect{Location: resp.LocalRedirect}
	}
	if err != nil {
		finish()
		return b.headError(ctx, s, rr, in, reused, err)
	}
	resp.WriteHead(w)
	// Every STDOUT record is flushed, so streaming scripts stream.
	werr, rerr := resp.CopyBody(w, br, nil)
	if werr == nil && rerr == nil && b.reusable(rr, writerDone, werrText, wo, in) && stop() {
		b.keep(conn)
	} else {
		finish()
	}
	switch {
	case ctx.Err() != nil:
		b.log.Info("fastcgi: client went away", "script", s.Name, "err", context.Cause(ctx))
	case werr != nil:
		b.log.Info("fastcgi: writing to the client", "script", s.Name, "err", werr)
	case rerr != nil:
		b.log.Warn("fastcgi: response ended early", "script", s.Name, "err", rerr)
	case rr.protoStatus != statusRequestComplete:
		b.log.Warn("fastcgi: END_REQUEST after a response", "script", s.Name, "protocol_status", rr.protoStatus)
	}
	return nil
}

// reusable reports whether a connection whose response was read to its
// END_REQUEST can carry another request: keep-alive is on, the request
// completed, nothing follows END_REQUEST, and the request was written
// whole. gofast's writer may still be winding down; once it has ended
// STDIN with no write failed before (writeOnly.stdinEnded), it does not
// touch the connection again.
func (b *Backend) reusable(rr *responseReader, writerDone chan struct{}, werrText *bytes.Buffer, wo *writeOnly, in *stdin) bool {
	if b.idle == nil || !rr.ended || rr.protoStatus != statusRequestComplete || rr.br.Buffered() > 0 {
		return false
	}
	select {
	case <-writerDone:
		return werrText.Len() == 0 && in.err == nil
	default:
	}
	// Not done. Still in the body: an instance that answered before
	// reading the whole body leaves the writer blocked, and the connection
	// unusable.
	if wo == nil || !wo.ending.Load() {
		return false
	}
	// Writing the end of STDIN, or just past it: the instance may answer
	// as soon as those bytes reach it, before the write returns. A write
	// still waiting for room fails at once; then the writer is done with
	// the connection.
	_ = wo.Conn.SetWriteDeadline(aLongTimeAgo)
	<-writerDone
	return werrText.Len() == 0 && in.err == nil && wo.stdinEnded.Load()
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// send starts gofast's client on conn. gofast writes BEGIN_REQUEST, PARAMS
// and STDIN; its own response reading sees end of input at once (see
// writeOnly), so junction's reader gets every response record. writerDone
// closes when gofast has finished writing (or given up); the text buffer
// then holds gofast's write errors.
func (b *Backend) send(r *http.Request, conn net.Conn, s cgienv.Script, in *stdin) (writerDone chan struct{}, text *bytes.Buffer, wo *writeOnly) {
	text = new(bytes.Buffer)
	writerDone = make(chan struct{})
	wo = &writeOnly{Conn: conn, timeout: b.timeout}
	in.out = wo
	client, err := gofast.SimpleClientFactory(func() (net.Conn, error) { return wo, nil })()
	if err != nil {
		// Our factory cannot fail; keep the contract anyway.
		text.WriteString(err.Error())
		close(writerDone)
		return writerDone, text, wo
	}
	req := gofast.NewRequest(nil)
	// gofast v0.8.0 sets FCGI_KEEP_CONN on every request whatever
	// req.KeepConn says; without keep-alive junction closes the
	// connection after the response, which ends it all the same.
	req.Params = b.params(r, s)
	if r.ContentLength > 0 {
		req.Stdin = in
	}
	pipe, err := client.Do(req)
	if err != nil {
		text.WriteString(err.Error())
		close(writerDone)
		return writerDone, text, wo
	}
	go func() {
		defer close(writerDone)
		// WriteTo returns once gofast's writer and reader are both done;
		// its stdout side sees no records and complains, which is
		// expected. Its stderr side carries the writer's errors as text.
		_ = pipe.WriteTo(discard{}, text) // always "no headers": gofast never sees a record
	}()
	return writerDone, text, wo
}

// closedChan is the writerDone of a request sent by sendHead.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// headPool holds sendHead's buffers.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// sendHead sends a request without a body in one write: BEGIN_REQUEST,
// PARAMS, the empty PARAMS and the empty STDIN that end both streams.
// Requests with a body go through gofast (send), which streams it.
func (b *Backend) sendHead(r *http.Request, conn net.Conn, s cgienv.Script) error {
	bp := headPool.Get().(*[]byte)
	defer headPool.Put(bp)
	pairs := (*bp)[:0]
	for k, v := range b.params(r, s) {
		pairs = fcgiwire.AppendPair(pairs, k, v)
	}
	out := make([]byte, 0, len(pairs)+64+len(pairs)/maxContent*headerLen)
	begin := [8]byte{byte(fcgiwire.RoleResponder >> 8), byte(fcgiwire.RoleResponder)}
	if b.idle != nil {
		begin[2] = fcgiwire.FlagKeepConn
	}
	out = fcgiwire.AppendRecord(out, fcgiwire.TypeBeginRequest, requestID, begin[:], 0)
	for p := pairs; len(p) > 0; {
		n := min(len(p), maxContent)
		out = fcgiwire.AppendRecord(out, fcgiwire.TypeParams, requestID, p[:n], fcgiwire.PadFor(n))
		p = p[n:]
	}
	out = fcgiwire.AppendRecord(out, fcgiwire.TypeParams, requestID, nil, 0)
	out = fcgiwire.AppendRecord(out, fcgiwire.TypeStdin, requestID, nil, 0)
	*bp = pairs[:0]
	if err := conn.SetWriteDeadline(time.Now().Add(b.timeout)); err != nil {
		return fmt.Errorf("fastcgi: setting write deadline: %w", err)
	}
	if _, err := conn.Write(out); err != nil {
		return fmt.Errorf("fastcgi: %s: sending the request: %w", b.addr, err)
	}
	return nil
}

// headError turns a failure before the response head into Serve's error.
func (b *Backend) headError(ctx context.Context, s cgienv.Script, rr *responseReader, in *stdin, reused bool, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("fastcgi: %s: %s: %w", b.addr, s.Name, context.Cause(ctx))
	case in.err != nil:
		return &backends.Error{Status: http.StatusBadRequest, Err: in.err}
	case reused && !rr.got && !errors.Is(err, os.ErrDeadlineExceeded):
		return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("fastcgi: %s: %s: %w: %w", b.addr, s.Name, errStale, err)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("fastcgi: %s: %s: no response within %v: %w", b.addr, s.Name, b.timeout, err)}
	case rr.ended && (rr.protoStatus == statusOverloaded || rr.protoStatus == statusCantMpxConn):
		if !in.started.Load() {
			return fmt.Errorf("fastcgi: %s: END_REQUEST protocol status %d: %w", b.addr, rr.protoStatus, backends.ErrOverloaded)
		}
		// The body is gone: the same request cannot be sent elsewhere.
		return backends.Errorf(http.StatusServiceUnavailable, "fastcgi: %s: instance overloaded (protocol status %d)", b.addr, rr.protoStatus)
	case rr.ended && rr.protoStatus == statusUnknownRole:
		return backends.Errorf(http.StatusBadGateway, "fastcgi: %s: instance does not serve the RESPONDER role", b.addr)
	}
	b.log.Warn("fastcgi: no valid response head", "script", s.Name, "err", err)
	return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("fastcgi: %s: %s: %w", b.addr, s.Name, err)}
}

// maxStderrLog bounds one logged STDERR record.
const maxStderrLog = 4 << 10

func (b *Backend) logStderr(script string, p []byte) {
	msg := strings.TrimRight(string(p[:min(len(p), maxStderrLog)]), "\r\n")
	if msg != "" {
		b.log.Warn("fastcgi: stderr", "script", script, "msg", msg)
	}
}

// stdin gives gofast exactly ContentLength bytes of the request body. A
// body that ends short closes the connection first, so gofast cannot end
// the STDIN stream and the script never sees a truncated body as whole.
type stdin struct {
	conn    net.Conn
	out     *writeOnly // flushed before the body is read
	body    io.Reader
	left    int64
	started atomic.Bool // a body byte was read (the request cannot be resent)
	err     error       // set on a short or failed body; read after the writer is done
}

func (s *stdin) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	s.started.Store(true)
	if s.out != nil {
		// The instance gets the head now, while the client's body comes.
		if err := s.out.flush(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.body.Read(p)
	s.left -= int64(n)
	if s.left == 0 {
		return n, io.EOF
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		_ = s.conn.Close() // before gofast sees the error and ends STDIN
		s.err = fmt.Errorf("%w: %w", errShortBody, err)
		return n, s.err
	}
	return n, nil
}

// Close does nothing: the body belongs to the front end's codec.
func (s *stdin) Close() error { return nil }

// writeOnly is the connection as gofast sees it: writes go to the
// instance with a deadline; reads see end of input at once, because
// junction reads the response itself.
//
// gofast writes every record with its own Write. BEGIN_REQUEST and PARAMS
// records are held back and go out with the next record (the first body
// record), or when the body is about to be read: the head of a request
// costs one write instead of three.
type writeOnly struct {
	net.Conn
	timeout time.Duration
	held    []byte
	// ending is set when the empty STDIN record that ends the request is
	// about to be written (its write deadline set) after every earlier
	// write succeeded; stdinEnded once it was written.
	ending atomic.Bool
	// stdinEnded is set once the empty STDIN record that ends the request
	// was written after every earlier write succeeded. gofast ends the
	// stream on its error path too (then writes ABORT_REQUEST): after a
	// failed write the stream may hold a partial record and gofast is not
	// done with the connection.
	stdinEnded atomic.Bool
	failed     bool // a write failed: later ones are refused (only gofast's writer uses it)
}

// maxHeld bounds the records held back.
const maxHeld = 64 << 10

func (c *writeOnly) Read([]byte) (int, error) { return 0, io.EOF }

func (c *writeOnly) Write(p []byte) (int, error) {
	if len(p) >= 2 && (fcgiwire.Type(p[1]) == fcgiwire.TypeBeginRequest || fcgiwire.Type(p[1]) == fcgiwire.TypeParams) && len(c.held)+len(p) <= maxHeld {
		if c.held == nil {
			c.held = make([]byte, 0, 4<<10)
		}
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if len(c.held) > 0 {
		c.held = append(c.held, p...)
		if err := c.flush(); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	end := len(p) == headerLen && fcgiwire.Type(p[1]) == fcgiwire.TypeStdin && p[4] == 0 && p[5] == 0
	n, err := c.write(p, end)
	if err == nil && end {
		c.stdinEnded.Store(true)
	}
	return n, err
}

// flush sends the held records.
func (c *writeOnly) flush() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.write(c.held, false)
	c.held = c.held[:0]
	return err
}

// errWriteFailed refuses a write after a failed one: the stream may end
// inside a record, so nothing written after it (gofast's end of STDIN and
// ABORT_REQUEST) would be read as meant.
var errWriteFailed = errors.New("fastcgi: an earlier write to the instance failed")

// write writes p with a fresh deadline; end marks the end of STDIN.
func (c *writeOnly) write(p []byte, end bool) (int, error) {
	if c.failed {
		return 0, errWriteFailed
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		c.failed = true
		return 0, fmt.Errorf("fastcgi: setting write deadline: %w", err)
	}
	if end {
		// After the deadline: reusable's deadline in the past is not
		// undone.
		c.ending.Store(true)
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.failed = true
	}
	return n, err
}

// Close is junction's to do, once the response is read.
func (c *writeOnly) Close() error { return nil }

// discard is the http.ResponseWriter handed to gofast's response parser,
// which never gets a byte.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
