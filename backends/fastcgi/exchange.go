package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/backends/internal/cgiresp"
)

// bodyBufSize is the stdout buffer: one read from it is at most one
// record's content, written and flushed at once.
const bodyBufSize = 32 << 10

var stdoutPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bodyBufSize) }}

// exchange sends the request on conn and relays the response. conn is
// closed, or kept for the next request when the exchange ended cleanly
// and keep-alive is on; reused says it was kept from an earlier one.
// Every goroutine it starts has ended when it returns.
func (b *Backend) exchange(w http.ResponseWriter, r *http.Request, conn net.Conn, s cgienv.Script, reused bool) error {
	ctx := r.Context()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.Close() // wakes the reads below; their error is reported instead
	})
	defer stop()

	in, err := b.send(r, conn, s)
	if err != nil {
		_ = conn.Close() // nothing was sent that could be kept
		return b.sendError(ctx, s, reused, err)
	}

	rr := newResponseReader(conn, b.timeout, func(p []byte) { b.logStderr(s.Name, p) })
	defer rr.release()
	br := stdoutPool.Get().(*bufio.Reader)
	br.Reset(rr)
	defer func() {
		br.Reset(nil)
		stdoutPool.Put(br)
	}()

	resp, err := cgiresp.Parse(br, b.limits)
	if err != nil {
		finish(w, conn, in)
		return b.headError(ctx, s, rr, in, reused, err)
	}
	if resp.LocalRedirect != "" {
		finish(w, conn, in)
		return cgienv.LocalRedirect(r, resp.LocalRedirect)
	}
	resp.WriteHead(w)
	// Every STDOUT record is flushed, so streaming scripts stream.
	werr, rerr := resp.CopyBody(w, br, nil)
	if werr == nil && rerr == nil && b.reusable(rr, in) && stop() {
		b.keep(conn)
	} else {
		finish(w, conn, in)
	}
	b.logEnd(ctx, s, rr, in, werr, rerr)
	return nil
}

// finish ends an exchange whose connection is not kept: it closes conn
// and waits for the body writer, if any. A writer still waiting for the
// client's body is interrupted where the front end's ResponseWriter
// supports read deadlines; elsewhere the wait ends with the front end's
// own read deadline or the client's next bytes.
func finish(w http.ResponseWriter, conn net.Conn, in *stdin) {
	if in != nil {
		in.stop()
	}
	_ = conn.Close() // ends the writer's writes; nothing buffered is worth keeping
	if in == nil {
		return
	}
	select {
	case <-in.done:
	default:
		_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // ErrNotSupported: see above
		<-in.done
	}
}

// sendError turns a failure to send the request head into Serve's error.
func (b *Backend) sendError(ctx context.Context, s cgienv.Script, reused bool, err error) error {
	switch {
	case ctx.Err() != nil:
		return backends.ContextError(ctx, "fastcgi: "+b.addr+": "+s.Name)
	case reused:
		err = fmt.Errorf("%w: %w", errStale, err)
	}
	return &backends.Error{Status: http.StatusBadGateway, Err: err}
}

// headError turns a failure before the response head into Serve's
// error. The body writer, if any, is done.
func (b *Backend) headError(ctx context.Context, s cgienv.Script, rr *responseReader, in *stdin, reused bool, err error) error {
	switch {
	case ctx.Err() != nil:
		return backends.ContextError(ctx, "fastcgi: "+b.addr+": "+s.Name)
	case in != nil && errors.Is(in.err, ErrClientBody):
		return &backends.ClientError{Err: fmt.Errorf("fastcgi: %s: %s: %w", b.addr, s.Name, in.err)}
	case reused && !rr.got && !errors.Is(err, os.ErrDeadlineExceeded):
		return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("fastcgi: %s: %s: %w: %w", b.addr, s.Name, errStale, err)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("fastcgi: %s: %s: no response within %v: %w", b.addr, s.Name, b.timeout, err)}
	case rr.ended && (rr.protoStatus == statusOverloaded || rr.protoStatus == statusCantMpxConn):
		if in == nil || !in.started.Load() {
			return fmt.Errorf("fastcgi: %s: END_REQUEST protocol status %d: %w", b.addr, rr.protoStatus, backends.ErrOverloaded)
		}
		// The body is gone: the same request cannot be sent elsewhere.
		return backends.Errorf(http.StatusServiceUnavailable, "fastcgi: %s: instance overloaded (protocol status %d)", b.addr, rr.protoStatus)
	case rr.ended && rr.protoStatus == statusUnknownRole:
		return backends.Errorf(http.StatusBadGateway, "fastcgi: %s: instance does not serve the RESPONDER role", b.addr)
	}
	b.log.Warn("fastcgi: no valid response head", "script", s.Name, "err", err)
	return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("fastcgi: %s: %s: %w", b.addr, s.Name, err)}
}

// logEnd logs how a relayed response ended, when not cleanly. The body
// writer, if any, is done.
func (b *Backend) logEnd(ctx context.Context, s cgienv.Script, rr *responseReader, in *stdin, werr, rerr error) {
	var inErr error
	if in != nil {
		inErr = in.err
	}
	switch {
	case ctx.Err() != nil:
		b.log.Info("fastcgi: client went away", "script", s.Name, "err", context.Cause(ctx))
	case errors.Is(inErr, ErrClientBody):
		b.log.Info("fastcgi: reading the request body failed", "script", s.Name, "err", inErr)
	case werr != nil:
		b.log.Info("fastcgi: writing to the client", "script", s.Name, "err", werr)
	case rerr != nil:
		b.log.Warn("fastcgi: response ended early", "script", s.Name, "err", rerr)
	case rr.protoStatus != statusRequestComplete:
		b.log.Warn("fastcgi: END_REQUEST after a response", "script", s.Name, "protocol_status", rr.protoStatus)
	case inErr != nil && !errors.Is(inErr, errStopped):
		// The instance stopped reading the body it had answered for
		// (php-fpm closes the connection after the response).
		b.log.Debug("fastcgi: request body not sent whole", "script", s.Name, "err", inErr)
	}
}

// maxStderrLog bounds one logged STDERR record.
const maxStderrLog = 4 << 10

func (b *Backend) logStderr(script string, p []byte) {
	msg := strings.TrimRight(string(p[:min(len(p), maxStderrLog)]), "\r\n")
	if msg != "" {
		b.log.Warn("fastcgi: stderr", "script", script, "msg", msg)
	}
}
