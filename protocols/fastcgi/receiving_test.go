package fastcgi

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// TestEarlyAnswerStopsReceiving checks that a request answered before its
// STDIN ended no longer counts as receiving: the silence that follows is
// idle time (IdleTimeout, a clean end), not a stalled request (ReadTimeout,
// an error).
func TestEarlyAnswerStopsReceiving(t *testing.T) {
	p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/", "CONTENT_LENGTH", "100",
		"SERVER_NAME", "localhost", "SERVER_PORT", "80")
	head := cat(begin(1, roleResponder, flagKeepConn), paramsRecs(1, p), rec(typeStdin, 1, []byte("partial")))
	tests := []struct {
		name  string
		after []byte // sent once END_REQUEST arrived
	}{
		{"silent after the answer", nil},
		{"late end of STDIN", rec(typeStdin, 1, nil)},
		{"late body and end of STDIN", cat(rec(typeStdin, 1, []byte("more")), rec(typeStdin, 1, nil))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &Server{Logger: quietLogger(), ReadTimeout: 3 * time.Second, IdleTimeout: 7 * time.Second,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						w.WriteHeader(http.StatusRequestEntityTooLarge)
					})}
				cli, done := pipeConn(s)
				send(t, cli, head)
				tr := readTranscript(cli, endedCount(1))
				if rp := tr.reqs[1]; rp == nil || !rp.ended {
					t.Fatalf("no END_REQUEST: %+v", tr)
				}
				start := time.Now()
				if len(tt.after) > 0 {
					send(t, cli, tt.after)
				}
				if err := <-done; err != nil {
					t.Errorf("ServeConn: %v, want a clean idle close", err)
				}
				if d := time.Since(start); d != 7*time.Second {
					t.Errorf("connection closed after %v, want the 7s idle timeout", d)
				}
				cli.Close()
			})
		})
	}
}
