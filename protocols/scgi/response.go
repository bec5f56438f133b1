package scgi

import (
	"bufio"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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
	status       int
	wroteHeader  bool
	err          error // first write error; later writes fail fast
}

func newResponse(c net.Conn, writeTimeout time.Duration) *response {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(c)
	return &response{c: c, bw: bw, header: make(http.Header), writeTimeout: writeTimeout}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError // a handler bug; net/http would panic
	}
	if code < 200 {
		return // no interim responses over SCGI
	}
	w.wroteHeader = true
	w.status = code
	w.writeHead()
}

// writeHead renders the status line and headers. Header fields that could
// split the response (CR, LF or NUL in a value, a bad name) are dropped.
func (w *response) writeHead() {
	bw := w.bw
	bw.WriteString("Status: ")
	bw.WriteString(strconv.Itoa(w.status))
	if text := http.StatusText(w.status); text != "" {
		bw.WriteByte(' ')
		bw.WriteString(text)
	}
	bw.WriteString("\r\n")
	for _, name := range slices.Sorted(maps.Keys(w.header)) {
		values := w.header[name]
		if !validHeaderName(name) || strings.EqualFold(name, "Status") {
			continue
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				continue
			}
			bw.WriteString(name)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
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

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 0x80 || !isToken[c] {
			return false
		}
	}
	return true
}

var isToken = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
