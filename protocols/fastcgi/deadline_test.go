package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// trickle writes b to c in pieces of n bytes, every, until all is written
// or c fails.
func trickle(c net.Conn, b []byte, n int, every time.Duration) {
	for len(b) > 0 {
		k := min(n, len(b))
		if _, err := c.Write(b[:k]); err != nil {
			return
		}
		b = b[k:]
		if len(b) > 0 {
			time.Sleep(every)
		}
	}
}

// TestHeadDeadlineIsTotal: read_timeout bounds the whole request head,
// from the first byte of BEGIN_REQUEST to the empty PARAMS record, as in
// every codec. A peer that trickles it (never silent for a whole
// read_timeout) is cut off when a silent one would be, so it cannot hold
// one of max_conns connections for ever; a slow head that completes in
// time is served, and a body may still trickle: read_timeout bounds each
// of its reads.
func TestHeadDeadlineIsTotal(t *testing.T) {
	head := cat(begin(1, roleResponder, 0), paramsRecs(1, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/echo",
		"CONTENT_LENGTH", "8", "SERVER_NAME", "localhost", "SERVER_PORT", "80")))
	tests := []struct {
		name      string
		in        []byte
		piece     int
		every     time.Duration
		wantServe bool
	}{
		{"head a byte a second", head, 1, time.Second, false},
		{"head in time", cat(head, stdinRecs(1, []byte("trickled"), 8)), len(head)/3 + 1, 900 * time.Millisecond, true},
		{"body a byte a second", cat(head, stdinRecs(1, []byte("trickled"), 1)), 8, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				served := false
				s := &Server{ReadTimeout: 3 * time.Second, Logger: quietLogger(),
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						b, err := io.ReadAll(r.Body)
						served = err == nil && string(b) == "trickled"
					})}
				cli, srv := net.Pipe()
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cli.Close()
				done := make(chan error, 1)
				go func() { done <- s.ServeConn(context.Background(), srv) }()
				start := time.Now()
				in := tc.in
				if tc.wantServe && tc.piece == 8 {
					// The head at once, then the body's records a
					// byte a second.
					cli.Write(head)
					start, in = time.Now(), in[len(head):]
				}
				wg.Go(func() { trickle(cli, in, tc.piece, tc.every) })
				tr := readTranscript(cli, endedCount(1))
				if tc.wantServe {
					if !served || tr.reqs[1] == nil || !tr.reqs[1].ended {
						t.Errorf("served %v, transcript %+v (%v)", served, tr.reqs[1], tr.err)
					}
					cli.Close()
					<-done
					return
				}
				err := <-done
				if served || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("trickled head: served %v, ServeConn %v; want a head timeout", served, err)
				}
				if d := time.Since(start); d != 3*time.Second {
					t.Errorf("trickled head cut off after %v, want the 3s read_timeout from its first byte", d)
				}
				if n := s.inflight.Load(); n != 0 {
					t.Errorf("inflight = %d", n)
				}
			})
		})
	}
}

// TestSetWriteDeadlineAbortsBlockedWrite: on a connection carrying only
// this request, a backend aborting its response
// (http.ResponseController.SetWriteDeadline(now), as the CGI backend does
// when a script times out) makes a write blocked on a peer that never
// reads fail at once, and the connection closes without END_REQUEST, so
// the web server sees the response cut.
func TestSetWriteDeadlineAbortsBlockedWrite(t *testing.T) {
	// Without KEEP_CONN nginx's GET runs on the connection's reader
	// (inline); with it, on a goroutine of its own.
	for name, flags := range map[string]byte{"inline": 0, "keep-conn": flagKeepConn} {
		t.Run(name, func(t *testing.T) { testSetWriteDeadlineAborts(t, flags) })
	}
}

func testSetWriteDeadlineAborts(t *testing.T, flags byte) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			setErr, writeErr error
			late             time.Duration
		}
		res := make(chan result, 1)
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			set := make(chan time.Time, 1)
			var setErr error
			go func() {
				time.Sleep(time.Second) // the write below is blocked by then
				setErr = rc.SetWriteDeadline(time.Now())
				set <- time.Now()
			}()
			_, err := w.Write(make([]byte, 1<<20))
			failed := time.Now()
			at := <-set
			res <- result{setErr, err, failed.Sub(at)}
		})}
		cli, done := pipeConn(s)
		defer cli.Close()
		cli.Write(get(1, flags, "/")) // and never reads
		r := <-res
		if r.setErr != nil {
			t.Errorf("SetWriteDeadline: %v", r.setErr)
		}
		if !errors.Is(r.writeErr, os.ErrDeadlineExceeded) || r.late > 100*time.Millisecond {
			t.Errorf("blocked write ended %v after SetWriteDeadline(now) with %v; want os.ErrDeadlineExceeded at once", r.late, r.writeErr)
		}
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("ServeConn: %v, want the aborted write's error", err)
			}
		case <-time.After(time.Second):
			t.Error("connection still open after its only request's response was aborted")
		}
	})
}

