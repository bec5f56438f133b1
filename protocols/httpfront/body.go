package httpfront

import (
	"io"
	"net/http"
	"time"
)

// bodyDeadlines bounds every read of a request body by timeout, as
// nginx's client_body_timeout does: a client that stops sending in the
// middle of its body loses the request instead of holding a handler (and
// whatever backend slot it took) forever. http.Server's ReadHeaderTimeout
// covers only the head.
func bodyDeadlines(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
		}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	// A failure to set it (a hijacked connection) leaves the read unbounded
	// as before; the read itself reports any real problem.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.ReadCloser.Read(p)
}
