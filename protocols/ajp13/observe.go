package ajp13

import (
	"errors"

	"github.com/junction-gw/junction/protocols/internal/connserver"
)

// Observer receives connection, decode-error and protocol events for
// metrics; see Server.Observer. Its methods must be safe for concurrent use.
type Observer = connserver.Observer

// Finer kinds of ErrMalformed and ErrTooLarge, for Reason, and refusals
// that are counted as events rather than decode errors.
var (
	errBadMagic         = errors.New("bad magic")
	errPacketTooLarge   = errors.New("packet too large")
	errUnexpectedPacket = errors.New("unexpected packet type")
	errSecretRefused    = errors.New("ajp13: request refused")
)

// Event names given to Observer.Event.
const (
	eventCPing           = "ajp_cping"
	eventSecretRefused   = "ajp_secret_refused"
	eventShutdownRefused = "ajp_shutdown_refused"
)

// Reason maps an error that ended an AJP13 connection to the stable label
// given to Observer.DecodeError: "bad_magic", "packet_too_large",
// "header_too_large" (answered 431), "unexpected_packet", "bad_request"
// (answered 400), "malformed", or one of connserver's generic reasons
// ("timeout", "truncated", "peer_reset", "other"). Secret and SHUTDOWN
// refusals return "": they are counted as events. A timeout or cut read
// is labelled as such wherever it happened.
func Reason(err error) string {
	switch {
	case errors.Is(err, errSecretRefused), errors.Is(err, errShutdownRefused):
		return ""
	}
	if r := connserver.GenericReason(err); r != connserver.ReasonOther {
		return r
	}
	switch {
	case errors.Is(err, errBadMagic):
		return "bad_magic"
	case errors.Is(err, errPacketTooLarge):
		return "packet_too_large"
	case errors.Is(err, ErrTooLarge):
		return "header_too_large"
	case errors.Is(err, errUnexpectedPacket):
		return "unexpected_packet"
	case errors.Is(err, errBadRequest):
		return "bad_request"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return connserver.ReasonOther
}
