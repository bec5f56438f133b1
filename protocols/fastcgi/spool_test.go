package fastcgi

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/internal/spool"
)

// TestSpoolBudget multiplexes a request whose handler reads its body late
// next to one that stays open, so the first one's body is spooled. Beyond
// the SpoolBudget the request is answered 503 and its neighbour is not
// disturbed; within it the body arrives whole. After every round the
// budget is whole again: nothing leaks over many requests.
func TestSpoolBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := spool.NewBudget(600 << 10)
		mux := http.NewServeMux()
		mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second) // its whole body arrives meanwhile
			w.Header().Set("X-Late", "1")
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				return // refused: the codec answers
			}
			fmt.Fprintf(w, "n=%d sha=%x", n, h.Sum(nil))
		})
		mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "done")
		})
		s := &Server{Handler: mux, Logger: quietLogger(), Multiplex: true, MaxRequestsPerConn: 10, SpoolBudget: budget}
		cli, done := pipeConn(s)

		round := func(size int) (late, wait string) {
			t.Helper()
			body := bytes.Repeat([]byte("b"), size)
			in := cat(begin(1, roleResponder, flagKeepConn), begin(2, roleResponder, flagKeepConn),
				paramsRecs(1, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/late", "CONTENT_LENGTH", itoa(size))),
				paramsRecs(2, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/wait", "CONTENT_LENGTH", "1")),
				stdinRecs(1, body, 65535), // request 2 is still open: this spools
				stdinRecs(2, []byte("x"), 1))
			send(t, cli, in)
			tr := readTranscript(cli, endedCount(2))
			if tr.err != nil {
				t.Fatalf("connection ended: %v", tr.err)
			}
			synctest.Wait() // both requests have closed their bodies
			if used := budget.Used(); used != 0 {
				t.Fatalf("budget used %d after the round's requests ended", used)
			}
			return tr.get(1).stdout.String(), tr.get(2).stdout.String()
		}

		// 1 MiB: 256 KiB in memory, the rest beyond the 600 KiB budget.
		late, wait := round(1 << 20)
		if !strings.HasPrefix(late, "Status: 503 Service Unavailable\r\n") || !strings.Contains(late, "Retry-After: 1\r\n") ||
			strings.Contains(late, "X-Late") || !strings.HasSuffix(late, "\r\n\r\n503 Service Unavailable\n") {
			t.Errorf("request beyond the budget answered %q, want a 503 with Retry-After", late)
		}
		if !strings.HasSuffix(wait, "done") {
			t.Errorf("its neighbour answered %q", wait)
		}

		// 400 KiB spools within the budget, many times over.
		body := bytes.Repeat([]byte("b"), 400<<10)
		want := fmt.Sprintf("n=%d sha=%x", len(body), sha256.Sum256(body))
		for i := range 20 {
			late, wait := round(len(body))
			if !strings.HasSuffix(late, want) || !strings.HasSuffix(wait, "done") {
				t.Fatalf("round %d: answered %q and %q, want %q", i, tail(late), wait, want)
			}
		}
		cli.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	})
}

func tail(s string) string {
	if len(s) > 200 {
		return "…" + s[len(s)-200:]
	}
	return s
}
