package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// recorder is a codec's ResponseWriter as far as Handler can tell: it
// logs every call in order.
type recorder struct {
	header   http.Header
	events   []string
	body     bytes.Buffer
	deadline time.Time
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	r.events = append(r.events, fmt.Sprintf("status %d", code))
}
func (r *recorder) Write(p []byte) (int, error) {
	r.events = append(r.events, fmt.Sprintf("write %d", len(p)))
	return r.body.Write(p)
}
func (r *recorder) FlushError() error {
	r.events = append(r.events, "flush")
	return nil
}
func (r *recorder) SetWriteDeadline(t time.Time) error {
	r.deadline = t
	return nil
}

func (r *recorder) String() string { return strings.Join(r.events, ", ") }

// post is a request with a body of n bytes of 'b'; chunked (no
// Content-Length) when n < 0 is given as -size.
func post(n int) *http.Request {
	size := n
	if n < 0 {
		size = -n
	}
	req, _ := http.NewRequest(http.MethodPost, "/echo", io.NopCloser(strings.NewReader(strings.Repeat("b", size))))
	req.ContentLength = int64(n)
	if n < 0 {
		req.ContentLength = -1
	}
	return req
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestHoldsUntilBody is the full-duplex case: a handler answering before
// it has read the body sends nothing until the body is done; then what it
// held goes out in order with its next write, and flushes pass through.
func TestHoldsUntilBody(t *testing.T) {
	tests := []struct {
		name string
		n    int
		// read consumes the body the way a backend does.
		read func(io.Reader) error
	}{
		{"to EOF", 1000, func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }},
		{"exactly Content-Length (CGI's feeder)", 1000, func(r io.Reader) error {
			_, err := io.ReadFull(r, make([]byte, 1000))
			return err
		}},
		{"unknown length to EOF", -1000, func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			h := &Handler{Logger: quiet(), Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, "early")
				if err := http.NewResponseController(w).Flush(); err != nil {
					t.Errorf("Flush while held: %v", err)
				}
				w.(http.Flusher).Flush()
				if len(rec.events) != 0 {
					t.Errorf("sent before the body was read: %s", rec)
				}
				if err := tt.read(r.Body); err != nil {
					t.Fatal(err)
				}
				io.WriteString(w, "late!")
				if got, want := rec.String(), "status 201, write 5, flush, write 5"; got != want {
					t.Errorf("after the body: %s, want %s", got, want)
				}
				w.(http.Flusher).Flush()
				if err := http.NewResponseController(w).Flush(); err != nil {
					t.Errorf("Flush after the hold: %v", err)
				}
				if got, want := rec.String(), "status 201, write 5, flush, write 5, flush, flush"; got != want {
					t.Errorf("flushes after the body: %s, want %s", got, want)
				}
			})}
			h.ServeHTTP(rec, post(tt.n))
			if rec.body.String() != "earlylate!" {
				t.Errorf("body %q", rec.body.String())
			}
		})
	}
}

// loggedBody is a request body that logs its reads in a recorder's
// events, so tests see them in order with the response.
type loggedBody struct {
	rec *recorder
	r   io.Reader
}

func (b *loggedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.rec.events = append(b.rec.events, fmt.Sprintf("read %d", n))
	}
	return n, err
}

func (b *loggedBody) Close() error { return nil }

// TestHeldUntilReturn: a handler that returns without reading the body
// (or after closing it) has the rest of the body read, then its response
// sent, whole and in order.
func TestHeldUntilReturn(t *testing.T) {
	rec := newRecorder()
	req := post(10)
	req.Body = &loggedBody{rec: rec, r: strings.NewReader("0123456789")}
	h := &Handler{Logger: quiet(), Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
		w.WriteHeader(http.StatusEarlyHints) // dropped while holding
		w.WriteHeader(http.StatusAccepted)
		w.WriteHeader(http.StatusTeapot) // superfluous, as net/http ignores it
		io.WriteString(w, "one ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "two")
		if len(rec.events) != 0 {
			t.Errorf("sent while the body is unread: %s", rec)
		}
	})}
	h.ServeHTTP(rec, req)
	if got, want := rec.String(), "read 10, status 202, write 7, flush"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	if rec.body.String() != "one two" {
		t.Errorf("body %q", rec.body.String())
	}
}

