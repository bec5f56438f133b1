// Package wire is the FastCGI 1.0 wire format
// (https://fastcgi-archives.github.io/FastCGI_Specification.html, section
// 3): record header, record types, roles, END_REQUEST statuses and
// name-value length encoding. It holds no connection logic.
//
// It exists once so junction's FastCGI front end (protocols/fastcgi, the
// responder nginx and lighttpd talk to) and its FastCGI app-pool client
// (backends/fastcgi, which talks to php-fpm) frame records identically;
// neither imports the other.
package fcgiwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Type is a record type.
type Type uint8

// Record types (spec 8).
const (
	TypeBeginRequest    Type = 1
	TypeAbortRequest    Type = 2
	TypeEndRequest      Type = 3
	TypeParams          Type = 4
	TypeStdin           Type = 5
	TypeStdout          Type = 6
	TypeStderr          Type = 7
	TypeData            Type = 8
	TypeGetValues       Type = 9
	TypeGetValuesResult Type = 10
	TypeUnknownType     Type = 11
)

var typeNames = [...]string{"", "BEGIN_REQUEST", "ABORT_REQUEST", "END_REQUEST", "PARAMS", "STDIN",
	"STDOUT", "STDERR", "DATA", "GET_VALUES", "GET_VALUES_RESULT", "UNKNOWN_TYPE"}

func (t Type) String() string {
	if t != 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Roles in BEGIN_REQUEST.
const (
	RoleResponder  = 1
	RoleAuthorizer = 2
	RoleFilter     = 3
)

// FlagKeepConn is bit 0 of BEGIN_REQUEST's flags.
const FlagKeepConn = 1

// protocolStatus values of END_REQUEST.
const (
	StatusRequestComplete = 0
	StatusCantMpxConn     = 1
	StatusOverloaded      = 2
	StatusUnknownRole     = 3
)

// Sizes of the record layout.
const (
	Version1      = 1
	HeaderLen     = 8
	MaxContentLen = 65535
	MaxPaddingLen = 255
	// MaxNameValueLen is the largest length a 4-byte name-value length can
	// carry (its top bit marks the long form).
	MaxNameValueLen = 1<<31 - 1
)

// Header is the fixed 8-byte record header.
type Header struct {
	Version       uint8
	Type          Type
	ID            uint16
	ContentLength uint16
	PaddingLength uint8
}

// Put encodes h into b[:HeaderLen].
func (h Header) Put(b []byte) {
	b[0] = h.Version
	b[1] = uint8(h.Type)
	binary.BigEndian.PutUint16(b[2:4], h.ID)
	binary.BigEndian.PutUint16(b[4:6], h.ContentLength)
	b[6] = h.PaddingLength
	b[7] = 0
}

// ParseHeader decodes b[:HeaderLen]. Every bit pattern is a header; the
// caller checks the version and type.
func ParseHeader(b []byte) Header {
	return Header{
		Version:       b[0],
		Type:          Type(b[1]),
		ID:            binary.BigEndian.Uint16(b[2:4]),
		ContentLength: binary.BigEndian.Uint16(b[4:6]),
		PaddingLength: b[6],
	}
}

// PadFor is the padding that aligns n content bytes to 8, as the spec
// recommends and nginx does.
func PadFor(n int) uint8 { return uint8(-n & 7) }

// AppendRecord appends one record with the given padding.
func AppendRecord(dst []byte, t Type, id uint16, content []byte, pad uint8) []byte {
	var h [HeaderLen]byte
	Header{Version: Version1, Type: t, ID: id, ContentLength: uint16(len(content)), PaddingLength: pad}.Put(h[:])
	dst = append(dst, h[:]...)
	dst = append(dst, content...)
	for range pad {
		dst = append(dst, 0)
	}
	return dst
}

// AppendBeginRequest appends a BEGIN_REQUEST record for request id in
// role, with flags (FlagKeepConn or 0).
func AppendBeginRequest(dst []byte, id uint16, role uint16, flags uint8) []byte {
	body := [8]byte{byte(role >> 8), byte(role), flags}
	return AppendRecord(dst, TypeBeginRequest, id, body[:], 0)
}

// FrameStream turns dst[start:], the content of a stream (PARAMS, STDIN,
// STDOUT), into records of type t for request id, in place: as many as it
// takes at MaxContentLen bytes each, each padded to a multiple of 8. It
// returns the extended slice. An empty content stays empty: the empty
// record that ends a stream is the caller's to append.
//
// Building the content first and framing it afterwards spares the caller
// from knowing the content's length up front (name-value pairs) and from
// a second buffer.
func FrameStream(dst []byte, start int, t Type, id uint16) []byte {
	total := len(dst) - start
	if total <= 0 {
		return dst
	}
	k := (total + MaxContentLen - 1) / MaxContentLen
	last := total - (k-1)*MaxContentLen
	fullPad := int(PadFor(MaxContentLen))
	grow := k*HeaderLen + (k-1)*fullPad + int(PadFor(last))
	dst = slices.Grow(dst, grow)[:len(dst)+grow]
	// Last record first: each chunk moves right, onto chunks already
	// moved, and its header lands on its own old bytes after they moved.
	for i := k - 1; i >= 0; i-- {
		n := MaxContentLen
		if i == k-1 {
			n = last
		}
		pad := int(PadFor(n))
		from := start + i*MaxContentLen
		at := start + i*(HeaderLen+MaxContentLen+fullPad)
		copy(dst[at+HeaderLen:], dst[from:from+n])
		Header{Version: Version1, Type: t, ID: id, ContentLength: uint16(n), PaddingLength: uint8(pad)}.Put(dst[at:])
		clear(dst[at+HeaderLen+n : at+HeaderLen+n+pad])
	}
	return dst
}

// ErrShortLength is wrapped by ReadLen when b ends inside a length.
var ErrShortLength = errors.New("truncated name-value length")

// ReadLen decodes one name-value length at the start of b: one byte when
// below 128, else four bytes with the top bit set. used is how many bytes
// it took.
func ReadLen(b []byte) (n int, used int, err error) {
	if len(b) == 0 {
		return 0, 0, ErrShortLength
	}
	if b[0]&0x80 == 0 {
		return int(b[0]), 1, nil
	}
	if len(b) < 4 {
		return 0, 0, fmt.Errorf("%w: truncated 4-byte form", ErrShortLength)
	}
	return int(binary.BigEndian.Uint32(b) & MaxNameValueLen), 4, nil
}

// AppendLen appends n in the shortest length form.
func AppendLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// AppendPair appends one name-value pair.
func AppendPair(dst []byte, name, value string) []byte {
	dst = AppendLen(dst, len(name))
	dst = AppendLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}
