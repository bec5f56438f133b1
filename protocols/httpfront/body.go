package httpfront

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// bodyDeadlines bounds every read of a request body by timeout, as
// nginx's client_body_timeout does: a client that stops sending in the
// middle of its body loses the request instead of holding a handler (and
// whatever backend slot it took) forever. http.Server's ReadHeaderTimeout
// covers only the head.
//
// Such a request ends with its connection closed and no response: net/http
// cancels the request's context when a read of the connection fails, so
// the handler takes the client for gone and writes nothing (a backend's
// error page is skipped as a 499), and net/http would then answer 200
// with an empty body for a request that never arrived whole.
func bodyDeadlines(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
		r.Body = b
		h.ServeHTTP(w, r)
		if b.timedOut.Load() {
			panic(http.ErrAbortHandler) // closes the connection; net/http logs nothing
		}
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	timedOut atomic.Bool // a read ran out of time; read by the handler's goroutine
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	// A failure to set it (a hijacked connection) leaves the read unbounded
	// as before; the read itself reports any real problem.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	if ne := net.Error(nil); err != nil && errors.As(err, &ne) && ne.Timeout() {
		b.timedOut.Store(true)
	}
	return n, err
}
