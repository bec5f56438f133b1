package connserver

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Observer receives a codec's connection and protocol events, for metrics.
// Methods are called from connection goroutines, concurrently, and must
// not block. Labels passed to DecodeError and Event come from small fixed
// sets chosen by the codecs, so they are safe as metric label values.
type Observer interface {
	// ConnOpened is called when a connection starts being served.
	ConnOpened()
	// ConnClosed is called once for every ConnOpened, when the
	// connection is done.
	ConnClosed()
	// DecodeError is called when a connection is closed, or a request
	// refused, because of what the peer sent or failed to send, with a
	// stable reason such as "bad_netstring" or "timeout".
	DecodeError(reason string)
	// Event is called for protocol events worth counting, such as
	// "fastcgi_end_request_overloaded" or "ajp_cping".
	Event(name string)
}

// Reasons shared by every codec. Codec reason functions return these for
// the failures that are not specific to their wire format.
const (
	ReasonTimeout   = "timeout"    // a read deadline passed mid-request
	ReasonTruncated = "truncated"  // the peer closed in the middle of a frame
	ReasonPeerReset = "peer_reset" // the connection was reset or broken
	ReasonPanic     = "panic"      // the handler or codec panicked
	ReasonOther     = "other"      // anything not classified
)

// GenericReason classifies errors every codec can meet: timeouts, cut
// frames and broken connections. Anything else is ReasonOther.
func GenericReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonTruncated
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed):
		return ReasonPeerReset
	}
	return ReasonOther
}

func (s *Server) reason(err error) string {
	if s.Reason != nil {
		return s.Reason(err)
	}
	return GenericReason(err)
}

// DecodeError reports reason to the Observer, if any. Codecs call it for
// requests refused without closing the connection; connections closed
// with an error are reported by the accept loop.
func (s *Server) DecodeError(reason string) {
	if s.Observer != nil && reason != "" {
		s.Observer.DecodeError(reason)
	}
}

// Event reports a protocol event to the Observer, if any.
func (s *Server) Event(name string) {
	if s.Observer != nil {
		s.Observer.Event(name)
	}
}