// TestNoBodyPassesThrough: a request without a body is not held at all;
// the handler gets the codec's own writer.
func TestNoBodyPassesThrough(t *testing.T) {
	for _, req := range []*http.Request{
		func() *http.Request { r, _ := http.NewRequest(http.MethodGet, "/", nil); return r }(),
		func() *http.Request { r, _ := http.NewRequest(http.MethodPost, "/", http.NoBody); return r }(),
		post(0),
	} {
		rec := newRecorder()
		h := &Handler{Logger: quiet(), Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if w != http.ResponseWriter(rec) {
				t.Errorf("%s with Content-Length %d: writer wrapped", r.Method, r.ContentLength)
			}
			io.WriteString(w, "streamed")
			http.NewResponseController(w).Flush()
			if rec.String() != "write 8, flush" {
				t.Errorf("not passed through at once: %s", rec)
			}
		})}
		h.ServeHTTP(rec, req)
	}
}

// TestSpillsToFile: beyond MemBytes a held response goes to a temporary
// file charged to the budget; the file is gone and the budget whole once
// the response is sent.
func TestSpillsToFile(t *testing.T) {
	dir := t.TempDir()
	b := NewBudget(1 << 20)
	rec := newRecorder()
	want := bytes.Repeat([]byte("0123456789"), 10000) // 100 kB
	h := &Handler{Logger: quiet(), MemBytes: 1000, Budget: b, Dir: dir, Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for p := want; len(p) > 0; p = p[min(len(p), 777):] {
			if _, err := w.Write(p[:min(len(p), 777)]); err != nil {
				t.Fatal(err)
			}
		}
		if used := b.Used(); used < int64(len(want))-1000 || used > int64(len(want)) {
			t.Errorf("budget used %d while holding %d bytes with 1000 in memory", used, len(want))
		}
		if n := openSpoolFiles(t, "junction-response-"); n != 1 {
			t.Errorf("%d spool files open while holding, want 1", n)
		}
		if len(rec.events) != 0 {
			t.Errorf("sent while holding: %s", rec)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "end")
		if n := openSpoolFiles(t, "junction-response-"); n != 0 || b.Used() != 0 {
			t.Errorf("after the hold: %d spool files open, %d bytes of budget used", n, b.Used())
		}
	})}
	h.ServeHTTP(rec, post(5))
	if got := rec.body.Bytes(); !bytes.Equal(got, append(want, "end"...)) {
		t.Errorf("body of %d bytes differs from the %d written", len(got), len(want)+3)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left in %s: %v", dir, ents)
	}
}

// TestRefusedBeyondBudget: a held response the budget cannot cover is
// dropped, the handler's writes fail with ErrFull, and once it returns the
// rest of the body is read and 503 answered; the budget is whole again.
// A handler that aborts on the failed write (ReverseProxy panics with
// http.ErrAbortHandler) is answered the same.
func TestRefusedBeyondBudget(t *testing.T) {
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) { testRefused(t, abort) })
	}
}

func testRefused(t *testing.T, abort bool) {
	b := NewBudget(5000)
	rec := newRecorder()
	rec.header.Set("Content-Length", "999999") // what the backend set
	req := post(10)
	req.Body = &loggedBody{rec: rec, r: strings.NewReader("0123456789")}
	var werr error
	h := &Handler{Logger: quiet(), MemBytes: 100, Budget: b, Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "1")
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 1000)
		for range 20 {
			if _, werr = w.Write(chunk); werr != nil {
				break
			}
		}
		if _, err := w.Write(chunk); !errors.Is(err, ErrFull) {
			t.Errorf("write after the refusal: %v, want ErrFull", err)
		}
		if err := http.NewResponseController(w).Flush(); !errors.Is(err, ErrFull) {
			t.Errorf("flush after the refusal: %v, want ErrFull", err)
		}
		if len(rec.events) != 0 {
			t.Errorf("sent before the handler returned: %s", rec)
		}
		if abort {
			panic(http.ErrAbortHandler)
		}
	})}
	h.ServeHTTP(rec, req)
	if !errors.Is(werr, ErrFull) {
		t.Fatalf("writes beyond the budget: %v, want ErrFull", werr)
	}
	if got, want := rec.String(), "read 10, status 503, write 24"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	if rec.header.Get("Retry-After") == "" || rec.header.Get("X-Backend") != "" || rec.header.Get("Content-Length") != "" {
		t.Errorf("refusal header %v: want Retry-After and none of the backend's fields", rec.header)
	}
	if b.Used() != 0 || openSpoolFiles(t, "junction-response-") != 0 {
		t.Errorf("after the refusal: %d bytes of budget used, %d files open", b.Used(), openSpoolFiles(t, "junction-response-"))
	}
}

