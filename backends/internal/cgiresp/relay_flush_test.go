package cgiresp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

type flushErrWriter struct {
	http.ResponseWriter
	err error
	n   int
}

func (w *flushErrWriter) FlushError() error { w.n++; return w.err }

type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type plainWriter struct{ h http.Header }

func (w plainWriter) Header() http.Header         { return w.h }
func (w plainWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w plainWriter) WriteHeader(int)             {}

// TestFlushAsResponseController: flush finds the same method
// http.ResponseController would, through wrappers, and reports a writer
// that cannot flush.
func TestFlushAsResponseController(t *testing.T) {
	boom := errors.New("boom")
	fe := &flushErrWriter{ResponseWriter: httptest.NewRecorder(), err: boom}
	if err := flush(wrapped{fe}); err != boom || fe.n != 1 {
		t.Errorf("FlushError through Unwrap: err %v, calls %d", err, fe.n)
	}
	rec := httptest.NewRecorder()
	if err := flush(wrapped{rec}); err != nil || !rec.Flushed {
		t.Errorf("Flusher through Unwrap: err %v, flushed %v", err, rec.Flushed)
	}
	if err := flush(plainWriter{http.Header{}}); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("no flusher: %v, want ErrNotSupported", err)
	}
}

func TestFlushAllocatesNothing(t *testing.T) {
	var w http.ResponseWriter = wrapped{httptest.NewRecorder()}
	if n := testing.AllocsPerRun(100, func() { flush(w) }); n != 0 {
		t.Errorf("flush allocates %v times, want 0", n)
	}
}
