package ajp13

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Packet framing. Packets from the web server start with 0x12 0x34, packets
// to it with 'A' 'B'; both continue with a big-endian u16 payload length.
const (
	headerLen = 4 // magic (2) + payload length (2)

	// DefaultPacketSize is the AJP default (mod_jk max_packet_size,
	// mod_proxy_ajp ProxyIOBufferSize).
	DefaultPacketSize = 8192
	// MaxPacketSize is the largest packet the protocol allows.
	MaxPacketSize = 65536

	// nullString is the length that marks a null string.
	nullString = 0xFFFF
)

// Packet types from the web server to junction.
type inType byte

const (
	typeForwardRequest inType = 2
	typeShutdown       inType = 7
	typePing           inType = 8
	typeCPing          inType = 10
)

// Packet types from junction to the web server.
type outType byte

const (
	typeSendBodyChunk outType = 3
	typeSendHeaders   outType = 4
	typeEndResponse   outType = 5
	typeGetBodyChunk  outType = 6
	typeCPong         outType = 9
)

// Errors wrapped by the decoder; tests and callers match them with errors.Is.
var (
	// ErrMalformed is wrapped by every error about bytes the peer sent that
	// do not follow the protocol.
	ErrMalformed = errors.New("malformed packet")
	// ErrTooLarge is wrapped when the peer exceeds a configured limit.
	ErrTooLarge = errors.New("limit exceeded")
)

// readPacket reads one web-server packet into buf (len(buf) is the packet
// size limit, header included) and returns its payload, a slice of buf.
// The payload length is checked against buf before anything else is read.
func readPacket(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:headerLen]); err != nil {
		return nil, err
	}
	return readPayload(r, buf)
}

// readPayload reads the payload announced by the header already in
// buf[:headerLen].
func readPayload(r io.Reader, buf []byte) ([]byte, error) {
	if buf[0] != 0x12 || buf[1] != 0x34 {
		return nil, fmt.Errorf("ajp13: %w %#02x%02x: %w", errBadMagic, buf[0], buf[1], ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(buf[2:4]))
	if n > len(buf)-headerLen {
		return nil, fmt.Errorf("ajp13: %w: %d bytes exceed packet size %d: %w", errPacketTooLarge, n+headerLen, len(buf), ErrTooLarge)
	}
	payload := buf[headerLen : headerLen+n]
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("ajp13: reading %d-byte payload: %w", n, err)
	}
	return payload, nil
}

// decoder reads wire types from a payload with bounds checks. The first
// error sticks; later reads return zero values.
type decoder struct {
	b   []byte
	s   string // when set, a copy of b that strings are sliced from (one allocation per packet)
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("ajp13: "+format+" at offset %d: %w", append(args, d.off, ErrMalformed)...)
	}
}

func (d *decoder) u8(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off+1 > len(d.b) {
		d.fail("truncated %s", what)
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) u16(what string) uint16 {
	if d.err != nil {
		return 0
	}
	if d.off+2 > len(d.b) {
		d.fail("truncated %s", what)
		return 0
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

// peek16 returns the next u16 without consuming it.
func (d *decoder) peek16(what string) uint16 {
	v := d.u16(what)
	if d.err == nil {
		d.off -= 2
	}
	return v
}

// str reads a length-prefixed, NUL-terminated string; null reports the
// 0xFFFF null marker.
func (d *decoder) str(what string) (s string, null bool) {
	n := d.u16(what)
	if d.err != nil {
		return "", false
	}
	if n == nullString {
		return "", true
	}
	end := d.off + int(n)
	if end+1 > len(d.b) {
		d.fail("truncated %s (%d bytes)", what, n)
		return "", false
	}
	if d.b[end] != 0 {
		d.fail("%s not NUL-terminated", what)
		return "", false
	}
	if d.s != "" {
		s = d.s[d.off:end]
	} else {
		s = string(d.b[d.off:end])
	}
	d.off = end + 1
	return s, false
}

// encoder appends wire types to a packet buffer whose capacity is the
// packet size; ok turns false when a value does not fit.
type encoder struct {
	b     []byte
	limit int
	ok    bool
}

func newEncoder(buf []byte, magic [2]byte, limit int) *encoder {
	e := &encoder{}
	e.reset(buf, magic, limit)
	return e
}

// reset starts a new packet in buf (reusing its storage).
func (e *encoder) reset(buf []byte, magic [2]byte, limit int) {
	*e = encoder{b: append(buf[:0], magic[0], magic[1], 0, 0), limit: limit, ok: true}
}

func (e *encoder) room(n int) bool {
	if !e.ok || len(e.b)+n > e.limit {
		e.ok = false
		return false
	}
	return true
}

func (e *encoder) u8(v byte) {
	if e.room(1) {
		e.b = append(e.b, v)
	}
}

func (e *encoder) u16(v uint16) {
	if e.room(2) {
		e.b = binary.BigEndian.AppendUint16(e.b, v)
	}
}

func (e *encoder) str(s string) {
	if len(s) >= nullString {
		e.ok = false
		return
	}
	if e.room(2 + len(s) + 1) {
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(s)))
		e.b = append(e.b, s...)
		e.b = append(e.b, 0)
	}
}

func (e *encoder) null() { e.u16(nullString) }

// finish fills in the payload length and returns the packet.
func (e *encoder) finish() ([]byte, bool) {
	if !e.ok {
		return nil, false
	}
	binary.BigEndian.PutUint16(e.b[2:4], uint16(len(e.b)-headerLen))
	return e.b, true
}

var (
	magicIn  = [2]byte{0x12, 0x34}
	magicOut = [2]byte{'A', 'B'}
)
