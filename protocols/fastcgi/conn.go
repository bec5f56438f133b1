package fastcgi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
	"github.com/junction-gw/junction/vars"
)

// conn is one served connection: the reader goroutine (serveConn) decodes
// records and dispatches them; each request's handler runs in its own
// goroutine and writes through the shared recordWriter.
type conn struct {
	srv *Server
	c   *connserver.Conn
	ctx context.Context // the connection's; requests derive theirs from it
	w   *recordWriter
	rr  *recordReader  // owned by serve's loop, lent to an inline request's watcher
	wg  sync.WaitGroup // request goroutines

	logOnce sync.Once
	logger  *slog.Logger // built on first use: most connections log nothing

	mu         sync.Mutex
	reqs       map[uint16]*request
	receiving  int       // requests in reqs whose STDIN has not ended
	heads      int       // requests in reqs whose PARAMS have not ended
	headBy     time.Time // the earliest head deadline of those
	closeAfter bool      // a request without KEEP_CONN ended: close when idle
	idleSince  time.Time // when reqs last became empty
	lastRead   time.Time // when the last record arrived
	served     int
	gen        uint64 // bumped (under mu) before wake

	// armed is the read deadline serve's loop last set, zero once it may
	// have passed; only that loop (and recordBegun, which it calls) touch
	// it. A deadline a little (up to slack) earlier than the wanted one is
	// kept rather than re-armed for every record: it only makes the loop
	// look again sooner (its timeout branch re-checks what is owed).
	armed time.Time
	slack time.Duration
}

// recordBegun bounds a record that began arriving in pieces from its
// first byte, before the reader waits for the rest of it.
func (cn *conn) recordBegun() {
	if dl, _, _, _ := cn.deadline(time.Now(), cn.rr.began); cn.armed.IsZero() || dl.Before(cn.armed) {
		if cn.c.SetReadDeadline(dl) == nil {
			cn.armed = dl
		}
	}
}

func (s *Server) serveConn(ctx context.Context, c *connserver.Conn) error {
	if err := s.peerAllowed(c); err != nil {
		return err
	}
	cn := &conn{
		srv:  s,
		c:    c,
		ctx:  ctx,
		reqs: make(map[uint16]*request),
	}
	// A failed write leaves a broken record stream: the connection ends
	// (the reader then sees it closed, and every request is cancelled).
	cn.w = &recordWriter{c: c, timeout: s.writeTimeout(), closeOnFail: true}
	debug := s.logger().Enabled(ctx, slog.LevelDebug)
	if debug {
		cn.log().Debug("connection accepted")
	}
	err := cn.serve()
	// Whatever ended the loop, nothing of this connection outlives it:
	// cancel every request (bodies fail, handlers see ctx.Done), close the
	// socket so pending writes fail fast, and wait for handlers.
	cn.cancelAll()
	if err != nil {
		c.Close()
	}
	cn.dropPending()
	cn.wg.Wait()
	cn.w.release()
	cn.mu.Lock()
	served := cn.served
	cn.mu.Unlock()
	if debug {
		cn.log().Debug("connection ended", "requests", served, "err", err)
	}
	return err
}

// cancelAll cancels every active request: their bodies fail and their
// handlers see ctx.Done. Requests that finished were cancelled then.
func (cn *conn) cancelAll() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, r := range cn.reqs {
		r.cancel()
	}
}

// log returns the connection's logger, which names the protocol and the
// peer.
func (cn *conn) log() *slog.Logger {
	cn.logOnce.Do(func() {
		cn.logger = cn.srv.logger().With("protocol", "fastcgi", "remote", cn.c.RemoteAddr().String())
	})
	return cn.logger
}

// readerPool holds the connections' record readers and their buffers:
// one per open connection, reused across connections.
var readerPool = sync.Pool{New: func() any { return newRecordReader(bufio.NewReaderSize(nil, 16<<10)) }}

