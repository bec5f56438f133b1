package fastcgi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// pipeConn runs s on one end of a pipe and returns the other end and a
// channel with ServeConn's result.
func pipeConn(s *Server) (net.Conn, chan error) {
	cli, srv := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), srv) }()
	return cli, done
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	go func() {
		if _, err := c.Write(b); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("write: %v", err)
		}
	}()
}

func TestMultiplexSlowRequestDoesNotStallOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		mux := http.NewServeMux()
		mux.Handle("/echo", testHandler())
		mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
			<-release // does not read its body until every other request is done
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			fmt.Fprintf(w, "n=%d sha=%x err=%v", n, h.Sum(nil), err)
		})
		s := &Server{Handler: mux, Logger: quietLogger(), Multiplex: true, MaxRequestsPerConn: 200}
		cli, done := pipeConn(s)

		const n = 100
		slowBody := bytes.Repeat([]byte("s"), 1<<20) // 4x bodyMemLimit: must spool
		bodies := make([][]byte, n+1)
		var in []byte
		for id := 1; id <= n; id++ {
			in = append(in, begin(uint16(id), roleResponder, flagKeepConn)...)
		}
		for id := 1; id <= n; id++ {
			path := "/echo"
			bodies[id] = bytes.Repeat([]byte{byte(id)}, 1000*id)
			if id == 1 {
				path, bodies[id] = "/slow", slowBody
			}
			p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", path, "CONTENT_LENGTH", itoa(len(bodies[id])))
			in = append(in, paramsRecs(uint16(id), p, 5)...)
		}
		// Interleave STDIN: round robin over ids, 4000-byte records.
		offs := make([]int, n+1)
		for left := true; left; {
			left = false
			for id := 1; id <= n; id++ {
				b := bodies[id]
				if offs[id] > len(b) {
					continue
				}
				end := min(offs[id]+4000, len(b))
				in = append(in, rec(typeStdin, uint16(id), b[offs[id]:end])...)
				if offs[id] == len(b) {
					offs[id]++ // the empty record above ended the stream
				} else {
					offs[id] = end
					left = true
				}
			}
		}
		send(t, cli, in)
		tr := readTranscript(cli, endedCount(n-1))
		if tr.err != nil {
			t.Fatalf("stream ended early: %v", tr.err)
		}
		for id := 2; id <= n; id++ {
			want := fmt.Sprintf("n=%d sha=%x", len(bodies[id]), sha256.Sum256(bodies[id]))
			if rp := tr.reqs[uint16(id)]; rp == nil || !rp.ended || !strings.Contains(rp.stdout.String(), want) {
				t.Fatalf("request %d did not complete with %q", id, want)
			}
		}
		if rp := tr.reqs[1]; rp != nil && rp.ended {
			t.Fatal("slow request ended before it was released")
		}
		close(release)
		tr2 := readTranscript(cli, endedCount(1))
		want := fmt.Sprintf("n=%d sha=%x err=<nil>", len(slowBody), sha256.Sum256(slowBody))
		if got := tr2.reqs[1].stdout.String(); !strings.Contains(got, want) {
			t.Errorf("slow request: %q, want %q", got, want)
		}
		cli.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
		if got := s.inflight.Load(); got != 0 {
			t.Errorf("inflight = %d after the connection ended", got)
		}
	})
}

func TestSpoolLimitFailsOnlyThatRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBody(-1, nil)
		b.memLimit, b.spoolLimit = 10, 20
		for _, chunk := range []string{"0123456789", "abcdefghij", "ABCDEFGHIJ"} {
			if err := b.write([]byte(chunk), false); err != nil {
				t.Fatalf("write %q: %v", chunk, err)
			}
		}
		if err := b.write([]byte("!"), false); !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("write beyond spool limit: %v, want ErrBodyTooLarge", err)
		}
		b.end()
		got, err := io.ReadAll(b)
		if err != nil || string(got) != "0123456789abcdefghijABCDEFGHIJ" {
			t.Fatalf("read %q, %v", got, err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAbortCancelsRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := make(chan error, 1)
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "started")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			seen <- r.Context().Err()
		})}
		cli, done := pipeConn(s)
		send(t, cli, get(1, flagKeepConn, "/"))
		readTranscript(cli, func(tr *transcript) bool { return tr.reqs[1] != nil && tr.reqs[1].stdout.Len() > 0 })
		send(t, cli, rec(typeAbortRequest, 1, nil))
		tr := readTranscript(cli, endedCount(1))
		if err := <-seen; !errors.Is(err, context.Canceled) {
			t.Errorf("handler context: %v, want canceled", err)
		}
		if rp := tr.reqs[1]; rp.appStatus != 1 || rp.protocolStatus != statusRequestComplete {
			t.Errorf("END_REQUEST app %d protocol %d, want 1 and 0", rp.appStatus, rp.protocolStatus)
		}
		// The connection is kept and serves the next request on the same id.
		send(t, cli, get(1, 0, "/"))
		cli.Close()
		if err := <-done; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("ServeConn: %v", err)
		}
	})
}

func TestKeepConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer()
		cli, done := pipeConn(s)
		for i := range 3 {
			send(t, cli, get(1, flagKeepConn, "/hello"))
			tr := readTranscript(cli, endedCount(1))
			if tr.err != nil || !strings.Contains(tr.reqs[1].stdout.String(), "hello") {
				t.Fatalf("request %d: %v %q", i, tr.err, tr.reqs[1].stdout.String())
			}
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("connection closed after a KEEP_CONN request: %v", err)
			default:
			}
		}
		send(t, cli, get(1, 0, "/hello"))
		tr := readTranscript(cli, nil)
		if !tr.reqs[1].ended || !errors.Is(tr.err, io.EOF) {
			t.Errorf("last request: ended %v, stream end %v; want END_REQUEST then EOF", tr.reqs[1].ended, tr.err)
		}
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	})
}

func TestTimeouts(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestServer()
			s.IdleTimeout = 7 * time.Second
			cli, done := pipeConn(s)
			send(t, cli, get(1, flagKeepConn, "/hello"))
			readTranscript(cli, endedCount(1))
			start := time.Now()
			if err := <-done; err != nil {
				t.Errorf("ServeConn: %v", err)
			}
			if d := time.Since(start); d != 7*time.Second {
				t.Errorf("idle connection closed after %v, want 7s", d)
			}
		})
	})
	t.Run("read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestServer()
			s.ReadTimeout = 3 * time.Second
			cli, done := pipeConn(s)
			start := time.Now()
			send(t, cli, cat(begin(1, roleResponder, 0), rec(typeParams, 1, nv("REQUEST_METHOD", "GET"))))
			err := <-done
			if err == nil || !strings.Contains(err.Error(), "request head not complete 3s after its first byte") {
				t.Errorf("ServeConn: %v, want a head timeout", err)
			}
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("stalled request dropped after %v, want 3s", d)
			}
			if got := s.inflight.Load(); got != 0 {
				t.Errorf("inflight = %d", got)
			}
			cli.Close()
		})
	})
	t.Run("long handler is not a read timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &Server{Logger: quietLogger(), ReadTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(10 * time.Minute)
				fmt.Fprint(w, "late")
			})}
			cli, done := pipeConn(s)
			send(t, cli, get(1, 0, "/"))
			tr := readTranscript(cli, nil)
			if rp := tr.reqs[1]; rp == nil || !strings.Contains(rp.stdout.String(), "late") {
				t.Errorf("long request lost: %+v", tr)
			}
			if err := <-done; err != nil {
				t.Errorf("ServeConn: %v", err)
			}
		})
	})
}

func TestStreamingFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		more := make(chan struct{})
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "first")
			w.(http.Flusher).Flush()
			<-more
			fmt.Fprint(w, "second")
		})}
		cli, done := pipeConn(s)
		send(t, cli, get(1, 0, "/"))
		tr := readTranscript(cli, func(tr *transcript) bool {
			return tr.reqs[1] != nil && strings.Contains(tr.reqs[1].stdout.String(), "first")
		})
		if !strings.HasPrefix(tr.reqs[1].stdout.String(), "Status: 200 OK\r\n") {
			t.Errorf("head: %q", tr.reqs[1].stdout.String())
		}
		close(more)
		tr = readTranscript(cli, nil)
		if got := tr.reqs[1].stdout.String(); got != "second" || !tr.reqs[1].ended {
			t.Errorf("rest: %q ended %v", got, tr.reqs[1].ended)
		}
		<-done
	})
}

