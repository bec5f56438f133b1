package httpbackend

import (
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/junction-gw/junction/backends"
)

// clientBody is the request body as the transport reads it. It records
// the client's failure: a read error, or the end of the body before
// ContentLength bytes. The transport reads it on its own goroutine, and
// may close it while a read is in progress (when the instance failed):
// what a read reports after Close is not the client's doing and is not
// recorded.
type clientBody struct {
	rc io.ReadCloser

	mu     sync.Mutex
	left   int64 // bytes still declared; negative when the length is unknown
	closed bool
	err    error // the first failure of the client's
}

// wrap puts cb around r's body, when r has one.
func (cb *clientBody) wrap(r *http.Request) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	cb.rc, cb.left = r.Body, r.ContentLength
	r.Body = cb
}

func (cb *clientBody) Read(p []byte) (int, error) {
	n, err := cb.rc.Read(p)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.left > 0 {
		cb.left -= int64(n)
	}
	if err != nil && cb.err == nil && !cb.closed {
		switch {
		case err != io.EOF:
			cb.err = err
		case cb.left > 0:
			cb.err = fmt.Errorf("%w (%d bytes missing)", io.ErrUnexpectedEOF, cb.left)
		}
	}
	return n, err
}

// Close closes the client's body; later read errors are the close's.
func (cb *clientBody) Close() error {
	cb.mu.Lock()
	cb.closed = true
	cb.mu.Unlock()
	return cb.rc.Close()
}

// failed returns the client's failure, or nil.
func (cb *clientBody) failed() error {
	if cb.rc == nil {
		return nil
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.err
}

// serveError turns what went wrong before anything was written into the
// error Serve returns. The client's failures come first: a client that
// went away, or whose body failed, makes the transport fail too, and that
// says nothing about the instance.
func (b *Backend) serveError(r *http.Request, st *state, err error) error {
	if ctx := r.Context(); ctx.Err() != nil {
		return backends.ContextError(ctx, "httpbackend: "+b.addr)
	}
	if berr := st.body.failed(); berr != nil {
		return &backends.ClientError{Err: fmt.Errorf("httpbackend: %s: request body: %w", b.addr, berr)}
	}
	return b.classify(r.Context(), err)
}
