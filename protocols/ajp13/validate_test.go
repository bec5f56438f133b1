package ajp13

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestInvalidRequestIs400: a request that vars.Validate refuses is
// answered 400 (the connection then closes, as for every refusal) and
// never reaches the handler.
func TestInvalidRequestIs400(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"CR LF in stored_method", fwd(t, 0xFF, "/", nil, strAttr(attrStoredMethod, "GET\r\nX: y"))},
		{"CR LF in a header value", fwd(t, 2, "/", []string{"X-A", "v\r\nX-B: w"})},
		{"NUL in a header value", fwd(t, 2, "/", []string{"User-Agent", "v\x00w"})},
		{"header name not a token", fwd(t, 2, "/", []string{"X A", "v"})},
		{"LF in remote_user", fwd(t, 2, "/", nil, strAttr(attrRemoteUser, "bob\nalice"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var called atomic.Bool
			s := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) })}
			p := startPeer(t, s)
			p.send(tt.pkt)
			r := p.mustReply(nil)
			if r.status != http.StatusBadRequest || r.reuse {
				t.Errorf("reply %+v, want 400 without reuse", r)
			}
			if called.Load() {
				t.Error("handler ran")
			}
		})
	}
}

// TestInvalidWriteHeaderCode: a code outside 100–999 is a handler bug,
// answered 500 with one logged error, and the connection stays usable
// (AJP13 used to panic here and lose the connection).
func TestInvalidWriteHeaderCode(t *testing.T) {
	for _, code := range []int{0, 42, 99, 1000, -200} {
		var mu sync.Mutex
		var logs bytes.Buffer
		s := &Server{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Kept", "1")
				w.WriteHeader(code)
				io.WriteString(w, "body")
			})}
		p := startPeer(t, s)
		for range 2 {
			p.send(fwd(t, 2, "/", nil))
			r := p.mustReply(nil)
			if r.status != 500 || r.message != "Internal Server Error" || r.header("X-Kept") != "1" || string(r.body) != "body" || !r.reuse {
				t.Errorf("WriteHeader(%d): reply %+v", code, r)
			}
		}
		mu.Lock()
		l := logs.String()
		mu.Unlock()
		if strings.Count(l, "invalid WriteHeader code") != 2 || !strings.Contains(l, "level=ERROR") {
			t.Errorf("WriteHeader(%d): logs:\n%s", code, l)
		}
	}
}
