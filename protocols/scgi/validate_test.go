package scgi

import (
	"net/http"
	"strings"
	"testing"
)

// TestInvalidRequestIs400: a request that vars.Validate refuses is
// answered 400 and never reaches the handler.
func TestInvalidRequestIs400(t *testing.T) {
	const want = "Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBad Request\n"
	tests := []struct {
		name, raw string
	}{
		{"CR LF in REQUEST_METHOD", request("GET\r\nX: y", "/", "")},
		{"space in REQUEST_METHOD", request("GET /", "/", "")},
		{"CR LF in a header value", request("GET", "/", "", "HTTP_X_A", "v\r\nX-B: w")},
		{"header name not a token", request("GET", "/", "", "HTTP_X(A)", "v")},
		{"LF in a CGI variable", request("GET", "/", "", "SCRIPT_FILENAME", "/srv/a\n/srv/b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			s := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })}
			out, err, logs := roundTrip(t, s, tt.raw)
			if called {
				t.Error("handler ran")
			}
			if out != want {
				t.Errorf("output %q, want %q", out, want)
			}
			if err == nil || !strings.Contains(logs, "vars: invalid") {
				t.Errorf("err %v, logs:\n%s", err, logs)
			}
		})
	}
	// A PEM certificate keeps its line feeds.
	var cert string
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cert = r.Header.Get("X-Cert")
	})}
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	if out, err, _ := roundTrip(t, s, request("GET", "/", "", "SSL_CLIENT_CERT", pem, "HTTP_X_CERT", "x")); err != nil || !strings.HasPrefix(out, "Status: 200") || cert != "x" {
		t.Errorf("PEM variable refused: %q, %v", out, err)
	}
}

// TestInvalidWriteHeaderCode: a code outside 100–999 is a handler bug,
// answered 500 with one logged error; the server does not panic.
func TestInvalidWriteHeaderCode(t *testing.T) {
	for _, code := range []int{0, 42, 99, 1000, -200} {
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Kept", "1")
			w.WriteHeader(code)
			w.Write([]byte("body"))
		})}
		out, err, logs := roundTrip(t, s, request("GET", "/", ""))
		if err != nil {
			t.Fatal(err)
		}
		if want := "Status: 500 Internal Server Error\r\nX-Kept: 1\r\n\r\nbody"; out != want {
			t.Errorf("WriteHeader(%d): got %q, want %q", code, out, want)
		}
		if strings.Count(logs, "invalid WriteHeader code") != 1 || !strings.Contains(logs, "level=ERROR") {
			t.Errorf("WriteHeader(%d): logs:\n%s", code, logs)
		}
	}
}