// TestNoLeak serves many requests that spill, some refused, some
// panicking: the budget comes back to zero and no file stays open.
func TestNoLeak(t *testing.T) {
	b := NewBudget(64 << 10)
	h := &Handler{Logger: quiet(), MemBytes: 512, Budget: b, Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size := 4 << 10
		if r.URL.Query().Get("big") != "" {
			size = 128 << 10 // beyond the budget: refused
		}
		w.Write(make([]byte, size))
		if r.URL.Query().Get("panic") != "" {
			panic(http.ErrAbortHandler)
		}
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("x"))
	})}
	for i := range 300 {
		req := post(100)
		switch i % 3 {
		case 1:
			req.URL.RawQuery = "big=1"
		case 2:
			req.URL.RawQuery = "panic=1"
		}
		func() {
			defer func() {
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					t.Fatal(p)
				}
			}()
			h.ServeHTTP(newRecorder(), req)
		}()
	}
	if b.Used() != 0 {
		t.Errorf("budget used %d after every request ended", b.Used())
	}
	if n := openSpoolFiles(t, "junction-response-"); n != 0 {
		t.Errorf("%d spool files still open", n)
	}
}

// TestResponseController: deadlines reach the codec's writer through
// Unwrap while the response is held.
func TestResponseController(t *testing.T) {
	rec := newRecorder()
	when := time.Unix(1700000000, 0)
	h := &Handler{Logger: quiet(), Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetWriteDeadline(when); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
	})}
	h.ServeHTTP(rec, post(1))
	if !rec.deadline.Equal(when) {
		t.Errorf("deadline %v did not reach the codec's writer", rec.deadline)
	}
}

// TestDrainAfterPendingRead: a backend may return while a goroutine of its
// own is still inside a body read (CGI's stdin feeder). The drain waits for
// that read, then reads the rest, then the response goes out.
func TestDrainAfterPendingRead(t *testing.T) {
	pr, pw := io.Pipe()
	req := post(6)
	entered := make(chan struct{}, 8)
	req.Body = &enterBody{ReadCloser: pr, entered: entered}
	rec := newRecorder()
	fed := make(chan int, 1)
	h := &Handler{Logger: quiet(), Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			n, _ := r.Body.Read(make([]byte, 3))
			fed <- n
		}()
		<-entered // the feeder is inside its read
		io.WriteString(w, "x")
	})}
	sent := make(chan struct{})
	go func() {
		pw.Write([]byte("abc"))
		pw.Write([]byte("def"))
		close(sent)
	}()
	h.ServeHTTP(rec, req)
	if n := <-fed; n != 3 {
		t.Errorf("pending read got %d bytes", n)
	}
	if got, want := rec.String(), "status 200, write 1"; got != want || rec.body.String() != "x" {
		t.Errorf("events %s, body %q; want %s, \"x\"", got, rec.body.String(), want)
	}
	select {
	case <-sent: // the drain took "def"
	case <-time.After(10 * time.Second):
		t.Error("the rest of the body was never read")
	}
	pw.Close()
}

// enterBody signals each read as it starts.
type enterBody struct {
	io.ReadCloser
	entered chan struct{}
}

func (b *enterBody) Read(p []byte) (int, error) {
	b.entered <- struct{}{}
	return b.ReadCloser.Read(p)
}
