package shadow

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// seenHeaders is a shadow that keeps the request headers it was sent, by
// path.
func seenHeaders(seen *sync.Map) backends.Func {
	return func(w http.ResponseWriter, r *http.Request) error {
		seen.Store(r.URL.Path, r.Header.Clone())
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "same answer for "+r.URL.Path+" ")
		return nil
	}
}

// TestCopyOfPlainHTTPRequest: a request from the HTTP front end carries
// no variables; its copy is still sent (it used to fail to build: no
// REQUEST_METHOD).
func TestCopyOfPlainHTTPRequest(t *testing.T) {
	var seen sync.Map
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: seenHeaders(&seen), Percent: 100})
	defer b.Close()
	r := httptest.NewRequest("GET", "/plain?q=1", nil)
	r.Header.Set("Accept", "text/plain")
	if err := b.Serve(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	if s := waitCounted(t, b, 1); s.Same != 1 {
		t.Fatalf("stats %+v, want 1 same", s)
	}
	h, _ := seen.Load("/plain")
	if h, _ := h.(http.Header); h.Get("Accept") != "text/plain" {
		t.Errorf("shadow got headers %v", h)
	}
}

// TestCopyHasTheRoutedHeaders: the copy carries the request's headers as
// the route got them (an authorizer in front strips the client's
// Variable-* headers and adds its own; an AJP request has no HTTP_*
// variables), not the front server's HTTP_* variables.
func TestCopyHasTheRoutedHeaders(t *testing.T) {
	var seen sync.Map
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: seenHeaders(&seen), Percent: 100})
	defer b.Close()
	r := request(t, "GET", "/guarded", "")
	r.Header.Set("Variable-User", "forged") // as the variables say: HTTP_VARIABLE_USER
	r.Header.Set("X-Only-Header", "1")      // a header with no HTTP_* variable (AJP)
	vs := append(vars.FromContext(r.Context()), vars.Var{Name: "HTTP_VARIABLE_USER", Value: "forged"})
	r = r.WithContext(vars.NewContext(r.Context(), vs))
	r.Header.Set("Variable-User", "alice") // the authorizer's answer replaces the client's
	if err := b.Serve(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	if s := waitCounted(t, b, 1); s.Same != 1 {
		t.Fatalf("stats %+v, want 1 same", s)
	}
	h, _ := seen.Load("/guarded")
	got, _ := h.(http.Header)
	if v := got.Values("Variable-User"); len(v) != 1 || v[0] != "alice" {
		t.Errorf("shadow got Variable-User %q, want only the authorizer's", v)
	}
	if got.Get("X-Only-Header") != "1" {
		t.Errorf("shadow lost a header: %v", got)
	}
}

// TestClientGoneNotShadowed: a request whose client left before any
// answer has nothing to compare with; it is not copied.
func TestClientGoneNotShadowed(t *testing.T) {
	var seen sync.Map
	gone := backends.Func(func(http.ResponseWriter, *http.Request) error {
		return &backends.ClientError{Err: backends.ErrClientGone}
	})
	b := New(Config{Route: "/", Primary: gone, Shadow: seenHeaders(&seen), Percent: 100})
	b.Serve(httptest.NewRecorder(), request(t, "GET", "/left", ""))
	b.Close()
	if _, ok := seen.Load("/left"); ok {
		t.Error("a request whose client went away was shadowed")
	}
	if s := b.Stats(); s.Same+s.Different+s.Errors+s.Dropped != 0 {
		t.Errorf("stats %+v, want nothing copied", s)
	}
}

// TestUpgradeNotShadowed: an upgrade (WebSocket) is a connection, not an
// answer to compare; the shadow never gets one.
func TestUpgradeNotShadowed(t *testing.T) {
	var seen sync.Map
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: seenHeaders(&seen), Percent: 100})
	r := request(t, "GET", "/ws", "")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	b.Serve(httptest.NewRecorder(), r)
	b.Close()
	if _, ok := seen.Load("/ws"); ok {
		t.Error("an upgrade request was shadowed")
	}
	if s := b.Stats(); s.Same+s.Different+s.Errors+s.Dropped != 0 {
		t.Errorf("stats %+v, want nothing copied", s)
	}
}

// TestHeadBodiesNotCompared: a CGI script prints its body for HEAD too
// (the front server drops it) while an HTTP application sends none: for
// HEAD the body aspect is not compared.
func TestHeadBodiesNotCompared(t *testing.T) {
	noBody := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: noBody, Percent: 100})
	defer b.Close()
	b.Serve(httptest.NewRecorder(), request(t, "HEAD", "/h", ""))
	if s := waitCounted(t, b, 1); s.Same != 1 {
		t.Errorf("stats %+v, want HEAD answers the same", s)
	}
}

// failingFlush is a client connection that is gone: flushing fails.
type failingFlush struct{ *httptest.ResponseRecorder }

func (failingFlush) FlushError() error { return errors.New("broken pipe") }

// TestFlushThroughRecorder: the primary's flush reaches the client's
// writer with its error (a streaming backend stops when the client is
// gone), and a flush before any header sends, and records, a 200.
func TestFlushThroughRecorder(t *testing.T) {
	var flushErr error
	streamer := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		flushErr = http.NewResponseController(w).Flush() // the head, at once; no body yet
		return nil
	})
	b := New(Config{Route: "/", Primary: streamer, Shadow: app("A", nil, nil), Percent: 100, Compare: []string{AspectStatus}})
	defer b.Close()
	b.Serve(failingFlush{httptest.NewRecorder()}, request(t, "GET", "/s", ""))
	if flushErr == nil {
		t.Error("the client's flush error was swallowed")
	}
	if s := waitCounted(t, b, 1); s.Same != 1 {
		t.Errorf("stats %+v, want the flushed 200 compared", s)
	}
}

// TestShadowMayFlush: a shadow backend that flushes (streams) is not
// failed by its writer.
func TestShadowMayFlush(t *testing.T) {
	flusher := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "same answer for "+r.URL.Path+" ")
		return http.NewResponseController(w).Flush()
	})
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: flusher, Percent: 100})
	defer b.Close()
	b.Serve(httptest.NewRecorder(), request(t, "GET", "/f", ""))
	if s := waitCounted(t, b, 1); s.Same != 1 {
		t.Errorf("stats %+v, want 1 same", s)
	}
}
