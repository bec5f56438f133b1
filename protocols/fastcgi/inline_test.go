package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// blockingServer's handler writes "started", flushes, and waits for its
// context; the context's error arrives on the channel.
func blockingServer() (*Server, chan error) {
	seen := make(chan error, 1)
	s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "started")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		seen <- r.Context().Err()
	})}
	return s, seen
}

// TestInlineAbort: a lone GET without KEEP_CONN runs on the reader's
// goroutine; ABORT_REQUEST still cancels it once the watcher reads it.
func TestInlineAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, seen := blockingServer()
		cli, done := pipeConn(s)
		send(t, cli, get(1, 0, "/"))
		readTranscript(cli, func(tr *transcript) bool { return tr.reqs[1] != nil && tr.reqs[1].stdout.Len() > 0 })
		start := time.Now()
		send(t, cli, rec(typeAbortRequest, 1, nil))
		tr := readTranscript(cli, nil)
		if err := <-seen; !errors.Is(err, context.Canceled) {
			t.Errorf("handler context: %v, want canceled", err)
		}
		if waited := time.Since(start); waited > watchDelay {
			t.Errorf("abort noticed after %v, more than watchDelay %v", waited, watchDelay)
		}
		if rp := tr.reqs[1]; rp == nil || !rp.ended || rp.appStatus != 1 {
			t.Errorf("END_REQUEST missing or app status not 1: %+v", rp)
		}
		if !errors.Is(tr.err, io.EOF) {
			t.Errorf("stream ended with %v, want the connection closed", tr.err)
		}
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	})
}

// TestInlinePeerCloses: the web server closing the connection (nginx does
// when its client goes away) cancels an inline request.
func TestInlinePeerCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, seen := blockingServer()
		cli, done := pipeConn(s)
		send(t, cli, get(1, 0, "/"))
		readTranscript(cli, func(tr *transcript) bool { return tr.reqs[1] != nil && tr.reqs[1].stdout.Len() > 0 })
		cli.Close()
		if err := <-seen; !errors.Is(err, context.Canceled) {
			t.Errorf("handler context: %v, want canceled", err)
		}
		<-done
		if n := s.inflight.Load(); n != 0 {
			t.Errorf("inflight = %d", n)
		}
	})
}

// TestInlineManagementRecord: a management record that arrives while an
// inline request runs is answered by the watcher, and a second
// BEGIN_REQUEST is refused as without multiplexing.
func TestInlineManagementRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "started")
			w.(http.Flusher).Flush()
			<-release
			fmt.Fprint(w, " done")
		})}
		cli, done := pipeConn(s)
		send(t, cli, get(1, 0, "/"))
		readTranscript(cli, func(tr *transcript) bool { return tr.reqs[1] != nil && tr.reqs[1].stdout.Len() > 0 })
		send(t, cli, cat(rec(typeGetValues, 0, nv("FCGI_MPXS_CONNS", "")), begin(2, roleResponder, 0)))
		tr := readTranscript(cli, func(tr *transcript) bool { return len(tr.mgmt) > 0 && tr.reqs[2] != nil && tr.reqs[2].ended })
		if !strings.Contains(string(tr.mgmt[0].content), "FCGI_MPXS_CONNS") {
			t.Errorf("GET_VALUES_RESULT %q", tr.mgmt[0].content)
		}
		if got := tr.reqs[2].protocolStatus; got != statusCantMpxConn {
			t.Errorf("second request: protocol status %d, want %d", got, statusCantMpxConn)
		}
		close(release)
		tr = readTranscript(cli, nil)
		if rp := tr.reqs[1]; rp == nil || !rp.ended || rp.stdout.String() != " done" {
			t.Errorf("first request after the records: %+v", rp)
		}
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	})
}

// TestInlineBodyWithoutLength: STDIN data for a request that announced no
// body (no CONTENT_LENGTH, so its body is empty, RFC 3875 4.2) hands it
// to a goroutine of its own; the data is dropped and the request answered.
func TestInlineBodyWithoutLength(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{Logger: quietLogger(), Handler: testHandler()}
		p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/echo")
		tr, err := exchange(t, s, cat(begin(1, roleResponder, 0), paramsRecs(1, p), stdinRecs(1, make([]byte, 300<<10), 65535)))
		if err != nil {
			t.Fatalf("ServeConn: %v", err)
		}
		if rp := tr.reqs[1]; rp == nil || !rp.ended || !strings.Contains(rp.stdout.String(), "n=0 ") {
			t.Errorf("reply %+v", rp)
		}
	})
}

// TestInlineRunsOnReader: a lone GET without KEEP_CONN runs on the
// goroutine that read it (its stack goes through the reader loop), one
// with KEEP_CONN on a goroutine of its own.
func TestInlineRunsOnReader(t *testing.T) {
	stacks := make(chan string, 1)
	s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		stacks <- string(buf[:runtime.Stack(buf, false)])
	})}
	for _, tt := range []struct {
		flags    byte
		onReader bool
	}{{0, true}, {flagKeepConn, false}} {
		cli, done := pipeConn(s)
		send(t, cli, get(1, tt.flags, "/"))
		stack := <-stacks
		readTranscript(cli, endedCount(1))
		cli.Close()
		<-done
		if got := strings.Contains(stack, "fastcgi.(*conn).serve("); got != tt.onReader {
			t.Errorf("flags %#x: handler on the reader's goroutine = %v, want %v\n%s", tt.flags, got, tt.onReader, stack)
		}
	}
}
