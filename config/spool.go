package config

import "strings"

// Values of Listener.ResponseBuffering.
const (
	ResponseBufferingAuto = "auto"
	ResponseBufferingOn   = "on"
	ResponseBufferingOff  = "off"
)

// defaultMaxSpoolBytes bounds each listener's temporary files. 128 MiB
// holds the echo of a dozen 8 MiB uploads at once, or two full
// multiplexed request bodies (64 MiB each); before the bound a
// multiplexing peer could make junction spool max_requests × 64 MiB (64
// GiB with the defaults).
const defaultMaxSpoolBytes = 128 << 20

// autoResponseBuffering is what response_buffering: auto means for each
// protocol: hold responses when a stock front server for it deadlocks an
// exchange that answers before reading the whole request body.
//
// Measured by integration/duplex_probe_test.go (TestFrontServersDuplex):
// junction's codecs behind each front server, over unix sockets, answering
// an 8 MiB upload early: (a) a response head and a flush before reading
// any body, then reading it all; (b) 8 MiB of response before reading any
// body. nginx 1.22.1, Apache 2.4 (event MPM), mod_jk 1.2, lighttpd 1.4.69,
// default settings (request and response buffering on), three runs:
//
//	nginx scgi_pass          stops sending the body once response bytes arrive (0.2-2.7 MB of 8 MiB arrived)
//	nginx fastcgi_pass       stops sending the body once response bytes arrive (0.33-1.5 MB arrived)
//	nginx proxy_pass         stops sending the body once response bytes arrive (0.2-2.2 MB arrived)
//	Apache mod_proxy_scgi    reads no response until it has sent the whole body (took 233 KB of 8 MiB)
//	Apache mod_proxy_http    reads no response until it has sent the whole body (took 237 KB of 8 MiB)
//	Apache mod_proxy_fcgi    full duplex: keeps sending, reads the response meanwhile
//	Apache mod_proxy_ajp     full duplex (AJP's GET_BODY_CHUNK flow)
//	Apache mod_jk            full duplex (AJP's GET_BODY_CHUNK flow)
//	lighttpd mod_scgi        full duplex
//	lighttpd mod_fastcgi     full duplex
//	lighttpd mod_proxy       full duplex
//
// So scgi (nginx, Apache), fastcgi (nginx) and http (nginx, Apache; and
// net/http's own HTTP/1 server, which discards an unread body once the
// response starts) hold; ajp does not. The test fails when this table and
// a front server's measured behaviour disagree.
var autoResponseBuffering = map[string]bool{
	ProtocolSCGI:    true,
	ProtocolFastCGI: true,
	ProtocolHTTP:    true,
	ProtocolAJP:     false,
}

// HoldsResponses reports whether the listener holds each response until
// its request body has been read: response_buffering on, or auto for a
// protocol in autoResponseBuffering.
func (l *Listener) HoldsResponses() bool {
	switch l.ResponseBuffering {
	case ResponseBufferingOn:
		return true
	case ResponseBufferingOff:
		return false
	default:
		return autoResponseBuffering[l.Protocol]
	}
}

func (l *Listener) setSpoolDefaults() {
	l.ResponseBuffering = strings.ToLower(l.ResponseBuffering)
	if l.ResponseBuffering == "" {
		l.ResponseBuffering = ResponseBufferingAuto // what the front servers measured need
	}
	if l.MaxSpoolBytes == 0 {
		l.MaxSpoolBytes = defaultMaxSpoolBytes
	}
}

func (l *Listener) validateSpool(v *validator, key string) {
	switch l.ResponseBuffering {
	case ResponseBufferingAuto, ResponseBufferingOn, ResponseBufferingOff:
	default:
		v.add(key+".response_buffering", "%q is not one of auto, on, off", l.ResponseBuffering)
	}
	if l.MaxSpoolBytes < 0 {
		v.add(key+".max_spool_bytes", "%d must not be negative", l.MaxSpoolBytes)
	}
}
