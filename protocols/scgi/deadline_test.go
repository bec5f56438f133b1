package scgi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var discardLogger = slog.New(slog.DiscardHandler)

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

// TestHeadDeadlineIsTotal: read_timeout bounds the whole head from its
// first byte. A peer that trickles the head, never silent for a whole
// read_timeout, is cut off when a silent one would be; a slow head that
// completes in time is served.
func TestHeadDeadlineIsTotal(t *testing.T) {
	raw := []byte(request("GET", "/", ""))
	tests := []struct {
		name      string
		piece     int
		every     time.Duration
		wantServe bool
	}{
		{"a byte a second", 1, time.Second, false},
		{"in time", len(raw)/4 + 1, 900 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				served := false
				s := &Server{ReadTimeout: 3 * time.Second, IdleTimeout: time.Minute, Logger: discardLogger,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true })}
				client, server := net.Pipe()
				var wg sync.WaitGroup
				defer wg.Wait()
				defer client.Close()
				done := make(chan error, 1)
				go func() { done <- s.ServeConn(context.Background(), server) }()
				start := time.Now()
				wg.Go(func() { trickle(client, raw, tc.piece, tc.every) })
				wg.Go(func() { io.Copy(io.Discard, client) })
				err := <-done
				if tc.wantServe {
					if err != nil || !served {
						t.Errorf("slow head within read_timeout: served %v, err %v", served, err)
					}
					return
				}
				if served || !isTimeout(err) {
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
// when a script times out) makes a write blocked on a peer that never
// reads fail at once, not at write_timeout.
func TestSetWriteDeadlineAbortsBlockedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			setErr, writeErr error
			late             time.Duration
		}
		res := make(chan result, 1)
		s := &Server{WriteTimeout: 10 * time.Second, Logger: discardLogger,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		client, server := net.Pipe()
		defer client.Close()
		done := make(chan error, 1)
		go func() { done <- s.ServeConn(context.Background(), server) }()
		client.Write([]byte(request("GET", "/", ""))) // and never reads
		r := <-res
		if r.setErr != nil {
			t.Errorf("SetWriteDeadline: %v", r.setErr)
		}
		if !errors.Is(r.writeErr, os.ErrDeadlineExceeded) || r.late > 100*time.Millisecond {
			t.Errorf("blocked write ended %v after SetWriteDeadline(now) with %v; want os.ErrDeadlineExceeded at once", r.late, r.writeErr)
		}
		<-done
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
				res := make(chan result, 1)
				s := &Server{WriteTimeout: tc.setting, Logger: discardLogger,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						start := time.Now()
						_, err := w.Write(make([]byte, 1<<20))
						res <- result{err, time.Since(start)}
					})}
				client, server := net.Pipe()
				defer client.Close()
				done := make(chan error, 1)
				go func() { done <- s.ServeConn(context.Background(), server) }()
				client.Write([]byte(request("GET", "/", "")))
				checkWriteTimeout(t, client, tc.want, func() (error, time.Duration, bool) {
					select {
					case r := <-res:
						return r.err, r.took, true
					case <-time.After(3 * time.Hour):
						return nil, 0, false
					}
				})
				client.Close()
				<-done
			})
		})
	}
}

// checkWriteTimeout checks the result of a write to a peer that reads
// nothing: it fails with a timeout after want, or (want 0) is still
// blocked after hours and completes once the peer reads.
func checkWriteTimeout(t *testing.T, client net.Conn, want time.Duration, wait func() (error, time.Duration, bool)) {
	t.Helper()
	err, took, ok := wait()
	if want == 0 {
		if ok {
			t.Fatalf("write to a peer that reads nothing ended after %v (%v), want no per-write timeout", took, err)
		}
		go io.Copy(io.Discard, client)
		if err, _, ok := wait(); !ok || err != nil {
			t.Errorf("write once the peer reads: %v (ended %v)", err, ok)
		}
		return
	}
	if !ok || !errors.Is(err, os.ErrDeadlineExceeded) || took != want {
		t.Errorf("write to a peer that reads nothing: %v after %v (ended %v), want a timeout after %v", err, took, ok, want)
	}
}

// TestSetReadDeadlineEndsBodyRead: a handler (the FastCGI backend ending an
// exchange) interrupts a body read blocked on a peer that sends nothing.
func TestSetReadDeadlineEndsBodyRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			setErr, readErr error
			late            time.Duration
		}
		res := make(chan result, 1)
		s := &Server{Logger: discardLogger, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		client, server := net.Pipe()
		defer client.Close()
		done := make(chan error, 1)
		go func() { done <- s.ServeConn(context.Background(), server) }()
		raw := request("POST", "/", strings.Repeat("b", 100))
		client.Write([]byte(raw[:len(raw)-90])) // ten body bytes, then nothing
		go io.Copy(io.Discard, client)
		r := <-res
		if r.setErr != nil {
			t.Errorf("SetReadDeadline: %v", r.setErr)
		}
		if !errors.Is(r.readErr, os.ErrDeadlineExceeded) || r.late > 100*time.Millisecond {
			t.Errorf("blocked body read ended %v after SetReadDeadline(now) with %v; want os.ErrDeadlineExceeded at once", r.late, r.readErr)
		}
		client.Close()
		<-done
	})
}
