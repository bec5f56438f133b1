package cgiresp

import (
	"bufio"
	"errors"
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
