package fastcgi

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/junction-gw/junction/protocols/internal/cgihead"
)

// errAborted is returned by writes after ABORT_REQUEST.
var errAborted = errors.New("fastcgi: request aborted by the web server")

// errRefused is returned by writes after the request's body could not be
// spooled (spool limit, SpoolBudget): the request is answered 503.
var errRefused = errors.New("fastcgi: request refused: its body could not be spooled")

// response is the http.ResponseWriter of one request. The head goes out
// CGI-style on STDOUT before the first body byte or flush.
type response struct {
	r           *request
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	headSent    bool
	bw          *bufio.Writer // nil once the handler returned
	pooled      *bufio.Writer // bw, kept until release
	tail        stdoutTail
	length      cgihead.Length
}

var stdoutPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

func newResponse(r *request, req *http.Request) *response {
	w := &response{r: r, req: req, header: make(http.Header)}
	w.bw = stdoutPool.Get().(*bufio.Writer)
	w.bw.Reset(stdoutWriter{w: r.cn.w, r: r, id: r.id, tail: &w.tail})
	w.pooled = w.bw
	return w
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader records the status; the head goes out with the first body
// byte or flush. A code outside 100–999 is answered 500
// (cgihead.InvalidStatus); 1xx codes are ignored: informational
// responses have no CGI form, the final one follows.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if !cgihead.ValidStatus(code) {
		code = cgihead.InvalidStatus(code, w.r.cn.log(), "request", w.r.id)
	}
	if code < 200 {
		return
	}
	w.wroteHeader = true
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.bw == nil {
		return 0, fmt.Errorf("fastcgi: write after the handler returned")
	}
	if w.r.aborted.Load() {
		return 0, errAborted
	}
	if w.r.refused.Load() {
		return 0, errRefused
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if _, ok := w.header["Content-Type"]; !ok && len(p) > 0 && w.header.Get("Content-Encoding") == "" {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.sendHead()
	}
	keep, first := w.length.Cut(p)
	if first {
		w.r.noReuse = true
		w.r.cn.log().Warn("handler wrote more than its Content-Length; the rest is cut and the connection closed after the request",
			"request", w.r.id, "declared", w.length.Declared())
	}
	n, err := w.bw.Write(keep)
	if err == nil && len(keep) < len(p) {
		err = http.ErrContentLength
	}
	return n, err
}

// sendHead writes the CGI-style head (cgihead.Write) to STDOUT.
func (w *response) sendHead() {
	w.headSent = true
	if dropped := cgihead.Write(w.bw, w.status, w.header); dropped != nil {
		w.r.cn.log().Warn("dropping response header fields with an invalid name or value", "request", w.r.id, "fields", dropped)
	}
	w.length.Declare(w.header)
}

// SetWriteDeadline sets the deadline of the response's writes (zero:
// none, WriteTimeout bounds each record). It is what
// http.ResponseController.SetWriteDeadline calls, and what a backend
// aborting a response uses. While the request is alone on its connection
// (always, behind nginx, Apache and lighttpd) the deadline replaces
// WriteTimeout and takes effect at once: a write blocked on a web server
// that reads nothing fails when it passes, and the connection closes
// without END_REQUEST, so the web server sees the response cut. While it
// shares a multiplexed connection, the deadline must not end the other
// requests: a record already being written is not cut, but once the
// deadline has passed the request's writes fail at once and it ends with
// END_REQUEST appStatus 1, without the rest of its STDOUT.
func (w *response) SetWriteDeadline(t time.Time) error {
	return w.r.cn.w.setDeadline(w.r, t)
}

// SetReadDeadline sets the deadline of the request body's reads (zero:
// none): a read waiting for STDIN fails when it passes. It is what
// http.ResponseController.SetReadDeadline calls.
func (w *response) SetReadDeadline(t time.Time) error {
	w.r.body.setDeadline(t)
	return nil
}

// Flush sends what is buffered now (http.Flusher).
func (w *response) Flush() {
	if err := w.FlushError(); err != nil {
		w.r.cn.log().Debug("flush", "request", w.r.id, "err", err)
	}
}

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if w.bw == nil {
		return fmt.Errorf("fastcgi: flush after the handler returned")
	}
	if w.r.aborted.Load() {
		return errAborted
	}
	if w.r.refused.Load() {
		return errRefused
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead()
	}
	return w.bw.Flush()
}

// finish sends the head if the handler wrote nothing and returns the
// unsent rest of the STDOUT stream, which END_REQUEST's write carries
// (nil: the stream is not to be ended). The response takes no more writes;
// release returns its buffer once the tail is sent.
func (w *response) finish() (*stdoutTail, error) {
	defer func() { w.bw = nil }()
	if w.r.aborted.Load() {
		return nil, errAborted
	}
	if w.r.refused.Load() && !w.headSent {
		w.refuse()
	}
	if w.r.cn.w.deadlinePassed(w.r) {
		return nil, errWriteDeadline // the rest is not sent: the response was aborted
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead()
	}
	w.tail.hold = true
	if err := w.bw.Flush(); err != nil {
		return nil, err
	}
	return &w.tail, nil
}

// refuse replaces a response not yet started with 503 Service Unavailable
// for a request whose body could not be spooled. The handler has
// returned: its header fields are dropped with its status.
func (w *response) refuse() {
	w.header = http.Header{
		"Content-Type":   {"text/plain; charset=utf-8"},
		"Retry-After":    {"1"},
		"Content-Length": {strconv.Itoa(len(refusedBody))},
	}
	w.status, w.wroteHeader = http.StatusServiceUnavailable, true
	w.sendHead()
	_, _ = w.bw.WriteString(refusedBody) // a failure shows in finish's Flush
}

const refusedBody = "503 Service Unavailable\n"

// release returns the response's buffer to the pool.
func (w *response) release() {
	w.tail = stdoutTail{}
	w.pooled.Reset(nil)
	stdoutPool.Put(w.pooled)
	w.pooled = nil
}
