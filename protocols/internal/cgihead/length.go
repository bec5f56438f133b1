package cgihead

import (
	"net/http"
	"strconv"
)

// Length holds a response body to the Content-Length its handler
// declared, the same rule in every codec for a handler that writes more
// (net/http's server refuses such writes with http.ErrContentLength too):
// the declared bytes go out, the rest is cut and the write returns
// http.ErrContentLength, and the front connection is not reused (the
// exchange broke its own framing: SCGI closes anyway, FastCGI closes after
// END_REQUEST whatever KEEP_CONN asked, AJP13 sends END_RESPONSE with
// reuse=0). The codec logs it once: Cut says when. The zero Length
// declares nothing and lets every byte through.
type Length struct {
	declared int64 // valid when has
	has      bool
	written  int64
	over     bool
}

// Declare takes the declared length from h, the header fields of the head
// that goes out. A missing or malformed Content-Length, or one repeated
// with different values, declares nothing.
func (l *Length) Declare(h http.Header) {
	l.has = false
	vs := h["Content-Length"]
	if len(vs) == 0 {
		return
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || n < 0 || vs[0][0] == '+' {
		return
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return
		}
	}
	l.declared, l.has = n, true
}

// Cut returns the part of p that may go out (all of it, or what is left
// of the declared length) and counts it as written. first is true the one
// time a write is cut first, for the codec's log line; the codec returns
// http.ErrContentLength for every write cut short.
func (l *Length) Cut(p []byte) (keep []byte, first bool) {
	if !l.has || l.written+int64(len(p)) <= l.declared {
		l.written += int64(len(p))
		return p, false
	}
	keep = p[:l.declared-l.written]
	l.written = l.declared
	first = !l.over
	l.over = true
	return keep, first
}

// Over reports whether the handler wrote more than it declared: the front
// connection must not be reused.
func (l *Length) Over() bool { return l.over }

// Declared returns the declared length, or -1 when there is none.
func (l *Length) Declared() int64 {
	if !l.has {
		return -1
	}
	return l.declared
}

// Written returns the body bytes let through so far.
func (l *Length) Written() int64 { return l.written }
