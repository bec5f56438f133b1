package fastcgi

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/junction-gw/junction/backends"
)

// errStale marks a kept connection that ended before a record of the
// response came: the instance closed it while it sat idle.
var errStale = errors.New("fastcgi: kept connection closed before the response")

// kept returns a kept connection for r when there is one and r may go on
// it (reused true), else nil.
//
// Only a request junction may send again goes on a kept connection:
// php-fpm closes a worker's connection some time after its last response
// (pm.max_requests), and a request sent into that gap fails without
// reaching PHP. An idempotent request without a body is then sent again
// (Serve, on errStale); any other gets a new connection, and an idle one
// is closed first, so that a php-fpm worker holding it comes free to
// accept the new one.
func (b *Backend) kept(r *http.Request) (conn net.Conn, reused bool) {
	conn, reused = b.idle.Get()
	if reused && (r.ContentLength != 0 || !backends.Idempotent(r.Method)) {
		_ = conn.Close() // idle and fit a moment ago: nothing to report
		return nil, false
	}
	return conn, reused
}

// keep returns a connection whose request ended cleanly to the idle
// pool, or closes it while a health check waits for a connection of its
// own.
func (b *Backend) keep(c net.Conn) {
	if b.probing.Load() > 0 {
		_ = c.Close() // frees the instance's worker for the check
		return
	}
	b.idle.Put(c)
}

// reusable reports whether a connection whose response was read to its
// END_REQUEST can carry another request: keep-alive is on, the request
// completed, nothing follows END_REQUEST, and the request was written
// whole. in is the body writer of a request with a body, nil without; it
// may still be finishing when the response is over, and is done when
// reusable returns true.
func (b *Backend) reusable(rr *responseReader, in *stdin) bool {
	if b.idle == nil || !rr.ended || rr.protoStatus != statusRequestComplete || rr.br.Buffered() > 0 {
		return false
	}
	if in == nil {
		return true // written whole in one write before the response was read
	}
	select {
	case <-in.done:
		return in.err == nil
	default:
	}
	// Still in the body: an instance that answered before reading the
	// whole body leaves the writer blocked, and the connection unusable.
	if !in.ending.Load() {
		return false
	}
	// Writing the last record, which ends STDIN: the instance may answer
	// as soon as its bytes reach it, before the write returns. A write
	// still waiting for room fails at once; then the writer is done with
	// the connection, and in.err says whether all of it went out.
	_ = in.conn.SetWriteDeadline(aLongTimeAgo) // a failure shows as the write's
	<-in.done
	return in.err == nil
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)
