package cgi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// TestClientErrors: a request body that ends before CONTENT_LENGTH, or
// fails, and a client that goes away are the client's failures: Serve
// returns a *backends.ClientError (400, or 499 when the client went away),
// which a balancer never counts against anyone.
func TestClientErrors(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	tests := []struct {
		name   string
		req    func(t *testing.T) *http.Request
		status int
	}{
		{"body shorter than its length", func(t *testing.T) *http.Request {
			r := request("POST", "/cgi-bin/env.cgi", io.NopCloser(strings.NewReader("only ten b")), "sha")
			r.ContentLength = 1000
			return r
		}, http.StatusBadRequest},
		{"body cut by a lost connection", func(t *testing.T) *http.Request {
			r := request("POST", "/cgi-bin/env.cgi", io.MultiReader(strings.NewReader("only ten b"), errReader{io.ErrUnexpectedEOF}), "sha")
			r.ContentLength = 1000
			return r
		}, http.StatusBadRequest},
		{"client gone", func(t *testing.T) *http.Request {
			pidfile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			r := request("GET", "/cgi-bin/env.cgi", nil, "sleep").WithContext(ctx)
			r.Header.Set("X-Pidfile", pidfile)
			go func() {
				defer cancel()
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					if _, err := os.Stat(pidfile); err == nil {
						return // the script runs: the client goes
					}
				}
			}()
			return r
		}, backends.StatusClientClosedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := b.Serve(rec, tt.req(t))
			if !backends.IsClientError(err) || backends.Status(err) != tt.status {
				t.Errorf("Serve = %v (status %d), want a *backends.ClientError with status %d", err, backends.Status(err), tt.status)
			}
			if be := (*backends.Error)(nil); errors.As(err, &be) {
				t.Errorf("Serve = %v: a *backends.Error (%d), not the client's error", err, be.Status)
			}
			if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
				t.Errorf("wrote %q %v", rec.Body, rec.Header())
			}
		})
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
