package ajp13

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junction-gw/junction/protocols/internal/cgihead"
	"github.com/junction-gw/junction/vars"
)

// responseHeaders maps response header names to their SEND_HEADERS codes.
var responseHeaders = map[string]uint16{
	"Content-Type":     0xA001,
	"Content-Language": 0xA002,
	"Content-Length":   0xA003,
	"Date":             0xA004,
	"Last-Modified":    0xA005,
	"Location":         0xA006,
	"Set-Cookie":       0xA007,
	"Set-Cookie2":      0xA008,
	"Servlet-Engine":   0xA009,
	"Status":           0xA00A,
	"WWW-Authenticate": 0xA00B,
}

// response is the http.ResponseWriter of one AJP request. The status and
// headers go out in one SEND_HEADERS packet just before the first body
// chunk (or at Flush or the end), so a small body that fits in one chunk
// gets a Content-Length. Body bytes are buffered up to one chunk and sent
// as SEND_BODY_CHUNK packets; Flush pushes them to the web server at once.
type response struct {
	c      *conn
	req    *http.Request // nil for junction's own refusals
	cancel context.CancelFunc

	header      http.Header
	sent        http.Header // snapshot taken by WriteHeader
	status      int
	wroteHeader bool
	headersOut  bool
	noBody      bool           // HEAD, 204, 304
	length      cgihead.Length // the declared Content-Length and what went out of it
	buf         *bufio.Writer  // the connection's body buffer, until finish
	err         error

	// dlMu orders the handler's deadlines with finish: once the response
	// is finished its connection's deadlines belong to the next request.
	dlMu     sync.Mutex
	finished bool
}

// errFinished is what writes after the handler returned get: the body
// buffer belongs to the connection's next request by then.
var errFinished = errors.New("ajp13: write after the handler returned")

func newResponse(c *conn, r *http.Request, cancel context.CancelFunc) *response {
	w := &response{c: c, req: r, cancel: cancel, header: make(http.Header)}
	// Requests on a connection are sequential, so they share one body
	// buffer; Reset drops anything a failed response left in it.
	if c.body == nil {
		c.body = bufio.NewWriterSize(chunkWriter{w}, c.maxData())
	} else {
		c.body.Reset(chunkWriter{w})
	}
	w.buf = c.body
	return w
}

// Header returns the response headers.
func (w *response) Header() http.Header { return w.header }

// WriteHeader records the status and a snapshot of the headers. A code
// outside 100–999 is answered 500 (cgihead.InvalidStatus, the rule of
// every codec); 1xx statuses are ignored: AJP has no interim responses.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if !cgihead.ValidStatus(code) {
		code = cgihead.InvalidStatus(code, w.c.srv.logger(), "protocol", "ajp13", "remote", w.c.remote())
	}
	if code < 200 {
		return
	}
	w.wroteHeader = true
	w.status = code
	w.sent = w.header.Clone()
	if w.sent == nil {
		w.sent = http.Header{}
	}
	w.noBody = code == http.StatusNoContent || code == http.StatusNotModified ||
		(w.req != nil && w.req.Method == http.MethodHead)
	w.length.Declare(w.sent)
	if _, has := w.sent["Content-Length"]; has && w.length.Declared() < 0 {
		w.sent.Del("Content-Length") // malformed: not passed on
	}
}

// Write buffers p as response body.
func (w *response) Write(p []byte) (int, error) {
	if w.buf == nil {
		return 0, errFinished
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req != nil && w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if !w.headersOut && w.length.Written() == 0 && len(p) > 0 {
		if _, has := w.sent["Content-Type"]; !has {
			w.sent.Set("Content-Type", http.DetectContentType(p))
		}
	}
	keep, first := w.length.Cut(p)
	if first {
		w.c.srv.logger().Warn("ajp13: handler wrote more than its Content-Length; the rest is cut and the connection closed",
			"remote", w.c.remote(), "declared", w.length.Declared())
	}
	n, err := w.buf.Write(keep)
	if err != nil {
		w.setErr(err)
		return n, err
	}
	if len(keep) < len(p) {
		return n, http.ErrContentLength
	}
	return n, nil
}

// SetWriteDeadline sets the deadline of the response's writes, replacing
// WriteTimeout: it takes effect at once, also on a write blocked on a web
// server that reads nothing, and writes fail once it has passed (the
// connection then closes without END_RESPONSE, so the web server sees the
// response cut). A zero t gives WriteTimeout back. It is what
// http.ResponseController.SetWriteDeadline calls.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	if w.finished {
		return errFinished
	}
	return w.c.nc.Writes().Set(t)
}

