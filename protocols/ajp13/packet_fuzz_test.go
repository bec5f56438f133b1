package ajp13

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzPacket reads web-server packets from a byte stream, as a connection
// does, and checks the framing and the wire types both ways:
//   - a payload comes back only behind the 0x12 0x34 magic, never longer
//     than the packet size; a longer announced length is ErrTooLarge (read
//     before any payload byte), a bad magic ErrMalformed;
//   - re-framing the payloads read reproduces the stream byte for byte;
//   - the default packet size reads exactly what the largest one reads,
//     or refuses exactly the packets longer than it;
//   - a payload read as a request body chunk (u16 length and data) that is
//     well formed re-encodes to the same packet;
//   - a payload read as a run of AJP strings re-encodes to the same bytes
//     (the 0xFFFF null marker included) up to the first malformed string,
//     which wraps ErrMalformed; strings sliced from the payload's copy
//     equal strings copied one by one.
//
// Seeds: the FORWARD_REQUEST packets captured from mod_proxy_ajp and mod_jk
// (testdata/fuzz/FuzzForwardRequest, see capture_test.go), alone and
// followed by body chunks and CPING, as a web server sends them.
func FuzzPacket(f *testing.F) {
	captured := capturedPackets(f)
	for _, p := range captured {
		f.Add(p)
		f.Add(bytes.Join([][]byte{p, bodyPacket([]byte("body-body")), bodyPacket(nil), rawPacket(byte(typeCPing))}, nil))
	}
	f.Add(bytes.Join(captured, nil))
	f.Add(rawPacket(byte(typeCPing)))
	f.Add([]byte{0x12, 0x34, 0xFF, 0xFF, 1, 2, 3})
	f.Add([]byte{'A', 'B', 0, 1, byte(typeCPong)})
	f.Add(rawPacket(0, 3, 'a', 'b', 'c', 0, 0xFF, 0xFF, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		small := make([]byte, DefaultPacketSize)
		large := make([]byte, MaxPacketSize)
		rs, rl := bytes.NewReader(data), bytes.NewReader(data)
		var reframed []byte
		for {
			off := len(data) - rl.Len()
			pl, errL := readPacket(rl, large)
			ps, errS := readPacket(rs, small)
			if errL != nil {
				checkPacketError(t, data[off:], errL, MaxPacketSize)
				if errS == nil {
					t.Fatalf("%d-byte packets read a packet the largest size refuses (%v)", DefaultPacketSize, errL)
				}
				break
			}
			if len(pl) > MaxPacketSize-headerLen {
				t.Fatalf("payload of %d bytes", len(pl))
			}
			switch {
			case len(pl) <= DefaultPacketSize-headerLen:
				if errS != nil || !bytes.Equal(ps, pl) {
					t.Fatalf("packet sizes disagree on a %d-byte payload: %v", len(pl), errS)
				}
			case !errors.Is(errS, ErrTooLarge):
				t.Fatalf("%d-byte payload at packet size %d: %v, want ErrTooLarge", len(pl), DefaultPacketSize, errS)
			default:
				// The small reader stopped at the header; both stop here.
				rs = nil
			}
			reframed = append(reframed, 0x12, 0x34)
			reframed = binary.BigEndian.AppendUint16(reframed, uint16(len(pl)))
			reframed = append(reframed, pl...)
			checkBodyChunk(t, pl)
			checkStrings(t, pl)
			if rs == nil {
				break
			}
		}
		if !bytes.HasPrefix(data, reframed) {
			t.Fatalf("re-framed payloads differ from the stream they were read from")
		}
	})
}

// checkPacketError checks why readPacket refused rest (the stream from the
// packet's first byte on).
func checkPacketError(t *testing.T, rest []byte, err error, size int) {
	t.Helper()
	switch {
	case len(rest) < headerLen:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d-byte header: %v, want EOF", len(rest), err)
		}
	case rest[0] != 0x12 || rest[1] != 0x34:
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("bad magic: %v, want ErrMalformed", err)
		}
	case int(binary.BigEndian.Uint16(rest[2:])) > size-headerLen:
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d-byte payload: %v, want ErrTooLarge", binary.BigEndian.Uint16(rest[2:]), err)
		}
	default:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated payload: %v, want ErrUnexpectedEOF", err)
		}
	}
}

// checkBodyChunk reads p as a request body packet (no type byte) the way
// body.next does and re-encodes a well-formed one.
func checkBodyChunk(t *testing.T, p []byte) {
	t.Helper()
	if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != len(p)-2 {
		return // body.next refuses it
	}
	want := append([]byte{0x12, 0x34}, binary.BigEndian.AppendUint16(nil, uint16(len(p)))...)
	if got := bodyPacket(p[2:]); !bytes.Equal(got, append(want, p...)) {
		t.Fatalf("body chunk re-encodes as % x", got[:min(len(got), 16)])
	}
}

// checkStrings decodes p as AJP strings until one is malformed and
// re-encodes them.
func checkStrings(t *testing.T, p []byte) {
	t.Helper()
	copied := &decoder{b: p}
	sliced := &decoder{b: p, s: string(p)}
	e := newEncoder(nil, magicIn, headerLen+len(p))
	for copied.off < len(p) {
		s, null := copied.str("s")
		s2, null2 := sliced.str("s")
		if (copied.err == nil) != (sliced.err == nil) || s != s2 || null != null2 || copied.off != sliced.off {
			t.Fatalf("copied and sliced strings differ: %q/%v/%v, %q/%v/%v", s, null, copied.err, s2, null2, sliced.err)
		}
		if copied.err != nil {
			if !errors.Is(copied.err, ErrMalformed) {
				t.Fatalf("string error %v does not wrap ErrMalformed", copied.err)
			}
			return
		}
		if null {
			if s != "" {
				t.Fatalf("null string with a value %q", s)
			}
			e.null()
		} else {
			e.str(s)
		}
		if !e.ok || !bytes.Equal(e.b[headerLen:], p[:copied.off]) {
			t.Fatalf("strings re-encode as % x, want % x", e.b[headerLen:], p[:copied.off])
		}
	}
}

// capturedPackets returns the FORWARD_REQUEST packets captured from Apache
// (one "go test fuzz v1" []byte value per file).
func capturedPackets(tb testing.TB) [][]byte {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzForwardRequest", "*"))
	var out [][]byte
	for _, name := range files {
		if !strings.HasPrefix(filepath.Base(name), "mod_") {
			continue // a fuzzer's find, not a capture
		}
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "\n[]byte(")
		if !ok {
			tb.Fatalf("%s: not a []byte corpus file", name)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		out = append(out, []byte(s))
	}
	if len(out) == 0 {
		tb.Fatal("no captured packets in testdata/fuzz/FuzzForwardRequest")
	}
	return out
}
