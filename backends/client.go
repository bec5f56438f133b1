package backends

import (
	"context"
	"errors"
	"fmt"
)

// StatusClientClosedRequest is the status logged for a request whose client
// went away before its response was complete: 499, as nginx logs it. It is
// never sent; nobody is left to read it.
const StatusClientClosedRequest = 499

// ErrClientGone means the client went away before its response was
// complete: its connection closed, or the front server aborted the request
// (FastCGI ABORT_REQUEST, a lost AJP connection). Backends return it
// wrapped in a *ClientError.
var ErrClientGone = errors.New("client went away")

// ClientError is a request that failed on the client's side, not the
// backend's: its body ended before CONTENT_LENGTH bytes or could not be
// read, or the client went away (Err wraps ErrClientGone). It says nothing
// about the backend or the instance that was serving the request: a
// balancer never counts it against the instance and never retries it.
// Status maps it to 400, or 499 when the client went away. Nothing was
// written to the client.
type ClientError struct {
	// Err says what happened, for the log.
	Err error
}

func (e *ClientError) Error() string { return "client error: " + e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

// IsClientError reports whether err, or an error it wraps, is a
// *ClientError.
func IsClientError(err error) bool {
	var ce *ClientError
	return errors.As(err, &ce)
}

// ContextError returns the error for a request whose context ended: a
// *ClientError wrapping ErrClientGone when the context was cancelled, which
// is how the codecs report a client that went away; otherwise (a deadline)
// ctx.Err() wrapped, for Status to map. Either way the cause, when it says
// more, is wrapped too. prefix names the backend, as in "cgi: env.cgi".
func ContextError(ctx context.Context, prefix string) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return &ClientError{Err: fmt.Errorf("%s: %w: %w", prefix, ErrClientGone, err)}
	}
	return fmt.Errorf("%s: %w", prefix, err)
}
