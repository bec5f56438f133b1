package scgi

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/junction-gw/junction/protocols/internal/cgihead"
	"github.com/junction-gw/junction/protocols/internal/connserver"
)

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// response is the http.ResponseWriter for one SCGI request. The head is
// written CGI-style, always starting with a Status line (the SCGI spec
// requires it; nginx merely tolerates its absence).
type response struct {
	c            *connserver.Conn
	bw           *bufio.Writer
	header       http.Header
	writeTimeout time.Duration // per write; 0: none
	log          *slog.Logger
	status       int
	wroteHeader  bool
	length       cgihead.Length
	err          error // first write error; later writes fail fast
}

func newResponse(c *connserver.Conn, writeTimeout time.Duration, log *slog.Logger) *response {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(c)
	return &response{c: c, bw: bw, header: make(http.Header), writeTimeout: writeTimeout, log: log}
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader records code and writes the head. A code outside 100–999
// is answered 500 (cgihead.InvalidStatus); 1xx codes are ignored: SCGI
// has no interim responses.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if !cgihead.ValidStatus(code) {
		code = cgihead.InvalidStatus(code, w.log, "protocol", "scgi")
	}
	if code < 200 {
		return
	}
	w.wroteHeader = true
	w.status = code
	if dropped := cgihead.Write(w.bw, code, w.header); dropped != nil {
		w.log.Warn("scgi: dropping response header fields with an invalid name or value", "fields", dropped)
	}
	w.length.Declare(w.header)
}

// errWriteDeadline is what writes get once the handler's write deadline
// has passed.
var errWriteDeadline = fmt.Errorf("scgi: writing the response: %w", os.ErrDeadlineExceeded)

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		if _, ok := w.header["Content-Type"]; !ok && len(p) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.c.Writes().Passed() {
		w.err = errWriteDeadline
		return 0, w.err
	}
	keep, first := w.length.Cut(p)
	if first {
		w.log.Warn("scgi: handler wrote more than its Content-Length; the rest is cut",
			"declared", w.length.Declared())
	}
	if len(keep) > w.bw.Available() {
		w.c.Writes().Arm(w.writeTimeout) //nolint:errcheck // a failed deadline shows as the write's error
	}
	n, err := w.bw.Write(keep)
	if err != nil {
		w.err = err
		return n, err
	}
	if len(keep) < len(p) {
		return n, http.ErrContentLength
	}
	return n, nil
}

// SetWriteDeadline sets the deadline of the response's writes,
// replacing WriteTimeout: it takes effect at once, also on a write
// blocked on a front server that reads nothing, and writes fail once it
// has passed (the connection then closes, so the front server sees the
// response cut). A zero t gives WriteTimeout back. It is what
// http.ResponseController.SetWriteDeadline calls.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.Writes().Set(t) }

// SetReadDeadline sets the deadline of the request body's reads, replacing
// ReadTimeout: it takes effect at once, also on a read in progress. It is
// what http.ResponseController.SetReadDeadline calls.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.Reads().Set(t) }

// FlushError sends everything written so far to the front server; it is what
// http.ResponseController.Flush calls.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.c.Writes().Passed() {
		w.err = errWriteDeadline
		return w.err
	}
	w.c.Writes().Arm(w.writeTimeout) //nolint:errcheck // a failed deadline shows as the flush's error
	if err := w.bw.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// fail writes a bare error response for a request the handler never saw.
func (w *response) fail(code int) error {
	w.header.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.bw.WriteString(http.StatusText(code) + "\n")
	return w.finish()
}

// finish flushes the response and returns the writer to its pool.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.FlushError()
	w.bw.Reset(nil)
	writerPool.Put(w.bw)
	w.bw = nil
	w.err = net.ErrClosed
	return err
}
