package fastcgi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/vars"
)

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
	refused  atomic.Bool   // its body could not be spooled: answer 503
	finished bool          // guarded by cn.mu
	inHead   bool          // guarded by cn.mu: BEGIN_REQUEST came, PARAMS have not ended
	headBy   time.Time     // when its head must be complete (connserver.HeadDeadline)
	noReuse  bool          // the response broke its framing: close the connection after it
	wd       writeDeadline // guarded by cn.w.dlMu
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
		// The response did not go out whole (its write deadline passed
		// while it shared the connection, or the connection failed).
		cn.log().Debug("finishing response", "request", r.id, "err", err)
		appStatus = 1
	}
	if r.aborted.Load() {
		appStatus = 1
	}
	cn.finishWith(r, appStatus, tail)
	w.release()
}

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
	alone := len(cn.reqs) == 1
	delete(cn.reqs, r.id)
	if !r.stdinDone {
		cn.receiving--
	}
	if r.inHead {
		cn.endHeadLocked(r)
	}
	if !r.keep || r.noReuse {
		cn.closeAfter = true
	}
	idle := len(cn.reqs) == 0
	if idle {
		cn.idleSince = time.Now()
		cn.gen++
	}
	cn.mu.Unlock()

	cn.srv.cs.Event(endRequestEvent(statusRequestComplete))
	if err := cn.w.endRequestFor(r, alone, r.id, tail, appStatus, statusRequestComplete); err != nil {
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