func (cn *conn) serve() error {
	rr := readerPool.Get().(*recordReader)
	cn.rr = rr
	br := rr.r.(*bufio.Reader)
	br.Reset(cn.c)
	rr.hn, rr.bn = 0, 0
	defer func() { br.Reset(nil); rr.begun = nil; readerPool.Put(rr) }()
	now := time.Now()
	cn.idleSince, cn.lastRead = now, now
	if !cn.c.SetIdle(true) {
		return nil
	}
	cn.armed = time.Time{}
	cn.slack = cn.srv.readTimeout() / 8
	// A record arriving in pieces is bounded from its first byte, before
	// the reader waits for the rest of it.
	rr.begun = cn
	for {
		now := time.Now()
		dl, _, stop, gen := cn.deadline(now, rr.recordStart())
		if stop {
			return cn.w.failed() // a failed write (that closed the connection) is why it ends
		}
		if armed := cn.armed; armed.IsZero() || !armed.After(now) || armed.After(dl) || dl.Sub(armed) > cn.slack {
			if err := cn.c.SetReadDeadline(dl); err != nil {
				if closedConn(err) {
					// The peer closed the connection (a pipe refuses
					// deadlines then) or it was closed here: its end.
					return rr.closedErr()
				}
				return fmt.Errorf("fastcgi: setting read deadline: %w", err)
			}
			cn.armed = dl
		}
		if cn.generation() != gen {
			continue // the state changed (and maybe woke us) meanwhile
		}
		rec, n, err := rr.next()
		if n > 0 {
			cn.mu.Lock()
			cn.lastRead = time.Now()
			cn.mu.Unlock()
		}
		if err != nil {
			if werr := cn.w.failed(); werr != nil {
				return werr // a write failed and closed the connection: that is why
			}
			if !isTimeout(err) {
				if !rr.inRecord() && errors.Is(err, io.EOF) {
					return nil // peer closed between records
				}
				if !rr.inRecord() && errors.Is(err, syscall.ECONNRESET) && cn.idle() {
					// Reset with nothing owed: a close too. Caddy closes
					// after the end of STDOUT with END_REQUEST unread,
					// HAProxy resets idle kept connections.
					return nil
				}
				return err
			}
			// The deadline is also how the connection's state is looked
			// at again (a request finished, shutdown): decide whether
			// what is owed is overdue. Whoever moved it (this loop or
			// wake), it has passed.
			cn.armed = time.Time{}
			now := time.Now()
			dl, owed, stop, _ := cn.deadline(now, rr.recordStart())
			switch {
			case stop:
				return nil
			case owed != owesNothing && !now.Before(dl):
				return owed.overdue(cn.srv.readTimeout(), err)
			}
			continue
		}
		if err := cn.dispatch(rec); err != nil {
			return err
		}
	}
}

// closedConn reports errors of a connection that is closed, by the peer
// or here.
func closedConn(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// recordStart returns when the record being read began, zero between
// records.
func (rr *recordReader) recordStart() time.Time {
	if !rr.inRecord() {
		return time.Time{}
	}
	return rr.began
}

// closedErr is how a connection found closed ends: normally between
// records, cut inside one.
func (rr *recordReader) closedErr() error {
	if rr.inRecord() {
		return fmt.Errorf("fastcgi: connection closed inside a record: %w", io.ErrUnexpectedEOF)
	}
	return nil
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true // the usual case, checked without allocating
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// owing is what the peer owes by the reader's next deadline.
type owing uint8

const (
	owesNothing owing = iota // the deadline only makes the reader look again
	owesHead                 // the rest of a request head
	owesBody                 // more of a request body
	owesRecord               // the rest of a record that carries no body owed
)

// overdue is the error that ends a connection whose peer did not send
// what it owed within read_timeout rt; err is the read's.
func (o owing) overdue(rt time.Duration, err error) error {
	switch o {
	case owesHead:
		return fmt.Errorf("fastcgi: request head not complete %v after its first byte: %w", rt, err)
	case owesBody:
		return fmt.Errorf("fastcgi: no input for %v while a request body was owed: %w", rt, err)
	}
	return fmt.Errorf("fastcgi: record not complete %v after its first byte: %w", rt, err)
}

// deadline returns when the reader should next look at the connection,
// what the peer owes by then, and whether the connection should end now
// (idle too long, KEEP_CONN clear and done, or shutting down while idle).
// recordStart is when the record being read began (zero: none).
//
// What is owed follows the rule of every codec (connserver): a request
// head, from the first byte of BEGIN_REQUEST to the empty PARAMS record,
// must arrive whole within read_timeout; a request body must not pause
// longer than read_timeout; and a record that carries no body owed
// (BEGIN_REQUEST, PARAMS, management) must arrive whole within
// read_timeout of its first byte, so no trickle of bytes, however slow,
// holds the connection.
func (cn *conn) deadline(now, recordStart time.Time) (dl time.Time, owed owing, stop bool, gen uint64) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	rt := cn.srv.readTimeout()
	earliest := func(t time.Time, o owing) {
		if owed == owesNothing || t.Before(dl) {
			dl, owed = t, o
		}
	}
	if cn.heads > 0 {
		earliest(cn.headBy, owesHead)
	}
	switch {
	case cn.receiving > cn.heads:
		earliest(cn.lastRead.Add(rt), owesBody)
	case !recordStart.IsZero():
		earliest(recordStart.Add(rt), owesRecord)
	}
	if owed != owesNothing {
		return dl, owed, false, cn.gen
	}
	if len(cn.reqs) == 0 {
		if cn.closeAfter || cn.c.ShuttingDown() {
			return time.Time{}, owesNothing, true, cn.gen
		}
		end := cn.idleSince.Add(cn.srv.idleTimeout())
		return end, owesNothing, !now.Before(end), cn.gen
	}
	// Only handlers are running: nothing is owed by the peer, so look
	// again later without ending anything.
	return now.Add(rt), owesNothing, false, cn.gen
}

// alone reports whether r is the only request active on the connection:
// the socket is then r's to abort.
func (cn *conn) alone(r *request) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.reqs) == 1 && cn.reqs[r.id] == r
}

