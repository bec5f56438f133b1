package httpbackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/junction-gw/junction/backends"
)

// Serve proxies r to the instance. A non-nil error means nothing was
// written to w; see the package documentation for which errors leave the
// request body unread.
func (b *Backend) Serve(w http.ResponseWriter, r *http.Request) error {
	if b.prefix != "" && !underPrefix(r.URL.Path, b.prefix) {
		return backends.Errorf(http.StatusNotFound, "httpbackend: %s: %q is not under %q", b.addr, r.URL.Path, b.prefix)
	}
	st := &state{w: w}
	st.flush = st.flushW
	rw := &recorder{ResponseWriter: w, st: st}
	out := r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	st.body.wrap(out)
	b.proxy.ServeHTTP(rw, out)
	if st.err != nil && !st.wrote {
		return st.err
	}
	return nil
}

// underPrefix reports whether p is prefix or below it ("/app" matches
// "/app" and "/app/x", not "/apps").
func underPrefix(p, prefix string) bool {
	rest, ok := strings.CutPrefix(p, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// stripPrefix removes prefix from a path that is under it.
func stripPrefix(p, prefix string) string {
	rest := strings.TrimPrefix(p, prefix)
	if rest == "" {
		return "/"
	}
	return rest
}

// rewrite builds the outgoing request.
func (b *Backend) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(b.target)
	pr.Out.Host = pr.In.Host
	if b.prefix != "" {
		u := pr.Out.URL
		u.Path = stripPrefix(pr.In.URL.Path, b.prefix)
		u.RawPath = ""
		if raw := pr.In.URL.RawPath; raw != "" && underPrefix(raw, b.prefix) {
			// Keep the client's encoding (%2F and friends) when the prefix
			// appears literally in it; url.URL checks it still matches Path.
			u.RawPath = stripPrefix(raw, b.prefix)
		}
	}
	// httpoxy: an application (or a library in it) may read HTTP_PROXY
	// or the Proxy header as its outgoing proxy.
	pr.Out.Header.Del("Proxy")
	setForwarded(pr.In, pr.Out.Header)
}

// dialError marks errors from our dialer, whatever the transport wraps
// around them.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// classify turns a transport error into the error Serve or Check returns;
// ctx is the caller's context.
func (b *Backend) classify(ctx context.Context, err error) error {
	var de *dialError
	if errors.As(err, &de) {
		return &backends.DialError{Addr: b.addr, Err: fmt.Errorf("httpbackend: %w", de.err)}
	}
	if ctx.Err() != nil {
		// The caller's context ended (the client went away, or its
		// deadline passed): the caller knows why.
		return fmt.Errorf("httpbackend: %s: %w", b.addr, context.Cause(ctx))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The transport's ResponseHeaderTimeout.
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("httpbackend: %s: %w", b.addr, err)}
	}
	return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("httpbackend: %s: %w", b.addr, err)}
}

// errorHandler replaces ReverseProxy's 502 page: before anything was
// written the error is kept for Serve to return; after, the response can
// only end early, and the failure is logged.
func (b *Backend) errorHandler(_ http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*state)
	if st == nil {
		// Not reached through Serve; nothing to record into.
		b.log.Warn("httpbackend: proxy error", "err", err)
		return
	}
	if st.wrote {
		if r.Context().Err() != nil || st.body.failed() != nil {
			b.log.Info("httpbackend: the client failed after the response started", "uri", r.RequestURI, "err", err)
			return
		}
		b.log.Warn("httpbackend: failure after the response started", "uri", r.RequestURI, "err", err)
		return
	}
	st.err = b.serveError(r, st, err)
}
