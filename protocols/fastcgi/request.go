package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/vars"
)

// errAborted is returned by writes after ABORT_REQUEST.
var errAborted = errors.New("fastcgi: request aborted by the web server")

// errRefused is returned by writes after the request's body could not be
// spooled (spool limit, SpoolBudget): the request is answered 503.
var errRefused = errors.New("fastcgi: request refused: its body could not be spooled")

// request is the state of one active request id on a connection. Fields
// below are touched by the reader goroutine only, except where noted.
type request struct {
	cn     *conn
	id     uint16
	keep   bool
	ctx    context.Context
	cancel context.CancelFunc

	params     []byte // PARAMS so far, bounded by MaxHeaderBytes
	paramsDone bool
	started    bool // a handler goroutine owns the request's end
	// inline holds the handler of a request that will run on the
	// reader's goroutine once its empty STDIN record arrives (see run).
	inline    http.Handler
	inlineReq *http.Request
	onReader  bool // runs (ran) inline: its end needs no wake-up
	tooBig    bool
	stdinDone bool // guarded by cn.mu (read by inputOverdue)
	body      *body

	aborted  atomic.Bool
	refused  atomic.Bool // its body could not be spooled: answer 503
	finished bool        // guarded by cn.mu
}

func (cn *conn) newRequest(id uint16, keep bool) *request {
	ctx, cancel := context.WithCancel(cn.ctx)
	return &request{cn: cn, id: id, keep: keep, ctx: ctx, cancel: cancel}
}

// startVars builds the *http.Request from PARAMS and runs the Handler.
func (cn *conn) startVars(r *request, v vars.Vars) {
	if dedup, dropped := v.LastWins(); dropped {
		cn.log().Debug("repeated params: the last value of each wins", "request", r.id)
		v = dedup
	}
	for i := range v {
		if v[i].Name == "SCRIPT_FILENAME" {
			v[i].Value = stripProxyScheme(v[i].Value)
		}
	}
	want := int64(-1)
	if cl, ok := v.Lookup("CONTENT_LENGTH"); ok && cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			want = n
		}
	}
	r.body = newBody(want, cn.srv.SpoolBudget)
	req, err := vars.Request(r.ctx, v, r.body)
	if err != nil {
		cn.log().Warn("bad request", "request", r.id, "err", err)
		cn.srv.cs.DecodeError(Reason(fmt.Errorf("%w: %w", errBadRequest, err)))
		cn.run(r, stubRequest(r), errorHandler(http.StatusBadRequest))
		return
	}
	cn.run(r, req, cn.srv.Handler)
}

// start runs h for a request that has no usable PARAMS.
func (cn *conn) start(r *request, h http.Handler) {
	r.body = newBody(-1, cn.srv.SpoolBudget)
	cn.run(r, stubRequest(r), h)
}

func stubRequest(r *request) *http.Request {
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Proto: "HTTP/1.0",
		ProtoMajor: 1, Header: make(http.Header), Body: r.body, RequestURI: "/"}
	return req.WithContext(r.ctx)
}

// errorHandler answers a request junction refuses before the Handler.
func errorHandler(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, http.StatusText(code), code)
	})
}

// run starts h for the request. A request that is alone on a connection
// the peer will not reuse (KEEP_CONN clear, no multiplexing) and that
// announces no body (nginx's GETs) waits for its empty STDIN record and then
// runs on the reader's goroutine (runInline): no goroutine hand-off at its
// start and no wake-up of the reader at its end. Every other request gets
// its own goroutine at once.
func (cn *conn) run(r *request, req *http.Request, h http.Handler) {
	cn.mu.Lock()
	alone := len(cn.reqs) == 1
	cn.mu.Unlock()
	if alone && !r.keep && !cn.srv.Multiplex && req.ContentLength == 0 && !r.stdinDone {
		r.inline, r.inlineReq = h, req
		return
	}
	cn.goRun(r, req, h)
}