// endHeadLocked counts r's head as done (PARAMS ended, or r ended) and
// finds the next earliest head deadline. The caller holds cn.mu.
func (cn *conn) endHeadLocked(r *request) {
	r.inHead = false
	cn.heads--
	cn.headBy = time.Time{}
	for _, o := range cn.reqs {
		if o.inHead && (cn.headBy.IsZero() || o.headBy.Before(cn.headBy)) {
			cn.headBy = o.headBy
		}
	}
}

// generation counts state changes that move the reader's deadline.
func (cn *conn) generation() uint64 {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.gen
}

// wake makes the reader re-evaluate the connection state now.
func (cn *conn) wake() {
	if err := cn.c.SetReadDeadline(time.Now()); err != nil {
		cn.log().Debug("waking reader", "err", err)
	}
}

func (cn *conn) dispatch(rec record) error {
	if rec.ID == 0 {
		return cn.management(rec)
	}
	switch rec.Type {
	case typeBeginRequest:
		return cn.begin(rec)
	case typeAbortRequest, typeParams, typeStdin, typeData:
		cn.mu.Lock()
		r := cn.reqs[rec.ID]
		cn.mu.Unlock()
		if r == nil {
			// The spec: records for an inactive request id are ignored
			// (late STDIN after we answered early, ABORT racing END).
			return nil
		}
		switch rec.Type {
		case typeAbortRequest:
			cn.abort(r)
			return nil
		case typeParams:
			return cn.params(r, rec.content)
		case typeStdin:
			return cn.stdin(r, rec.content)
		default:
			return nil // DATA belongs to the FILTER role; a responder ignores it
		}
	default:
		return fmt.Errorf("%w: %v record for request %d", errUnexpectedRecord, rec.Type, rec.ID)
	}
}

// management answers records with request id 0.
func (cn *conn) management(rec record) error {
	switch rec.Type {
	case typeGetValues:
		cn.srv.cs.Event(eventGetValues)
		asked, err := parseNameValues(rec.content)
		if err != nil {
			return fmt.Errorf("fastcgi: GET_VALUES: %w", err)
		}
		return cn.w.write(typeGetValuesResult, 0, appendNameValues(nil, cn.srv.values(asked)))
	case typeBeginRequest, typeAbortRequest, typeParams, typeStdin, typeData:
		return fmt.Errorf("%w: %v record with request id 0", errUnexpectedRecord, rec.Type)
	default:
		var b [8]byte
		b[0] = byte(rec.Type)
		return cn.w.write(typeUnknownType, 0, b[:])
	}
}

// values answers the FCGI_GET_VALUES names the server knows.
func (s *Server) values(asked vars.Vars) vars.Vars {
	var out vars.Vars
	for _, kv := range asked {
		var v string
		switch kv.Name {
		case "FCGI_MAX_CONNS":
			if s.MaxConns <= 0 {
				continue // no cap: nothing true to say
			}
			v = strconv.Itoa(s.MaxConns)
		case "FCGI_MAX_REQS":
			v = strconv.Itoa(s.maxRequests())
		case "FCGI_MPXS_CONNS":
			v = "0"
			if s.Multiplex {
				v = "1"
			}
		default:
			continue
		}
		out = append(out, vars.Var{Name: kv.Name, Value: v})
	}
	return out
}

