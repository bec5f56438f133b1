package scgi

import (
	"errors"

	"github.com/junction-gw/junction/protocols/internal/connserver"
	"github.com/junction-gw/junction/vars"
)

// Observer receives connection and decode-error events for metrics; see
// Server.Observer. Its methods must be safe for concurrent use.
type Observer = connserver.Observer

// Reason maps an error that ended an SCGI connection to the stable label
// given to Observer.DecodeError: "header_too_large", "bad_netstring",
// "bad_vars", "missing_content_length", "bad_content_length",
// "duplicate_var", "missing_scgi", "bad_request", "short_body",
// "malformed", or one of connserver's generic reasons ("timeout",
// "truncated", "peer_reset", "other").
//
// A timeout or a cut read is labelled as such wherever it happened.
func Reason(err error) string {
	if r := connserver.GenericReason(err); r != connserver.ReasonOther {
		return r
	}
	switch {
	case errors.Is(err, ErrHeaderTooBig):
		return "header_too_large"
	case errors.Is(err, ErrShortBody):
		return "short_body"
	case errors.Is(err, errBadNetstring):
		return "bad_netstring"
	case errors.Is(err, errBadVars):
		return "bad_vars"
	case errors.Is(err, errMissingLength):
		return "missing_content_length"
	case errors.Is(err, errBadLength):
		return "bad_content_length"
	case errors.Is(err, vars.ErrDuplicate):
		return "duplicate_var"
	case errors.Is(err, errNoSCGI):
		return "missing_scgi"
	case errors.Is(err, errBadRequest):
		return "bad_request"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return connserver.ReasonOther
}
