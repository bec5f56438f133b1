package spool

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
)

// DefaultMemBytes is how much of a held response stays in memory before
// the rest goes to a temporary file: the size of a socket buffer, so a
// response that a front server could have taken at once costs no file.
const DefaultMemBytes = 64 << 10

// Handler serves Next and holds each response whose request has a body
// until that body has been read, so that no front server waits on the
// gateway while the gateway waits on it (see the package doc).
//
// A request without a body (Content-Length 0) is passed through
// untouched. Otherwise, until the body has been read to its end (its
// Content-Length reached, EOF or an error), the status, the bytes and any
// flushes the handler writes are held: the first MemBytes in memory, the
// rest in a File charged to Budget. Once the body is done, the handler's
// next write or flush sends what was held, and from then on everything,
// flushes included, passes straight through: streaming responses stream.
// A handler that returns with its response still held (it did not read
// the whole body) has the rest of the body read and discarded first, then
// the response sent: the front server is never left sending into a
// connection the codec closes (a reset that can lose the response), nor
// waiting for a response while junction waits for the body.
// Informational (1xx) responses written while holding are dropped: they
// are hints, and sending them early is what stops some fronts.
//
// A held response that the Budget cannot cover is dropped: the handler's
// later writes fail with ErrFull, which makes a CGI or app backend stop,
// and once it has returned (and the body has been read) the request is
// answered 503 Service Unavailable with Retry-After instead. Nothing of
// the dropped response had reached the front server.
//
// The ResponseWriter passed to Next implements http.Flusher and, for
// http.ResponseController, FlushError and Unwrap.
type Handler struct {
	// Next serves the requests.
	Next http.Handler
	// MemBytes is how much of one held response stays in memory; 0 means
	// DefaultMemBytes.
	MemBytes int
	// Budget bounds the bytes held in temporary files, shared with the
	// listener's other spooling; nil bounds nothing.
	Budget *Budget
	// Dir is where temporary files are created; empty means os.TempDir().
	Dir string
	// Logger receives one warning per response refused for the Budget.
	// Nil means slog.Default().
	Logger *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		h.Next.ServeHTTP(w, r)
		return
	}
	b := &body{ReadCloser: r.Body, want: r.ContentLength}
	r.Body = b
	hw := &writer{rw: w, h: h, r: r, body: b, holding: true,
		file: File{Budget: h.Budget, Dir: h.Dir, Pattern: "junction-response-"}}
	finished := false
	defer func() {
		if finished {
			return
		}
		if hw.refused {
			// httputil.ReverseProxy aborts with ErrAbortHandler when a
			// write fails (under net/http): the refusal still answers.
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panic(p)
			}
			hw.finish()
			return
		}
		// Next panicked: the codec drops the connection, so what is held
		// goes nowhere.
		hw.discard()
	}()
	h.Next.ServeHTTP(hw, r)
	finished = true
	hw.finish()
}