// SetReadDeadline sets the deadline of the request body's reads, replacing
// ReadTimeout: it takes effect at once, also on a read waiting for a
// chunk. A read it ends fails the body, and the connection is not reused
// (END_RESPONSE reuse=0). It is what http.ResponseController.SetReadDeadline
// calls.
func (w *response) SetReadDeadline(t time.Time) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	if w.finished {
		return errFinished
	}
	return w.c.nc.Reads().Set(t)
}

// Flush sends the headers and the buffered body to the web server now.
func (w *response) Flush() {
	if w.buf == nil {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return
	}
	if err := w.buf.Flush(); err != nil {
		w.setErr(err)
		return
	}
	if err := w.sendHeaders(); err != nil {
		w.setErr(err)
		return
	}
	if err := w.c.flush(); err != nil {
		w.setErr(err)
	}
}

func (w *response) setErr(err error) {
	if w.err == nil {
		w.err = err
		w.cancel() // the web server is gone: stop the backend's work
	}
}

// finish completes the response after the handler returned: headers (with
// a Content-Length when the whole body is still buffered) and the rest of
// the body. END_RESPONSE is the caller's.
func (w *response) finish() {
	defer func() { w.buf = nil }()
	w.dlMu.Lock()
	w.finished = true
	w.dlMu.Unlock()
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return
	}
	if !w.headersOut && !w.noBody && w.length.Declared() < 0 {
		w.sent.Set("Content-Length", strconv.Itoa(w.buf.Buffered()))
	}
	if err := w.buf.Flush(); err != nil {
		w.setErr(err)
		return
	}
	if err := w.sendHeaders(); err != nil {
		w.setErr(err)
		return
	}
	if d := w.length.Declared(); d >= 0 && w.length.Written() < d && !w.noBody {
		w.c.srv.logger().Warn("ajp13: handler wrote less than its Content-Length",
			"remote", w.c.remote(), "declared", d, "written", w.length.Written())
	}
}

// sendHeaders writes SEND_HEADERS once. A header set too large for one
// packet is replaced by a bare 500 (and logged).
func (w *response) sendHeaders() error {
	if w.headersOut {
		return nil
	}
	w.headersOut = true
	ok, err := w.c.writePacket(false, func(e *encoder) { encodeHeaders(e, w.status, w.sent) })
	if err != nil || ok {
		return err
	}
	w.c.srv.logger().Error("ajp13: response headers do not fit in one packet; sending 500",
		"remote", w.c.remote(), "packet_size", len(w.c.in))
	_, err = w.c.writePacket(false, func(e *encoder) { encodeHeaders(e, http.StatusInternalServerError, nil) })
	return err
}

// encodeHeaders builds a SEND_HEADERS packet. Header values have CR and LF
// replaced by spaces, as net/http does.
func encodeHeaders(e *encoder, status int, h http.Header) {
	e.u8(byte(typeSendHeaders))
	e.u16(uint16(status))
	e.str(http.StatusText(status))
	names := make([]string, 0, len(h))
	n := 0
	for name, vs := range h {
		if vars.ValidToken(name) {
			names = append(names, name)
			n += len(vs)
		}
	}
	if n > 0xFFFF {
		e.ok = false
		return
	}
	slices.Sort(names)
	e.u16(uint16(n))
	for _, name := range names {
		for _, v := range h[name] {
			if code, ok := responseHeaders[name]; ok {
				e.u16(code)
			} else {
				e.str(name)
			}
			e.str(sanitizeValue(v))
		}
	}
}

var valueReplacer = strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ")

func sanitizeValue(v string) string {
	if vars.ValidValue(v) {
		return v
	}
	return valueReplacer.Replace(v)
}

// chunkWriter turns the response buffer's flushes into SEND_BODY_CHUNK
// packets, sending the headers first.
type chunkWriter struct{ w *response }

func (cw chunkWriter) Write(p []byte) (int, error) {
	if err := cw.w.sendHeaders(); err != nil {
		return 0, err
	}
	if err := cw.w.c.writeBody(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}
