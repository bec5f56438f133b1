package scgi

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestWriteBeyondContentLength: the declared bytes go out, the rest is
// cut, the writes say so with http.ErrContentLength, and the codec logs it
// once.
func TestWriteBeyondContentLength(t *testing.T) {
	type write struct {
		n   int
		err error
	}
	var writes []write
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		for _, p := range []string{"hel", "lo world", "!"} {
			n, err := io.WriteString(w, p)
			writes = append(writes, write{n, err})
		}
	})}
	out, err, logs := roundTrip(t, s, request("GET", "/", ""))
	if err != nil {
		t.Errorf("ServeConn: %v", err)
	}
	want := "Status: 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	if out != want {
		t.Errorf("response\n got %q\nwant %q", out, want)
	}
	if len(writes) != 3 || writes[0] != (write{3, nil}) || writes[1].n != 2 || !errors.Is(writes[1].err, http.ErrContentLength) ||
		writes[2].n != 0 || !errors.Is(writes[2].err, http.ErrContentLength) {
		t.Errorf("writes = %v, want 3 bytes, 2 and ErrContentLength, 0 and ErrContentLength", writes)
	}
	if n := strings.Count(logs, "Content-Length"); n != 1 {
		t.Errorf("%d log lines about the Content-Length, want 1:\n%s", n, logs)
	}
}