func (cn *conn) begin(rec record) error {
	if len(rec.content) != 8 {
		return fmt.Errorf("%w: BEGIN_REQUEST of %d bytes, want 8", ErrProtocol, len(rec.content))
	}
	role := binary.BigEndian.Uint16(rec.content[:2])
	keep := rec.content[2]&flagKeepConn != 0
	cn.mu.Lock()
	if _, busy := cn.reqs[rec.ID]; busy {
		cn.mu.Unlock()
		return fmt.Errorf("%w: BEGIN_REQUEST for request %d already in flight", errUnexpectedRecord, rec.ID)
	}
	active := len(cn.reqs)
	cn.mu.Unlock()

	// Refusals keep no state: a later record for this id is ignored as
	// inactive, so a peer spraying request ids costs nothing.
	refuse := func(status uint8) error {
		if !keep {
			cn.markCloseAfter()
		}
		cn.srv.cs.Event(endRequestEvent(status))
		return cn.w.endRequest(rec.ID, nil, 0, status)
	}
	switch {
	case role != roleResponder:
		return refuse(statusUnknownRole)
	case active > 0 && !cn.srv.Multiplex:
		return refuse(statusCantMpxConn)
	case active >= cn.srv.maxPerConn():
		return refuse(statusOverloaded)
	case !cn.srv.acquire():
		cn.log().Warn("request refused: server at max_requests", "max_requests", cn.srv.maxRequests())
		return refuse(statusOverloaded)
	}
	r := cn.newRequest(rec.ID, keep)
	// The head is bounded from the first byte of its BEGIN_REQUEST.
	r.headBy = connserver.HeadDeadline(cn.rr.began, cn.srv.readTimeout())
	r.inHead = true
	cn.mu.Lock()
	cn.reqs[rec.ID] = r
	cn.receiving++
	if cn.heads == 0 || r.headBy.Before(cn.headBy) {
		cn.headBy = r.headBy
	}
	cn.heads++
	cn.served++
	cn.mu.Unlock()
	cn.c.SetIdle(false)
	return nil
}

// idle reports whether no request is in flight on the connection.
func (cn *conn) idle() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.reqs) == 0
}

func (cn *conn) markCloseAfter() {
	cn.mu.Lock()
	cn.closeAfter = true
	cn.mu.Unlock()
}

func (cn *conn) params(r *request, p []byte) error {
	if r.paramsDone {
		return fmt.Errorf("%w: PARAMS record after the end of request %d's PARAMS", errUnexpectedRecord, r.id)
	}
	if len(p) > 0 {
		if r.tooBig || len(r.params)+len(p) > cn.srv.maxHeaderBytes() {
			// Keep reading to the end of the stream, then answer 431.
			r.tooBig = true
			r.params = nil
			return nil
		}
		r.params = append(r.params, p...)
		return nil
	}
	r.paramsDone = true
	cn.mu.Lock()
	if r.inHead {
		cn.endHeadLocked(r)
	}
	cn.mu.Unlock()
	if r.tooBig {
		cn.log().Warn("request refused: params larger than max_header_bytes", "request", r.id, "max_header_bytes", cn.srv.maxHeaderBytes())
		cn.srv.cs.DecodeError(reasonHeaderTooLarge)
		cn.start(r, errorHandler(431))
		return nil
	}
	// r.params is this request's own buffer, dropped here: the variables
	// may point into it.
	v, err := parseOwnedNameValues(r.params)
	r.params = nil
	if err != nil {
		return fmt.Errorf("fastcgi: request %d PARAMS: %w", r.id, err)
	}
	cn.startVars(r, v)
	return nil
}

func (cn *conn) stdin(r *request, p []byte) error {
	if !r.paramsDone {
		return fmt.Errorf("%w: STDIN before the end of request %d's PARAMS", errUnexpectedRecord, r.id)
	}
	if r.stdinDone {
		return fmt.Errorf("%w: STDIN record after the end of request %d's STDIN", errUnexpectedRecord, r.id)
	}
	if len(p) == 0 {
		cn.mu.Lock()
		r.stdinDone = true
		if !r.finished {
			// A request that ended early was counted out then.
			cn.receiving--
		}
		cn.mu.Unlock()
		r.body.end()
		if r.inline != nil {
			return cn.runInline(r)
		}
		return nil
	}
	if r.inline != nil {
		// A body after all: the request streams it from its own goroutine.
		h, req := r.inline, r.inlineReq
		r.inline, r.inlineReq = nil, nil
		cn.goRun(r, req, h)
	}
	cn.mu.Lock()
	alone := len(cn.reqs) == 1
	cn.mu.Unlock()
	if err := r.body.write(p, alone); err != nil {
		cn.log().Warn("request body failed; answering 503", "request", r.id, "err", err)
		cn.srv.cs.DecodeError(Reason(err))
		r.refused.Store(true)
		r.body.fail(err)
		r.cancel()
	}
	return nil
}

func (cn *conn) abort(r *request) {
	cn.srv.cs.Event(eventAbort)
	r.aborted.Store(true)
	r.cancel()
	r.inline, r.inlineReq = nil, nil
	if !r.started {
		// No handler yet: answer for it now.
		cn.finish(r, 1)
	}
}

// dropPending ends requests whose handler never started (PARAMS still
// arriving, or bad, when the connection ended), releasing their slots. It
// runs on the reader goroutine, which owns started.
func (cn *conn) dropPending() {
	cn.mu.Lock()
	var pending []*request
	for _, r := range cn.reqs {
		if !r.started {
			pending = append(pending, r)
		}
	}
	cn.mu.Unlock()
	for _, r := range pending {
		cn.finish(r, 1)
	}
}
