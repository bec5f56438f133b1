package fastcgi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/internal/syncbuf"
)

// TestWriteBeyondContentLength: the declared bytes go out, the rest is
// cut, the writes say so with http.ErrContentLength, the codec logs it
// once, and the connection is not reused though the web server asked to
// keep it: it closes after END_REQUEST.
func TestWriteBeyondContentLength(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		cli, done := pipeConn(s)
		defer cli.Close()
		send(t, cli, get(1, flagKeepConn, "/"))
		tr := readTranscript(cli, nil)
		want := "Status: 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
		if rp := tr.reqs[1]; rp == nil || !rp.ended || rp.stdout.String() != want {
			t.Errorf("reply %+v, want stdout %q and END_REQUEST", rp, want)
		}
		if len(writes) != 3 || writes[0] != (write{3, nil}) || writes[1].n != 2 || !errors.Is(writes[1].err, http.ErrContentLength) ||
			writes[2].n != 0 || !errors.Is(writes[2].err, http.ErrContentLength) {
			t.Errorf("writes = %v, want 3 bytes, 2 and ErrContentLength, 0 and ErrContentLength", writes)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeConn: %v", err)
			}
		case <-time.After(time.Second):
			t.Error("connection kept after a response that broke its Content-Length")
		}
		if n := strings.Count(logs.String(), "Content-Length"); n != 1 {
			t.Errorf("%d log lines about the Content-Length, want 1:\n%s", n, logs.String())
		}
	})
}
