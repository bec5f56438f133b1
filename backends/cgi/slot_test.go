package cgi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// stuckWriter is a ResponseWriter whose Write blocks until released, like
// a front connection whose reader stopped reading.
type stuckWriter struct {
	header  http.Header
	writing chan struct{} // closed when the first Write blocks
	once    sync.Once
	release chan struct{} // closed to fail every Write
	rel     sync.Once
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{header: http.Header{}, writing: make(chan struct{}), release: make(chan struct{})}
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}

func (w *stuckWriter) Write([]byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.release
	return 0, os.ErrDeadlineExceeded
}

// unblock fails the blocked Write and every later one.
func (w *stuckWriter) unblock() { w.rel.Do(func() { close(w.release) }) }

// deadlineWriter adds SetWriteDeadline to a stuckWriter, as net/http's
// writer has it: a deadline in the past fails the blocked Write.
type deadlineWriter struct{ *stuckWriter }

func (w deadlineWriter) SetWriteDeadline(t time.Time) error {
	if !t.After(time.Now()) {
		w.unblock()
	}
	return nil
}

// TestTimeoutFreesSlotWhenClientStopsReading: a response whose writes
// block forever (the reader stopped reading, write_timeout is off) does
// not keep the script's max_concurrent slot: when the script's timeout
// fires, it is killed and its slot is free within timeout + grace, while
// the write is still blocked. A writer that supports write deadlines has
// its blocked write failed, so that request ends too.
func TestTimeoutFreesSlotWhenClientStopsReading(t *testing.T) {
	checkLeaks(t)
	const timeout, grace = 2 * time.Second, 200 * time.Millisecond // time for the script to answer under load
	for _, deadlines := range []bool{false, true} {
		t.Run(fmt.Sprint("write deadlines ", deadlines), func(t *testing.T) {
			b, _ := newBackend(t, func(o *Options) {
				o.Timeout = timeout
				o.MaxConcurrent, o.MaxQueue, o.QueueTimeout = 1, 1, 30*time.Second
			})
			b.grace = grace
			sw := newStuckWriter()
			defer sw.unblock()
			var w http.ResponseWriter = sw
			if deadlines {
				w = deadlineWriter{sw}
			}
			first := make(chan error, 1)
			go func() { first <- b.Serve(w, request("GET", "/cgi-bin/env.cgi", nil, "headsleep")) }()
			select {
			case <-sw.writing:
			case err := <-first:
				t.Fatalf("first request ended before writing: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the script's output never reached the writer")
			}
			start := time.Now()
			rec := httptest.NewRecorder()
			err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "nostatus"))
			took := time.Since(start)
			if err != nil || rec.Body.String() != "<html>stats</html>" {
				t.Fatalf("second request: err %v body %q after %v: the stuck request kept its slot", err, rec.Body, took)
			}
			if took > timeout+grace+10*time.Second { // generous (a busy machine spawns slowly), far below the queue timeout a kept slot would hit
				t.Errorf("the slot was free after %v, want within timeout %v + grace %v", took, timeout, grace)
			}
			if deadlines {
				select {
				case err := <-first:
					if err != nil {
						t.Errorf("first request: %v, want nil (its response had started)", err)
					}
				case <-time.After(2 * time.Second):
					t.Error("the blocked write was not failed with a write deadline")
				}
				return
			}
			select {
			case err := <-first:
				t.Fatalf("first request returned (%v) while its write is still blocked", err)
			default:
			}
			sw.unblock()
			<-first
		})
	}
}
