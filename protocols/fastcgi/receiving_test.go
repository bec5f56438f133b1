package fastcgi

import (
	"io"
	"net/http"
	"strings"
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

// TestReadTimeoutCountsFromLastRecord checks that the read timeout of a
// request body runs from the last record received, also when records
// arrive closer together than the reader bothers to re-arm its deadline
// for. (A request head has one deadline from its first byte instead:
// TestHeadDeadlineIsTotal.)
func TestReadTimeoutCountsFromLastRecord(t *testing.T) {
	tests := []struct {
		name string
		gaps []time.Duration // before each STDIN record after the head
	}{
		{"no gaps", nil},
		{"gaps within the slack", []time.Duration{200 * time.Millisecond, 100 * time.Millisecond}},
		{"gaps beyond the slack", []time.Duration{time.Second, 2 * time.Second, 2500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &Server{Logger: quietLogger(), ReadTimeout: 3 * time.Second,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })}
				cli, done := pipeConn(s)
				go io.Copy(io.Discard, cli)
				send(t, cli, cat(begin(1, roleResponder, 0), paramsRecs(1, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/", "CONTENT_LENGTH", "100"))))
				for _, g := range tt.gaps {
					time.Sleep(g)
					send(t, cli, rec(typeStdin, 1, []byte("1")))
				}
				last := time.Now()
				err := <-done
				if err == nil || !strings.Contains(err.Error(), "no input for 3s") {
					t.Errorf("ServeConn: %v, want a read timeout", err)
				}
				if d := time.Since(last); d != 3*time.Second {
					t.Errorf("stalled request dropped %v after its last record, want 3s", d)
				}
				cli.Close()
			})
		})
	}
}