func (h *Handler) memBytes() int {
	if h.MemBytes <= 0 {
		return DefaultMemBytes
	}
	return h.MemBytes
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

// body tells the writer when the request body is done. It is read by
// whichever goroutine feeds the backend, and by the writer's finish once
// the handler has returned: mu orders a read a backend left behind (CGI's
// stdin feeder may leave one pending) before the drain.
type body struct {
	io.ReadCloser
	want int64 // Content-Length, -1 when unknown

	mu   sync.Mutex
	n    int64
	done atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done.Load() && b.want >= 0 && b.n >= b.want {
		return 0, io.EOF
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	// CGI's stdin feeder reads exactly Content-Length bytes and never
	// asks for the EOF after them.
	if err != nil || (b.want >= 0 && b.n >= b.want) {
		b.done.Store(true)
	}
	return n, err
}

// drain reads the rest of the body, so that the front server has sent
// everything before the response goes out. Errors end it: the codec
// reports them.
func (b *body) drain() error {
	if b.done.Load() {
		return nil
	}
	_, err := io.Copy(io.Discard, b)
	return err
}

// writer is the http.ResponseWriter Handler gives Next. Like every
// ResponseWriter it is used from the handler's goroutine only.
type writer struct {
	rw   http.ResponseWriter
	h    *Handler
	r    *http.Request
	body *body

	holding bool
	refused bool   // the Budget could not cover it: answer 503 at the end
	code    int    // status held, 0 if none yet
	mem     []byte // the first bytes held
	file    File   // the rest
	flush   bool   // a flush was asked while holding
	err     error  // set once sending failed or the response was refused
}

// Header returns the real header map: nothing reads it before the held
// status is sent.
func (w *writer) Header() http.Header { return w.rw.Header() }

func (w *writer) WriteHeader(code int) {
	if w.err != nil {
		return
	}
	held, err := w.hold()
	if err != nil {
		return
	}
	if !held {
		w.rw.WriteHeader(code)
		return
	}
	if code >= 200 && w.code == 0 {
		w.code = code
	}
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	held, err := w.hold()
	if err != nil {
		return 0, err
	}
	if !held {
		return w.rw.Write(p)
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.file.Len() == 0 && len(w.mem)+len(p) <= w.h.memBytes() {
		w.mem = append(w.mem, p...)
		return len(p), nil
	}
	if err := w.file.Append(p); err != nil {
		w.refuse(err)
		return 0, w.err
	}
	return len(p), nil
}

// Flush implements http.Flusher.
func (w *writer) Flush() {
	_ = w.FlushError() // http.Flusher has no way to report it; the next write will
}

// FlushError is Flush for http.ResponseController. While the response is
// held it only remembers the flush, which is done when the hold ends.
func (w *writer) FlushError() error {
	if w.err != nil {
		return w.err
	}
	held, err := w.hold()
	if err != nil {
		return err
	}
	if held {
		w.flush = true
		return nil
	}
	return flush(w.rw)
}

// Unwrap gives http.ResponseController the codec's writer, for the
// controls Handler does not intercept (deadlines, full duplex).
func (w *writer) Unwrap() http.ResponseWriter { return w.rw }

func flush(rw http.ResponseWriter) error {
	if f, ok := rw.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return http.NewResponseController(rw).Flush()
}

// hold reports whether the response is still held, ending the hold first
// if the body is done. The error is that of sending what was held.
func (w *writer) hold() (bool, error) {
	if w.holding && w.body.done.Load() {
		return false, w.release()
	}
	return w.holding, nil
}

// release ends the hold: the status, the bytes and the flush held go to
// the codec's writer.
func (w *writer) release() error {
	w.holding = false
	defer w.discard()
	if w.code != 0 {
		w.rw.WriteHeader(w.code)
	}
	if len(w.mem) > 0 {
		if _, err := w.rw.Write(w.mem); err != nil {
			w.err = err
			return err
		}
	}
	if n := w.file.Len(); n > 0 {
		if _, err := io.Copy(w.rw, io.NewSectionReader(&w.file, 0, n)); err != nil {
			w.err = err
			return err
		}
	}
	if w.flush {
		if err := flush(w.rw); err != nil && !errors.Is(err, http.ErrNotSupported) {
			w.err = err
			return err
		}
	}
	return nil
}

// finish ends the response once the handler has returned: if it is still
// held, or refused, it reads the rest of the body first, then sends what
// is held, or the 503.
func (w *writer) finish() {
	if !w.holding && !w.refused {
		return
	}
	if err := w.body.drain(); err != nil {
		w.h.logger().Debug("spool: reading the rest of the request body", "uri", w.r.RequestURI, "err", err)
	}
	if w.refused {
		w.answerRefused()
		return
	}
	if err := w.release(); err != nil {
		w.h.logger().Debug("spool: sending held response", "uri", w.r.RequestURI, "err", err)
	}
}

// discard drops what is held and closes the file, releasing its bytes.
func (w *writer) discard() {
	w.mem = nil
	if err := w.file.Close(); err != nil {
		w.h.logger().Warn("spool: closing held response", "uri", w.r.RequestURI, "err", err)
	}
}

// refuse drops a held response the Budget cannot cover; finish answers
// 503 in its place.
func (w *writer) refuse(cause error) {
	w.holding, w.refused = false, true
	w.discard()
	w.err = fmt.Errorf("spool: response refused: %w", cause)
	w.h.logger().Warn("spool: response refused: its request body is still arriving and max_spool_bytes is reached",
		"method", w.r.Method, "uri", w.r.RequestURI, "status", http.StatusServiceUnavailable, "err", cause)
}

// answerRefused writes the 503. Nothing of the dropped response reached
// the codec, so its status and fields can still change.
func (w *writer) answerRefused() {
	h := w.rw.Header()
	clear(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Retry-After", "1")
	w.rw.WriteHeader(http.StatusServiceUnavailable)
	if _, err := io.WriteString(w.rw, "503 Service Unavailable\n"); err != nil {
		w.h.logger().Debug("spool: writing 503", "uri", w.r.RequestURI, "err", err)
	}
}
