package httpbackend

import (
	"context"
	"io"
	"net/http"
	"strings"
)

// state is what one Serve call learns from ReverseProxy's callbacks, which
// run on the calling goroutine (ServeHTTP returns after them).
type state struct {
	wrote bool   // a final status or body byte reached w
	err   error  // the failure reported before anything was written
	flush func() // st.flushW, made once per Serve
	w     http.ResponseWriter
	body  clientBody // the request body, when there is one
}

// flushW flushes w; a failed write shows in the next Write. The codecs'
// writers flush directly; others go through http.ResponseController.
func (st *state) flushW() {
	switch f := st.w.(type) {
	case interface{ FlushError() error }:
		_ = f.FlushError()
	case http.Flusher:
		f.Flush()
	default:
		_ = http.NewResponseController(st.w).Flush()
	}
}

// proxyFlushes reports whether ReverseProxy treats resp as a streaming
// response and flushes after every write itself: an event stream, or a
// body of unknown length.
func proxyFlushes(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	return isEventStream(resp.Header.Get("Content-Type"))
}

// isEventStream reports whether a Content-Type names text/event-stream,
// whatever its parameters and case: ReverseProxy's own test, without
// mime.ParseMediaType's map and copies on every response.
func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// flusherOf returns the flush of the Serve call behind ctx, or nil.
func flusherOf(ctx context.Context) func() {
	if st, ok := ctx.Value(stateKey{}).(*state); ok {
		return st.flush
	}
	return nil
}

// flushBody flushes what ReverseProxy wrote of the previous read before
// the next one, which may wait for the instance: output reaches the
// client as the instance produces it.
type flushBody struct {
	io.ReadCloser
	flush   func()
	pending bool // data was returned since the last flush
}

func (b *flushBody) Read(p []byte) (int, error) {
	if b.pending && b.flush != nil {
		b.flush()
		b.pending = false
	}
	n, err := b.ReadCloser.Read(p)
	b.pending = n > 0
	return n, err
}

type stateKey struct{}

// recorder notes whether anything reached the client. 1xx responses do
// not count: the final response is still to come.
type recorder struct {
	http.ResponseWriter
	st *state
}

func (w *recorder) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.st.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	w.st.wrote = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the codec's Flush, Hijack and
// deadlines.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
