package fastcgi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/junction-gw/junction/internal/syncbuf"
)

// TestInvalidRequestIs400: a request that vars.Validate refuses is
// answered 400 and never reaches the handler.
func TestInvalidRequestIs400(t *testing.T) {
	request := func(pairs ...string) []byte {
		p := nv(append([]string{"REQUEST_URI", "/x", "SERVER_NAME", "localhost", "SERVER_PORT", "80"}, pairs...)...)
		return cat(begin(1, roleResponder, 0), paramsRecs(1, p), stdinRecs(1, nil, 1))
	}
	tests := []struct {
		name  string
		input []byte
	}{
		{"CR LF in REQUEST_METHOD", request("REQUEST_METHOD", "GET\r\nX: y")},
		{"empty REQUEST_METHOD", request("REQUEST_METHOD", "")},
		{"CR LF in a header value", request("REQUEST_METHOD", "GET", "HTTP_X_A", "v\r\nX-B: w")},
		{"NUL in a header value", request("REQUEST_METHOD", "GET", "HTTP_X_A", "v\x00w")},
		{"header name not a token", request("REQUEST_METHOD", "GET", "HTTP_X A", "v")},
		{"CR in a CGI variable", request("REQUEST_METHOD", "GET", "DOCUMENT_ROOT", "/srv\r")},
		{"CR in a PEM variable", request("REQUEST_METHOD", "GET", "SSL_CLIENT_CERT", "-----BEGIN\r\n")},
	}
	for _, mpx := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/multiplex=%v", tt.name, mpx), func(t *testing.T) {
				var called atomic.Bool
				s := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) }),
					Logger: quietLogger(), Multiplex: mpx}
				tr, err := exchange(t, s, tt.input)
				if err != nil {
					t.Fatal(err)
				}
				rp := tr.reqs[1]
				if rp == nil || !rp.ended || !strings.HasPrefix(rp.stdout.String(), "Status: 400 Bad Request\r\n") {
					t.Fatalf("reply %+v, want 400 and END_REQUEST", rp)
				}
				if called.Load() {
					t.Error("handler ran")
				}
			})
		}
	}
	// A PEM certificate keeps its line feeds.
	var got atomic.Value
	s := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Store(true) }), Logger: quietLogger()}
	tr, err := exchange(t, s, request("REQUEST_METHOD", "GET", "SSL_CLIENT_CERT", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	if err != nil || got.Load() == nil || !strings.HasPrefix(tr.reqs[1].stdout.String(), "Status: 200") {
		t.Errorf("PEM variable refused: %v", err)
	}
}

// TestInvalidWriteHeaderCode: a code outside 100–999 is a handler bug,
// answered 500 with one logged error; the request ends normally.
func TestInvalidWriteHeaderCode(t *testing.T) {
	for _, code := range []int{0, 42, 99, 1000, -200} {
		var logs syncbuf.Buffer
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Kept", "1")
			w.WriteHeader(code)
			w.Write([]byte("body"))
		}), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		tr, err := exchange(t, s, get(1, 0, "/"))
		if err != nil {
			t.Fatal(err)
		}
		want := "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nX-Kept: 1\r\n\r\nbody"
		if rp := tr.reqs[1]; rp == nil || !rp.ended || rp.protocolStatus != statusRequestComplete || rp.stdout.String() != want {
			t.Errorf("WriteHeader(%d): %+v, want %q", code, rp, want)
		}
		if l := logs.String(); strings.Count(l, "invalid WriteHeader code") != 1 || !strings.Contains(l, "level=ERROR") {
			t.Errorf("WriteHeader(%d): logs:\n%s", code, l)
		}
	}
}
