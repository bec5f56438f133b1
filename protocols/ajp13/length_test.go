package ajp13

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/junction-gw/junction/internal/syncbuf"
)

// TestWriteBeyondContentLength: the declared bytes go out, the rest is
// cut, the writes say so with http.ErrContentLength, the codec logs it
// once, and END_RESPONSE says reuse=0.
func TestWriteBeyondContentLength(t *testing.T) {
	type write struct {
		n   int
		err error
	}
	var writes []write
	var logs syncbuf.Buffer
	s := &Server{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		for _, p := range []string{"hel", "lo world", "!"} {
			n, err := io.WriteString(w, p)
			writes = append(writes, write{n, err})
		}
	})}
	p := startPeer(t, s)
	p.send(fwd(t, 2, "/", nil))
	r := p.mustReply(nil)
	if string(r.body) != "hello" || r.header("Content-Length") != "5" || r.reuse {
		t.Errorf("reply body %q, Content-Length %q, reuse %v; want \"hello\", 5, reuse=0", r.body, r.header("Content-Length"), r.reuse)
	}
	if len(writes) != 3 || writes[0] != (write{3, nil}) || writes[1].n != 2 || !errors.Is(writes[1].err, http.ErrContentLength) ||
		writes[2].n != 0 || !errors.Is(writes[2].err, http.ErrContentLength) {
		t.Errorf("writes = %v, want 3 bytes, 2 and ErrContentLength, 0 and ErrContentLength", writes)
	}
	if err := p.serveErr(); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
	if n := strings.Count(logs.String(), "Content-Length"); n != 1 {
		t.Errorf("%d log lines about the Content-Length, want 1:\n%s", n, logs.String())
	}
}