// goRun runs h for the request on a goroutine of its own.
func (cn *conn) goRun(r *request, req *http.Request, h http.Handler) {
	cn.failBodyOnCancel(r)
	r.started = true
	cn.wg.Add(1)
	go func() {
		defer cn.wg.Done()
		cn.serveRequest(r, req, h)
	}()
}

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

// failBodyOnCancel makes a cancelled request (ABORT_REQUEST, lost
// connection) fail its body, so a handler blocked reading it, and the
// reader blocked feeding it, both move on.
func (cn *conn) failBodyOnCancel(r *request) {
	context.AfterFunc(r.ctx, func() {
		if r.body.isClosed() {
			return // the request ended: nothing reads or feeds the body
		}
		r.body.fail(fmt.Errorf("fastcgi: request %d body: %w", r.id, context.Cause(r.ctx)))
	})
}

// serveRequest runs h, ends the response and the request.
func (cn *conn) serveRequest(r *request, req *http.Request, h http.Handler) {
	w := newResponse(r, req)
	appStatus := uint32(0)
	func() {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			appStatus = 1
			if p != http.ErrAbortHandler {
				cn.log().Error("handler panic; closing connection", "request", r.id,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			// The response stream is in an unknown state: end the
			// connection rather than the record stream.
			cn.cancelAll()
			cn.c.Close()
		}()
		h.ServeHTTP(w, req)
	}()
	tail, err := w.finish()
	if err != nil {
		cn.log().Debug("finishing response", "request", r.id, "err", err)
	}
	if r.aborted.Load() {
		appStatus = 1
	}
	cn.finishWith(r, appStatus, tail)
	w.release()
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
	if w.err != nil && (errors.Is(w.err, io.EOF) || errors.Is(w.err, net.ErrClosed)) {
		return nil // the peer hung up: nothing more to say on the connection
	}
	return w.err
}

// aLongTimeAgo is a deadline that fails a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// finish sends END_REQUEST, makes the id inactive and frees its slot. It
// runs once per accepted request.
func (cn *conn) finish(r *request, appStatus uint32) { cn.finishWith(r, appStatus, nil) }

// finishWith is finish for a handler's request: tail, when not nil, is the
// rest of its STDOUT stream, sent with the empty STDOUT record that ends
// the stream and END_REQUEST in one write.
func (cn *conn) finishWith(r *request, appStatus uint32, tail *stdoutTail) {
	cn.mu.Lock()
	if r.finished {
		cn.mu.Unlock()
		return
	}
	r.finished = true
	delete(cn.reqs, r.id)
	if !r.stdinDone {
		cn.receiving--
	}
	if !r.keep {
		cn.closeAfter = true
	}
	idle := len(cn.reqs) == 0
	if idle {
		cn.idleSince = time.Now()
		cn.gen++
	}
	cn.mu.Unlock()

	cn.srv.cs.Event(endRequestEvent(statusRequestComplete))
	if err := cn.w.endRequest(r.id, tail, appStatus, statusRequestComplete); err != nil {
		cn.log().Debug("writing END_REQUEST", "request", r.id, "err", err)
	}
	cn.srv.release()
	if r.body != nil {
		if err := r.body.Close(); err != nil {
			cn.log().Warn("closing request body", "request", r.id, "err", err)
		}
	}
	r.cancel()
	if idle {
		// Let the reader switch to the idle deadline, or end the
		// connection (KEEP_CONN clear, or shutting down). An inline
		// request runs on the reader, which looks again when it returns.
		cn.c.SetIdle(true)
		if !r.onReader {
			cn.wake()
		}
	}
}

// response is the http.ResponseWriter of one request. The head goes out
// CGI-style on STDOUT before the first body byte or flush.
type response struct {
	r           *request
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	headSent    bool
	bw          *bufio.Writer // nil once the handler returned
	pooled      *bufio.Writer // bw, kept until release
	tail        stdoutTail
}

var stdoutPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

func newResponse(r *request, req *http.Request) *response {
	w := &response{r: r, req: req, header: make(http.Header)}
	w.bw = stdoutPool.Get().(*bufio.Writer)
	w.bw.Reset(stdoutWriter{w: r.cn.w, id: r.id, tail: &w.tail})
	w.pooled = w.bw
	return w
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 200 {
		// Informational responses have no CGI form; the final one follows.
		return
	}
	w.wroteHeader = true
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.bw == nil {
		return 0, fmt.Errorf("fastcgi: write after the handler returned")
	}
	if w.r.aborted.Load() {
		return 0, errAborted
	}
	if w.r.refused.Load() {
		return 0, errRefused
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if _, ok := w.header["Content-Type"]; !ok && len(p) > 0 && w.header.Get("Content-Encoding") == "" {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		if err := w.sendHead(); err != nil {
			return 0, err
		}
	}
	return w.bw.Write(p)
}

// sendHead writes "Status: NNN Text" and the header fields.
func (w *response) sendHead() error {
	w.headSent = true
	var b bytes.Buffer
	b.WriteString("Status: ")
	b.WriteString(strconv.Itoa(w.status))
	if t := http.StatusText(w.status); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	b.WriteString("\r\n")
	w.header.Del("Status")
	for k := range w.header {
		if !validFieldName(k) {
			w.r.cn.log().Warn("dropping response header with an invalid name", "request", w.r.id, "name", k)
			delete(w.header, k)
		}
	}
	// Header.Write sorts fields and replaces CR/LF in values.
	if err := w.header.Write(&b); err != nil {
		return fmt.Errorf("fastcgi: encoding response head: %w", err)
	}
	b.WriteString("\r\n")
	_, err := w.bw.Write(b.Bytes())
	return err
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

// Flush sends what is buffered now (http.Flusher).
func (w *response) Flush() {
	if err := w.FlushError(); err != nil {
		w.r.cn.log().Debug("flush", "request", w.r.id, "err", err)
	}
}

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if w.bw == nil {
		return fmt.Errorf("fastcgi: flush after the handler returned")
	}
	if w.r.aborted.Load() {
		return errAborted
	}
	if w.r.refused.Load() {
		return errRefused
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if err := w.sendHead(); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}

// finish sends the head if the handler wrote nothing and returns the
// unsent rest of the STDOUT stream, which END_REQUEST's write carries
// (nil: the stream is not to be ended). The response takes no more writes;
// release returns its buffer once the tail is sent.
func (w *response) finish() (*stdoutTail, error) {
	defer func() { w.bw = nil }()
	if w.r.aborted.Load() {
		return nil, errAborted
	}
	if w.r.refused.Load() && !w.headSent {
		w.refuse()
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if err := w.sendHead(); err != nil {
			return nil, err
		}
	}
	w.tail.hold = true
	if err := w.bw.Flush(); err != nil {
		return nil, err
	}
	return &w.tail, nil
}

// refuse replaces a response not yet started with 503 Service Unavailable
// for a request whose body could not be spooled. The handler has
// returned: its header fields are dropped with its status.
func (w *response) refuse() {
	w.header = http.Header{
		"Content-Type":   {"text/plain; charset=utf-8"},
		"Retry-After":    {"1"},
		"Content-Length": {strconv.Itoa(len(refusedBody))},
	}
	w.status, w.wroteHeader = http.StatusServiceUnavailable, true
	if err := w.sendHead(); err == nil {
		_, _ = w.bw.WriteString(refusedBody) // a failure shows in finish's Flush
	}
}

const refusedBody = "503 Service Unavailable\n"

// release returns the response's buffer to the pool.
func (w *response) release() {
	w.tail = stdoutTail{}
	w.pooled.Reset(nil)
	stdoutPool.Put(w.pooled)
	w.pooled = nil
}
