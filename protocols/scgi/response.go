package scgi

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/junction-gw/junction/protocols/internal/cgihead"
)

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// response is the http.ResponseWriter for one SCGI request. The head is
// written CGI-style, always starting with a Status line (the SCGI spec
// requires it; nginx merely tolerates its absence).
type response struct {
	c            net.Conn
	bw           *bufio.Writer
	header       http.Header
	writeTimeout time.Duration
	log          *slog.Logger
	status       int
	wroteHeader  bool
	err          error // first write error; later writes fail fast
}

func newResponse(c net.Conn, writeTimeout time.Duration, log *slog.Logger) *response {
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
}

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
	if w.writeTimeout > 0 && len(p) > w.bw.Available() {
		w.c.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	}
	n, err := w.bw.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// FlushError sends everything written so far to the front server; it is what
// http.ResponseController.Flush calls.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.writeTimeout > 0 {
		w.c.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// fail writes a bare error response for a request the handler never saw.
func (w *response) fail(code int) {
	w.header.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.bw.WriteString(http.StatusText(code) + "\n")
	w.finish()
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
