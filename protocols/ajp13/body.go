package ajp13

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// maxDrain bounds how much of an unread request body junction reads and
// discards after the handler returns, to keep the connection reusable.
// Larger remainders close the connection instead (END_RESPONSE reuse=0).
const maxDrain = 256 << 10

// errBodyAborted is returned by reads of a body whose connection failed.
var errBodyAborted = errors.New("ajp13: request body unavailable after a connection error")

// body is the request body, read from the web server packet by packet.
//
// With a Content-Length the web server sends the first chunk right after
// FORWARD_REQUEST, unasked; junction asks for each further chunk with
// GET_BODY_CHUNK and never asks beyond the announced length (mod_proxy_ajp
// treats a request after the end as an error). Without a length (the
// client sent Transfer-Encoding: chunked, which the web server already
// decoded) junction asks for every chunk, the first included, until an
// empty chunk ends the body.
type body struct {
	c *conn

	mu        sync.Mutex
	remaining int64 // bytes still announced; -1 for a streamed body
	asked     bool  // a chunk is on its way (first chunk of a sized body, or after GET_BODY_CHUNK)
	chunk     []byte
	eof       bool
	err       error // sticky: a framing or read error
	onEOF     func()
}

func newBody(c *conn, contentLength int64, onEOF func()) *body {
	return &body{c: c, remaining: contentLength, asked: contentLength > 0, onEOF: onEOF}
}

// Read implements io.Reader for the handler.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.chunk) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.eof {
			return 0, io.EOF
		}
		if b.c.nc.Reads().Passed() {
			// The handler's read deadline: nothing was read, so a later
			// read may go on.
			return 0, errReadDeadline
		}
		if err := b.next(); err != nil {
			b.err = err
			if !errors.Is(err, errHandlerDeadline) {
				b.c.fail(err)
			}
			// A read the handler's deadline ended may have stopped inside
			// a packet: the body fails and the connection is not reused
			// (drain sees b.err), but the response still goes out.
			return 0, err
		}
	}
	n := copy(p, b.chunk)
	b.chunk = b.chunk[n:]
	return n, nil
}

// Close is a no-op: the codec drains or gives up on the rest of the body
// when the handler returns.
func (b *body) Close() error { return nil }

// next fetches one chunk into b.chunk, or sets b.eof.
func (b *body) next() error {
	if b.remaining == 0 {
		b.setEOF()
		return nil
	}
	max := b.c.maxChunk()
	if !b.asked {
		if err := b.c.writeGetBodyChunk(max); err != nil {
			return err
		}
	}
	b.asked = false
	payload, err := b.c.readBodyPacket()
	if err != nil {
		return err
	}
	var n int
	if len(payload) > 0 {
		if len(payload) < 2 {
			return fmt.Errorf("ajp13: body packet of %d bytes: %w", len(payload), ErrMalformed)
		}
		n = int(binary.BigEndian.Uint16(payload))
		if n != len(payload)-2 {
			return fmt.Errorf("ajp13: body chunk announces %d bytes in a %d-byte payload: %w", n, len(payload)-2, ErrMalformed)
		}
	}
	switch {
	case n > max:
		return fmt.Errorf("ajp13: body chunk of %d bytes exceeds the %d asked for: %w", n, max, ErrMalformed)
	case n == 0 && b.remaining > 0:
		return fmt.Errorf("ajp13: body ended %d bytes short of its Content-Length: %w", b.remaining, io.ErrUnexpectedEOF)
	case n == 0:
		b.setEOF()
		return nil
	case b.remaining > 0 && int64(n) > b.remaining:
		return fmt.Errorf("ajp13: body chunk of %d bytes exceeds the %d left of Content-Length: %w", n, b.remaining, ErrMalformed)
	}
	if b.remaining > 0 {
		b.remaining -= int64(n)
	}
	b.chunk = payload[2:]
	if b.remaining == 0 {
		// The last announced byte arrived: the body is complete without
		// another round trip.
		b.setEOF()
	}
	return nil
}

func (b *body) setEOF() {
	if !b.eof {
		b.eof = true
		if b.onEOF != nil {
			b.onEOF()
		}
	}
}

// drain reads and discards what the handler left unread, up to maxDrain
// bytes. It reports whether the body ended cleanly, so the connection can
// be reused.
func (b *body) drain() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return false
	}
	if b.remaining > maxDrain {
		return false
	}
	budget := maxDrain
	for !b.eof {
		b.chunk = nil
		if err := b.next(); err != nil {
			b.err = err
			b.c.srv.logger().Warn("ajp13: draining request body failed", "remote", b.c.remote(), "err", err)
			return false
		}
		budget -= len(b.chunk)
		if budget < 0 {
			return false
		}
	}
	b.chunk = nil
	b.err = errBodyAborted // the packet buffer is reused from here on
	return true
}

// finish marks the body unusable after the request ended without drain.
func (b *body) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chunk = nil
	if b.err == nil {
		b.err = errBodyAborted
	}
}