func TestLimits(t *testing.T) {
	t.Run("per connection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &Server{Handler: testHandler(), Logger: quietLogger(), Multiplex: true, MaxRequestsPerConn: 3}
			cli, done := pipeConn(s)
			var in []byte
			for id := uint16(1); id <= 5; id++ {
				in = append(in, begin(id, roleResponder, flagKeepConn)...)
			}
			send(t, cli, in)
			tr := readTranscript(cli, endedCount(2))
			for id := uint16(4); id <= 5; id++ {
				if rp := tr.reqs[id]; rp == nil || rp.protocolStatus != statusOverloaded {
					t.Errorf("request %d: %+v, want OVERLOADED", id, rp)
				}
			}
			cli.Close()
			<-done
		})
	})
	t.Run("no multiplexing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &Server{Handler: testHandler(), Logger: quietLogger()}
			cli, done := pipeConn(s)
			send(t, cli, cat(begin(1, roleResponder, flagKeepConn), begin(2, roleResponder, flagKeepConn)))
			tr := readTranscript(cli, endedCount(1))
			if rp := tr.reqs[2]; rp == nil || rp.protocolStatus != statusCantMpxConn {
				t.Errorf("second request: %+v, want CANT_MPX_CONN", rp)
			}
			cli.Close()
			<-done
		})
	})
	t.Run("overall, thousands of unfinished ids", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &Server{Handler: testHandler(), Logger: quietLogger(), Multiplex: true, MaxRequests: 150, MaxRequestsPerConn: 100}
			a, doneA := pipeConn(s)
			b, doneB := pipeConn(s)
			var in []byte
			for id := 1; id <= 5000; id++ {
				in = append(in, begin(uint16(id), roleResponder, flagKeepConn)...)
				in = append(in, rec(typeParams, uint16(id), nv("REQUEST_METHOD", "GET"))...)
			}
			send(t, a, in)
			trA := readTranscript(a, endedCount(4900))
			send(t, b, in[:len(in)/50])
			trB := readTranscript(b, endedCount(50))
			synctest.Wait()
			if got := s.inflight.Load(); got != 150 {
				t.Errorf("inflight = %d, want 150", got)
			}
			for _, tr := range []*transcript{trA, trB} {
				for id, rp := range tr.reqs {
					if rp.protocolStatus != statusOverloaded {
						t.Fatalf("request %d: protocol status %d", id, rp.protocolStatus)
					}
				}
			}
			a.Close()
			b.Close()
			<-doneA
			<-doneB
			if got := s.inflight.Load(); got != 0 {
				t.Errorf("inflight = %d after both peers left", got)
			}
		})
	})
}

func TestPeerVanishesMidRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			ctxErr, readErr error
		}
		got := make(chan result, 1)
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			<-r.Context().Done()
			got <- result{r.Context().Err(), err}
		})}
		cli, done := pipeConn(s)
		p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/", "CONTENT_LENGTH", "100000")
		send(t, cli, cat(begin(1, roleResponder, flagKeepConn), paramsRecs(1, p), rec(typeStdin, 1, make([]byte, 500))))
		synctest.Wait()
		cli.Close()
		res := <-got
		if !errors.Is(res.ctxErr, context.Canceled) || res.readErr == nil {
			t.Errorf("handler saw ctx %v, body read %v; want canceled and an error", res.ctxErr, res.readErr)
		}
		<-done
		if n := s.inflight.Load(); n != 0 {
			t.Errorf("inflight = %d", n)
		}
		// synctest.Test fails if any goroutine of the bubble is left.
	})
}

func TestHandlerPanicClosesConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic("boom")
		})}
		tr, err := exchange(t, s, get(1, flagKeepConn, "/"))
		if tr.reqs[1] != nil && tr.reqs[1].ended {
			t.Error("END_REQUEST sent after a panic")
		}
		_ = err // the reader sees its socket closed; either result is fine
		if n := s.inflight.Load(); n != 0 {
			t.Errorf("inflight = %d", n)
		}
	})
}