// TestSetWriteDeadlineMultiplexed: on a multiplexed connection a request's
// write deadline ends that request only: its writes fail once the deadline
// has passed, it ends with END_REQUEST appStatus 1, and the other requests
// and the connection go on.
func TestSetWriteDeadlineMultiplexed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{}) // the other request runs until the aborted one ended
		writeErr := make(chan error, 1)
		mux := http.NewServeMux()
		mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "partial")
			http.NewResponseController(w).Flush()
			if err := http.NewResponseController(w).SetWriteDeadline(time.Now()); err != nil {
				t.Errorf("SetWriteDeadline: %v", err)
			}
			_, err := fmt.Fprint(w, "more")
			if err == nil {
				err = http.NewResponseController(w).Flush()
			}
			writeErr <- err
		})
		mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
			<-release
			fmt.Fprint(w, "other done")
		})
		s := &Server{Logger: quietLogger(), Multiplex: true, Handler: mux}
		cli, done := pipeConn(s)
		defer cli.Close()
		send(t, cli, cat(get(2, flagKeepConn, "/other"), get(1, flagKeepConn, "/abort")))
		tr := readTranscript(cli, endedCount(1))
		close(release)
		tr2 := readTranscript(cli, endedCount(1))
		tr.reqs[2] = tr2.reqs[2]
		if err := <-writeErr; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write after the deadline: %v, want os.ErrDeadlineExceeded", err)
		}
		if rp := tr.reqs[1]; rp == nil || !rp.ended || rp.appStatus != 1 || strings.Contains(rp.stdout.String(), "more") {
			t.Errorf("aborted request: %+v, want END_REQUEST appStatus 1 without the late write", rp)
		}
		if rp := tr.reqs[2]; rp == nil || !rp.ended || rp.appStatus != 0 || !strings.Contains(rp.stdout.String(), "other done") {
			t.Errorf("other request: %+v, want it complete", rp)
		}
		// The connection still serves.
		send(t, cli, get(3, 0, "/other"))
		tr = readTranscript(cli, nil)
		if rp := tr.reqs[3]; rp == nil || !rp.ended {
			t.Errorf("next request on the connection: %+v (%v)", rp, tr.err)
		}
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	})
}

// TestWriteTimeoutSettings: WriteTimeout 0 is the 60s default, a positive
// value bounds each record write, -1 turns the per-write timeout off.
func TestWriteTimeoutSettings(t *testing.T) {
	tests := []struct {
		name    string
		setting time.Duration
		want    time.Duration // 0: the write never times out
	}{
		{"default", 0, 60 * time.Second},
		{"five seconds", 5 * time.Second, 5 * time.Second},
		{"off", -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				type result struct {
					err  error
					took time.Duration
				}
				res := make(chan result, 2)
				s := &Server{WriteTimeout: tc.setting, Logger: quietLogger(),
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						start := time.Now()
						_, err := w.Write(make([]byte, 1<<20))
						res <- result{err, time.Since(start)}
					})}
				cli, done := pipeConn(s)
				cli.Write(get(1, 0, "/"))
				wait := func() (error, time.Duration, bool) {
					select {
					case r := <-res:
						return r.err, r.took, true
					case <-time.After(3 * time.Hour):
						return nil, 0, false
					}
				}
				err, took, ok := wait()
				switch {
				case tc.want == 0 && ok:
					t.Errorf("write to a peer that reads nothing ended after %v (%v), want no per-write timeout", took, err)
				case tc.want == 0:
					go io.Copy(io.Discard, cli)
					if err, _, ok := wait(); !ok || err != nil {
						t.Errorf("write once the peer reads: %v (ended %v)", err, ok)
					}
				case !ok || !errors.Is(err, os.ErrDeadlineExceeded) || took != tc.want:
					t.Errorf("write to a peer that reads nothing: %v after %v (ended %v), want a timeout after %v", err, took, ok, tc.want)
				}
				cli.Close()
				<-done
			})
		})
	}
}

// TestSetReadDeadlineEndsBodyRead: a handler (the FastCGI backend ending an
// exchange) interrupts a body read waiting for STDIN that does not come.
func TestSetReadDeadlineEndsBodyRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			setErr, readErr error
			late            time.Duration
		}
		res := make(chan result, 1)
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			set := make(chan time.Time, 1)
			var setErr error
			go func() {
				time.Sleep(time.Second)
				setErr = rc.SetReadDeadline(time.Now())
				set <- time.Now()
			}()
			_, err := io.ReadAll(r.Body)
			failed := time.Now()
			at := <-set
			res <- result{setErr, err, failed.Sub(at)}
		})}
		cli, done := pipeConn(s)
		defer cli.Close()
		p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/", "CONTENT_LENGTH", "100")
		send(t, cli, cat(begin(1, roleResponder, 0), paramsRecs(1, p), rec(typeStdin, 1, make([]byte, 10))))
		r := <-res
		if r.setErr != nil {
			t.Errorf("SetReadDeadline: %v", r.setErr)
		}
		if !errors.Is(r.readErr, os.ErrDeadlineExceeded) || r.late > 100*time.Millisecond {
			t.Errorf("blocked body read ended %v after SetReadDeadline(now) with %v; want os.ErrDeadlineExceeded at once", r.late, r.readErr)
		}
		cli.Close()
		<-done
	})
}
