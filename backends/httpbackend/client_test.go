package httpbackend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// shortBody gives n bytes of a body, then err: a client that sent part of
// a declared body and went away (io.ErrUnexpectedEOF, as the codecs report
// a connection lost mid-body) or a body that just ends early (io.EOF).
type shortBody struct {
	n   int
	err error
}

func (b *shortBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, b.err
	}
	m := copy(p, strings.Repeat("x", min(len(p), b.n)))
	b.n -= m
	return m, nil
}

func (b *shortBody) Close() error { return nil }

// TestClientErrors: a request body that ends before Content-Length, or
// fails, and a client that goes away are the client's failures: Serve
// returns a *backends.ClientError (400, or 499 when the client went away),
// never a 502 that a balancer would count against the instance.
func TestClientErrors(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			started <- struct{}{}
			<-r.Context().Done()
			return
		}
		_, _ = io.Copy(io.Discard, r.Body) // a failed body shows in the proxy's error
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	b := newBackend(t, Options{Addr: addrOf(srv)})
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
	}{
		{"body cut by a lost connection", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/upload", nil)
			r.Body, r.ContentLength = &shortBody{n: 100, err: io.ErrUnexpectedEOF}, 100_000
			return r
		}, http.StatusBadRequest},
		{"body shorter than its length", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/upload", nil)
			r.Body, r.ContentLength = &shortBody{n: 100, err: io.EOF}, 100_000
			return r
		}, http.StatusBadRequest},
		{"client gone", func() *http.Request {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			go func() {
				select {
				case <-started:
				case <-time.After(10 * time.Second):
				}
				cancel()
			}()
			return httptest.NewRequestWithContext(ctx, http.MethodGet, "/wait", nil)
		}, backends.StatusClientClosedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := b.Serve(rec, tt.req())
			if !backends.IsClientError(err) || backends.Status(err) != tt.status {
				t.Errorf("Serve = %v (status %d), want a *backends.ClientError with status %d", err, backends.Status(err), tt.status)
			}
			if be := (*backends.Error)(nil); errors.As(err, &be) {
				t.Errorf("Serve = %v: a *backends.Error (%d) would count against the instance", err, be.Status)
			}
			assertNothingWritten(t, rec)
		})
	}
}
