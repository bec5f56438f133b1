package fastcgi

import (
	"errors"

	"github.com/junction-gw/junction/internal/spool"
	"github.com/junction-gw/junction/protocols/internal/connserver"
	"github.com/junction-gw/junction/vars"
)

// Observer receives connection, decode-error and protocol events for
// metrics; see Server.Observer. Its methods must be safe for concurrent use.
type Observer = connserver.Observer

var (
	errPeerRefused = errors.New("fastcgi: peer refused")
	errBadRequest  = errors.New("fastcgi: invalid request variables")
)

// Event names given to Observer.Event.
const (
	eventAbort     = "fastcgi_abort"
	eventGetValues = "fastcgi_get_values"
)

// endRequestEvents names the END_REQUEST protocolStatus values.
var endRequestEvents = [...]string{
	statusRequestComplete: "fastcgi_end_request_request_complete",
	statusCantMpxConn:     "fastcgi_end_request_cant_mpx_conn",
	statusOverloaded:      "fastcgi_end_request_overloaded",
	statusUnknownRole:     "fastcgi_end_request_unknown_role",
}

func endRequestEvent(status uint8) string {
	if int(status) < len(endRequestEvents) {
		return endRequestEvents[status]
	}
	return "fastcgi_end_request_other"
}

const reasonHeaderTooLarge = "header_too_large"

// Reason maps an error that ended a FastCGI connection or refused a
// request to the stable label given to Observer.DecodeError:
// "header_too_large" (answered 431, connection kept), "bad_version",
// "bad_params", "unexpected_record", "protocol_error", "body_too_large",
// "spool_full" (a request body beyond the SpoolBudget, answered 503),
// "peer_refused", "duplicate_var", "bad_request" (answered 400), or one of
// connserver's generic reasons ("timeout", "truncated", "peer_reset",
// "other"). A timeout or cut read is labelled as such wherever it happened.
func Reason(err error) string {
	if r := connserver.GenericReason(err); r != connserver.ReasonOther {
		return r
	}
	switch {
	case errors.Is(err, errBadVersion):
		return "bad_version"
	case errors.Is(err, errBadParams):
		return "bad_params"
	case errors.Is(err, errUnexpectedRecord):
		return "unexpected_record"
	case errors.Is(err, ErrProtocol):
		return "protocol_error"
	case errors.Is(err, ErrBodyTooLarge):
		return "body_too_large"
	case errors.Is(err, spool.ErrFull):
		return "spool_full"
	case errors.Is(err, errPeerRefused):
		return "peer_refused"
	case errors.Is(err, vars.ErrDuplicate):
		return "duplicate_var"
	case errors.Is(err, errBadRequest):
		return "bad_request"
	}
	return connserver.ReasonOther
}
