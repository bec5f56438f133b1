package cgiresp

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteHead(t *testing.T) {
	resp, err := Parse(bufio.NewReader(strings.NewReader(
		"Status: 201 Created\nConnection: close\nKeep-Alive: 5\nTransfer-Encoding: chunked\nX-A: 1\nContent-Length: 2\nContent-Length: 2\n\nok")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	resp.WriteHead(rec)
	if rec.Code != 201 {
		t.Errorf("status %d, want 201", rec.Code)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding"} {
		if v := rec.Header().Values(k); len(v) != 0 {
			t.Errorf("hop-by-hop %s passed: %q", k, v)
		}
	}
	if got := rec.Header().Values("Content-Length"); len(got) != 1 || got[0] != "2" {
		t.Errorf("Content-Length %q, want one \"2\"", got)
	}
	if rec.Header().Get("X-A") != "1" {
		t.Errorf("X-A lost: %v", rec.Header())
	}
}

func TestCopyBody(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       string
		body     string
		overrun  bool
		bufBytes int
	}{
		{name: "no length", in: "X: 1\n\nhello world", body: "hello world"},
		{name: "exact length", in: "Content-Length: 5\n\nhello", body: "hello"},
		{name: "short body", in: "Content-Length: 9\n\nhello", body: "hello"},
		{name: "overrun cut", in: "Content-Length: 5\n\nhello, and more", body: "hello", overrun: true},
		{name: "zero length with body", in: "Content-Length: 0\n\nx", body: "", overrun: true},
		// The declared bytes span several reads of a small buffer.
		{name: "overrun across reads", in: "Content-Length: 20\n\n" + strings.Repeat("a", 20) + "tail", body: strings.Repeat("a", 20), overrun: true, bufBytes: 16},
	} {
		t.Run(tt.name, func(t *testing.T) {
			size := 4096
			if tt.bufBytes > 0 {
				size = tt.bufBytes
			}
			br := bufio.NewReaderSize(strings.NewReader(tt.in), size)
			resp, err := Parse(br, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			resp.WriteHead(rec)
			werr, rerr := resp.CopyBody(rec, br, nil)
			if werr != nil {
				t.Fatalf("werr %v", werr)
			}
			if got := errors.Is(rerr, ErrOverrun); got != tt.overrun || (!tt.overrun && rerr != nil) {
				t.Errorf("rerr = %v, want overrun=%v", rerr, tt.overrun)
			}
			if rec.Body.String() != tt.body {
				t.Errorf("body %q, want %q", rec.Body.String(), tt.body)
			}
		})
	}
}

// failWriter fails every write, as a client that went away.
type failWriter struct{ http.ResponseWriter }

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("gone") }

func TestCopyBodyWriteError(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("\n\nbody"))
	br.Discard(2)
	resp := &Response{ContentLength: -1}
	werr, rerr := resp.CopyBody(failWriter{httptest.NewRecorder()}, br, nil)
	if werr == nil || rerr != nil {
		t.Errorf("werr %v rerr %v; want a write error only", werr, rerr)
	}
}

// blockingReader gives its data, then blocks until closed: a script that
// has printed its response and goes on working with stdout open.
type blockingReader struct {
	data  string
	block chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		<-r.block
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestCopyDeclared: a body of declared length is complete once its bytes
// are written, without the end of the output; what follows is left for
// End.
func TestCopyDeclared(t *testing.T) {
	tests := []struct {
		name string
		in   string
		body string
		end  error // End's verdict on what follows
	}{
		{"no length", "X: 1\n\nhello", "hello", nil},
		{"exact length", "Content-Length: 5\n\nhello", "hello", nil},
		{"more than declared", "Content-Length: 5\n\nhello, and more", "hello", ErrOverrun},
		{"zero", "Content-Length: 0\n\nx", "", ErrOverrun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			resp, err := Parse(br, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			if werr, rerr := resp.CopyDeclared(w, br, nil); werr != nil || rerr != nil {
				t.Fatalf("CopyDeclared: %v %v", werr, rerr)
			}
			if w.Body.String() != tt.body {
				t.Errorf("relayed %q, want %q", w.Body, tt.body)
			}
			if err := resp.End(br); !errors.Is(err, tt.end) || (tt.end == nil && err != nil) {
				t.Errorf("End = %v, want %v", err, tt.end)
			}
		})
	}
	r := &blockingReader{data: "Content-Length: 2\n\nok", block: make(chan struct{})}
	defer close(r.block)
	br := bufio.NewReader(r)
	resp, err := Parse(br, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if werr, rerr := resp.CopyDeclared(w, br, nil); werr != nil || rerr != nil || w.Body.String() != "ok" {
		t.Errorf("CopyDeclared = %v %v, body %q; want ok without the end of the output", werr, rerr, w.Body)
	}
}
