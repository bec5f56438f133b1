// Package backends defines the contract between junction's front ends and
// the places a request can go: CGI scripts, HTTP app instances, FastCGI
// app instances.
//
// A Backend serves a request the way an http.Handler does, with one
// difference: when it fails before writing anything it returns an error
// instead of writing an error page, so a balancer may retry elsewhere or a
// router may follow a CGI local redirect. Once a Backend has written, it
// returns nil and deals with later failures itself (by ending the
// response early).
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Backend serves requests.
type Backend interface {
	// Serve handles r. A non-nil error means nothing was written to w.
	Serve(w http.ResponseWriter, r *http.Request) error
}

// Func adapts a function to Backend.
type Func func(w http.ResponseWriter, r *http.Request) error

// Serve calls f(w, r).
func (f Func) Serve(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// ErrOverloaded means the backend's concurrency limit and queue are full
// (503 with Retry-After). It is safe to retry elsewhere.
var ErrOverloaded = errors.New("backends: overloaded")

// Error is a failure that maps to a specific HTTP status. Nothing was
// written to the client.
type Error struct {
	// Status is the HTTP status the client should see.
	Status int
	// Err says why, for the log; it is not sent to the client.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s: %v", e.Status, http.StatusText(e.Status), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given status and a formatted reason.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// DialError means the backend could not be reached at all: no byte of the
// request was sent, so any method may be retried elsewhere.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// LocalRedirect is returned by a CGI-style backend whose script answered
// with only a local Location (RFC 3875 6.2.2). Nothing was written. The
// backend builds the request to serve instead, because only it knows
// which CGI variables describe the URL; a router dispatches Request
// through its routes as it is.
type LocalRedirect struct {
	// Location is an absolute path with an optional query.
	Location string
	// Request is the follow-up request: a GET for Location without a
	// body, its CGI variables (package vars) made for Location.
	Request *http.Request
}

func (e *LocalRedirect) Error() string { return "local redirect to " + e.Location }

// Status returns the HTTP status the client should see for err: a
// *ClientError is 400, or 499 (StatusClientClosedRequest) when the client
// went away.
func Status(err error) int {
	var be *Error
	var ce *ClientError
	switch {
	case errors.Is(err, ErrClientGone):
		return StatusClientClosedRequest
	case errors.As(err, &be):
		return be.Status
	case errors.As(err, &ce):
		return http.StatusBadRequest
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}

// WriteError writes the error page for err, which a Backend returned
// before writing anything, and logs it once.
func WriteError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	status := Status(err)
	level := slog.LevelWarn
	if status < 500 {
		level = slog.LevelInfo
	}
	if r.Context().Err() != nil {
		// The client went away; nobody reads this page. 499 as nginx logs it.
		level, status = slog.LevelInfo, 499
	}
	if log != nil {
		log.Log(r.Context(), level, "request failed", "method", r.Method, "uri", r.RequestURI, "status", status, "err", err)
	}
	if status == 499 {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s\n", status, http.StatusText(status))
}

// retryAfter is the Retry-After we advertise on overload: long enough for
// a burst to drain, short enough that clients come back soon.
const retryAfter = 1 * time.Second

// Handler turns b into an http.Handler that writes error pages.
func Handler(b Backend, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.Serve(w, r); err != nil {
			WriteError(w, r, err, log)
		}
	})
}

// Upstream receives what the layers behind a front end learn about one
// request: which backend and instance served it, how long the upstream
// took, and the user a layer identified. The access log and metrics read
// it after the request. The composition root puts one in the request
// context (NewUpstreamContext); routers, balancers and backends report to
// UpstreamFromContext.
// Implementations must be safe for concurrent use.
type Upstream interface {
	// SetBackend names the configured backend that served the request.
	SetBackend(name string)
	// SetInstance names the instance (pool member, address) that served
	// the request. After retries, the last call wins.
	SetInstance(name string)
	// SetUpstreamTime is how long the upstream took, from sending the
	// request to the end of its response. After retries, the last call
	// wins.
	SetUpstreamTime(d time.Duration)
	// SetUser names the user a layer behind the front end identified
	// and told the backend about in place of the front server's
	// REMOTE_USER (a route's authorizer allowing the request with
	// Variable-REMOTE_USER). Empty means the backend was told of none.
	// The last call wins.
	SetUser(name string)
}

type upstreamKey struct{}

// NewUpstreamContext returns ctx carrying u.
func NewUpstreamContext(ctx context.Context, u Upstream) context.Context {
	return context.WithValue(ctx, upstreamKey{}, u)
}

// UpstreamFromContext returns the Upstream in ctx, or one that discards
// everything when there is none, so callers need no nil check.
func UpstreamFromContext(ctx context.Context) Upstream {
	if u, ok := ctx.Value(upstreamKey{}).(Upstream); ok && u != nil {
		return u
	}
	return noUpstream{}
}

type noUpstream struct{}

func (noUpstream) SetBackend(string)             {}
func (noUpstream) SetInstance(string)            {}
func (noUpstream) SetUpstreamTime(time.Duration) {}
func (noUpstream) SetUser(string)                {}

// Idempotent reports whether method is idempotent (RFC 9110, section
// 9.2.2): sending the request twice has the effect of sending it once, so
// it may be sent again after a failure that could have reached the
// application.
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
