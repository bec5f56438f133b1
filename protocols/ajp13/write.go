package ajp13

import (
	"encoding/binary"
	"fmt"
	"os"
)

// Writes to the web server. Every packet goes through c.bw under c.wmu;
// packets the peer waits for (CPONG, GET_BODY_CHUNK, END_RESPONSE) flush.

// errWriteDeadline is what writes get once the handler's write deadline
// has passed.
var errWriteDeadline = fmt.Errorf("ajp13: writing to the web server: %w", os.ErrDeadlineExceeded)

// writeLocked writes p to the buffer, flushing when asked; the caller
// holds c.wmu. A failure is recorded on the connection. Each write is
// bounded by WriteTimeout, or by the handler's write deadline, which also
// ends a write in progress (connserver.Deadline).
func (c *conn) writeLocked(flush bool, parts ...[]byte) error {
	if err := c.failure(); err != nil {
		return err
	}
	writes := c.nc.Writes()
	if writes.Passed() {
		c.fail(errWriteDeadline)
		return errWriteDeadline
	}
	writes.Arm(c.writeTimeout) //nolint:errcheck // a failed deadline shows up as a write error
	for _, p := range parts {
		if _, err := c.bw.Write(p); err != nil {
			err = fmt.Errorf("ajp13: writing to the web server: %w", err)
			c.fail(err)
			return err
		}
	}
	if flush {
		if err := c.bw.Flush(); err != nil {
			err = fmt.Errorf("ajp13: writing to the web server: %w", err)
			c.fail(err)
			return err
		}
	}
	return nil
}

// writeSmall writes a one-byte packet (CPONG).
func (c *conn) writeSmall(t outType) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(true, []byte{'A', 'B', 0, 1, byte(t)})
}

// writeGetBodyChunk asks for up to n body bytes and flushes.
func (c *conn) writeGetBodyChunk(n int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(true, []byte{'A', 'B', 0, 3, byte(typeGetBodyChunk), byte(n >> 8), byte(n)})
}

// writeEndResponse ends the response; reuse tells the web server whether
// it may send another request on this connection.
func (c *conn) writeEndResponse(reuse bool) error {
	var r byte
	if reuse {
		r = 1
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(true, []byte{'A', 'B', 0, 2, byte(typeEndResponse), r})
}

// writeBody writes p as SEND_BODY_CHUNK packets of at most maxData bytes,
// each with the trailing NUL mod_proxy_ajp checks for.
func (c *conn) writeBody(p []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	max := c.maxData()
	for len(p) > 0 {
		n := min(len(p), max)
		var h [7]byte
		h[0], h[1] = 'A', 'B'
		binary.BigEndian.PutUint16(h[2:], uint16(n+4)) // type + length + data + NUL
		h[4] = byte(typeSendBodyChunk)
		binary.BigEndian.PutUint16(h[5:], uint16(n))
		if err := c.writeLocked(false, h[:], p[:n], []byte{0}); err != nil {
			return err
		}
		p = p[n:]
	}
	if flush {
		return c.writeLocked(true)
	}
	return nil
}

// writePacket writes a packet built in c.out by build.
func (c *conn) writePacket(flush bool, build func(e *encoder)) (ok bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// One encoder per connection, reused under wmu: build is an indirect
	// call, so a fresh one would escape to the heap for every packet.
	e := &c.enc
	e.reset(c.out, magicOut, cap(c.out))
	build(e)
	p, ok := e.finish()
	if !ok {
		return false, nil
	}
	return true, c.writeLocked(flush, p)
}

// flush sends what is buffered.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(true)
}
