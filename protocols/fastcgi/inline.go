package fastcgi

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// runInline runs the request held by run on the reader's goroutine, now
// that its input is complete. While it runs nothing reads the connection,
// so after watchDelay a watcher takes over reading: the peer closing the
// connection (nginx does when its client goes away) or sending
// ABORT_REQUEST still cancels the request. It returns the error that ends
// the connection, if the watcher met one.
func (cn *conn) runInline(r *request) (err error) {
	h, req := r.inline, r.inlineReq
	r.inline, r.inlineReq = nil, nil
	cn.failBodyOnCancel(r)
	r.started = true
	r.onReader = true
	w := &watcher{cn: cn, r: r, done: make(chan struct{})}
	// The watcher reads without deadlines: no record it meets is bounded
	// on its own (its request runs; others are refused).
	begun := cn.rr.begun
	cn.rr.begun = nil
	defer func() { cn.rr.begun = begun }()
	w.timer = time.AfterFunc(watchDelay, w.run)
	// Deferred so that even a handler ending its goroutine
	// (runtime.Goexit) stops the watcher before serve gives the record
	// reader back to its pool.
	defer func() {
		if werr := w.stop(); err == nil {
			err = werr
		}
	}()
	cn.serveRequest(r, req, h)
	return nil
}

// watchDelay is how long an inline request runs before a watcher reads
// the connection for it: the longest a peer's close or ABORT_REQUEST goes
// unnoticed.
const watchDelay = 10 * time.Millisecond

// watcher reads the connection while an inline request runs on the
// reader's goroutine. The record reader is free then: the reader is
// inside dispatch, running the request.
type watcher struct {
	cn    *conn
	r     *request
	timer *time.Timer
	done  chan struct{} // closed when run returns

	mu       sync.Mutex
	stopping bool
	err      error // what ends the connection
}

func (w *watcher) run() {
	defer close(w.done)
	cn := w.cn
	// No deadline while the request runs: its handler bounds it.
	if !w.setDeadline(time.Time{}) {
		return
	}
	for {
		rec, _, err := cn.rr.next()
		if err != nil {
			w.mu.Lock()
			stopping := w.stopping
			w.mu.Unlock()
			if isTimeout(err) {
				if stopping || !w.setDeadline(time.Time{}) {
					return
				}
				continue
			}
			// The peer closed the connection or it broke: nobody waits
			// for this response any more.
			w.fail(err)
			return
		}
		if err := cn.dispatch(rec); err != nil {
			w.fail(err)
			return
		}
	}
}

// setDeadline sets the read deadline unless stop has begun. A connection
// that cannot take one is broken: the request is cancelled.
func (w *watcher) setDeadline(t time.Time) bool {
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		return false
	}
	err := w.cn.c.SetReadDeadline(t)
	w.mu.Unlock()
	if err != nil {
		w.fail(fmt.Errorf("fastcgi: setting read deadline: %w", err))
		return false
	}
	return true
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.r.cancel()
}

// stop ends the watcher, if it started, and returns what it met. The
// connection is not reused, so an unread partial record left behind does
// not matter.
func (w *watcher) stop() error {
	if w.timer.Stop() {
		return nil // it never ran
	}
	w.mu.Lock()
	w.stopping = true
	_ = w.cn.c.SetReadDeadline(aLongTimeAgo) // a closed connection fails the read anyway
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil && (errors.Is(w.err, io.EOF) || closedConn(w.err)) {
		return nil // the peer hung up: nothing more to say on the connection
	}
	return w.err
}

// aLongTimeAgo is a deadline that fails a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)
