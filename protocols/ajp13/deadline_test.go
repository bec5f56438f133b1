package ajp13

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
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

// TestHeadDeadlineIsTotal: read_timeout bounds the whole FORWARD_REQUEST
// from its first byte, as in every codec; the packet header is part of
// it. A peer that trickles it is cut off when a silent one would be; a
// slow packet that completes in time is served.
func TestHeadDeadlineIsTotal(t *testing.T) {
	pkt := fwd(t, 2, "/", []string{"Host", "www.example.test", "User-Agent", "trickler"})
	tests := []struct {
		name      string
		piece     int
		every     time.Duration
		wantServe bool
	}{
		{"a byte a second", 1, time.Second, false},
		{"in time", len(pkt)/3 + 1, 900 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				served := false
				s := &Server{ReadTimeout: 3 * time.Second, IdleTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler),
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true })}
				cli, srv := net.Pipe()
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cli.Close()
				done := make(chan error, 1)
				go func() { done <- s.ServeConn(context.Background(), srv) }()
				start := time.Now()
				wg.Go(func() { trickle(cli, pkt, tc.piece, tc.every) })
				wg.Go(func() { io.Copy(io.Discard, cli) })
				if tc.wantServe {
					// A pooled connection: it stays open for the next
					// request until its idle timeout.
					err := <-done
					if err != nil || !served {
						t.Errorf("slow head within read_timeout: served %v, err %v", served, err)
					}
					return
				}
				err := <-done
				if served || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("trickled head: served %v, err %v; want a timeout", served, err)
				}
				if d := time.Since(start); d != 3*time.Second {
					t.Errorf("trickled head cut off after %v, want the 3s read_timeout from its first byte", d)
				}
			})
		})
	}
}

// TestSetWriteDeadlineAbortsBlockedWrite: a backend aborting a response
// (http.ResponseController.SetWriteDeadline(now), as the CGI backend does
// when a script times out) makes a write blocked on a web server that
// reads nothing fail at once, not at write_timeout, and the connection
// closes: the web server sees the response cut.
func TestSetWriteDeadlineAbortsBlockedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			setErr, writeErr error
			late             time.Duration
		}
		res := make(chan result, 1)
		s := &Server{WriteTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		p := startPeer(t, s)
		p.send(fwd(t, 2, "/", nil)) // and never reads
		r := <-res
		if r.setErr != nil {
			t.Errorf("SetWriteDeadline: %v", r.setErr)
		}
		if !errors.Is(r.writeErr, os.ErrDeadlineExceeded) || r.late > 100*time.Millisecond {
			t.Errorf("blocked write ended %v after SetWriteDeadline(now) with %v; want os.ErrDeadlineExceeded at once", r.late, r.writeErr)
		}
		select {
		case <-p.done:
		case <-time.After(time.Second):
			t.Error("connection still open after its response was aborted")
		}
		p.close()
	})
}

// TestWriteTimeoutSettings: WriteTimeout 0 is the 60s default, a positive
// value bounds each write, -1 turns the per-write timeout off.
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
				s := &Server{WriteTimeout: tc.setting, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					start := time.Now()
					_, err := w.Write(make([]byte, 1<<20))
					if err == nil {
						err = http.NewResponseController(w).Flush()
					}
					res <- result{err, time.Since(start)}
				})}
				p := startPeer(t, s)
				p.send(fwd(t, 2, "/", nil))
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
					t.Errorf("write to a web server that reads nothing ended after %v (%v), want no per-write timeout", took, err)
				case tc.want == 0:
					go io.Copy(io.Discard, p.c)
					if err, _, ok := wait(); !ok || err != nil {
						t.Errorf("write once the web server reads: %v (ended %v)", err, ok)
					}
				case !ok || !errors.Is(err, os.ErrDeadlineExceeded) || took != tc.want:
					t.Errorf("write to a web server that reads nothing: %v after %v (ended %v), want a timeout after %v", err, took, ok, tc.want)
				}
				p.close()
				<-p.done
			})
		})
	}
}

// TestSetReadDeadlineEndsBodyRead: a handler (the FastCGI backend ending an
// exchange) interrupts a body read waiting for a chunk that does not come.
func TestSetReadDeadlineEndsBodyRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			setErr, readErr error
			late            time.Duration
		}
		res := make(chan result, 1)
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		p := startPeer(t, s)
		go io.Copy(io.Discard, p.c)
		p.send(fwd(t, 4, "/", []string{"Content-Length", "100"})) // the first chunk never comes
		r := <-res
		if r.setErr != nil {
			t.Errorf("SetReadDeadline: %v", r.setErr)
		}
		if !errors.Is(r.readErr, os.ErrDeadlineExceeded) || r.late > 100*time.Millisecond {
			t.Errorf("blocked body read ended %v after SetReadDeadline(now) with %v; want os.ErrDeadlineExceeded at once", r.late, r.readErr)
		}
		p.close()
		<-p.done
	})
}
