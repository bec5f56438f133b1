package fcgiwire

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Version: Version1, Type: TypeStdout, ID: 0x1234, ContentLength: 0xFFFF, PaddingLength: 7}
	var b [HeaderLen]byte
	h.Put(b[:])
	if want := []byte{1, 6, 0x12, 0x34, 0xFF, 0xFF, 7, 0}; !bytes.Equal(b[:], want) {
		t.Fatalf("Put = % x, want % x", b, want)
	}
	if got := ParseHeader(b[:]); got != h {
		t.Errorf("ParseHeader = %+v, want %+v", got, h)
	}
}

func TestAppendRecord(t *testing.T) {
	got := AppendRecord(nil, TypeParams, 1, []byte("abc"), PadFor(3))
	want := []byte{1, 4, 0, 1, 0, 3, 5, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

func TestLengths(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 65535, MaxNameValueLen} {
		b := AppendLen(nil, n)
		if wantLen := map[bool]int{true: 1, false: 4}[n < 128]; len(b) != wantLen {
			t.Errorf("AppendLen(%d) took %d bytes", n, len(b))
		}
		got, used, err := ReadLen(b)
		if err != nil || got != n || used != len(b) {
			t.Errorf("ReadLen(AppendLen(%d)) = %d, %d, %v", n, got, used, err)
		}
	}
	for _, b := range [][]byte{nil, {0x80}, {0x80, 0, 0}} {
		if _, _, err := ReadLen(b); !errors.Is(err, ErrShortLength) {
			t.Errorf("ReadLen(% x) error %v", b, err)
		}
	}
	if got := AppendPair(nil, "A", "bc"); !bytes.Equal(got, []byte{1, 2, 'A', 'b', 'c'}) {
		t.Errorf("AppendPair = % x", got)
	}
}

func TestAppendBeginRequest(t *testing.T) {
	got := AppendBeginRequest(nil, 1, RoleResponder, FlagKeepConn)
	want := []byte{1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

// TestFrameStream frames contents around the record limit after a prefix
// that must stay, and reads them back record by record.
func TestFrameStream(t *testing.T) {
	for _, n := range []int{0, 1, 8, 13, MaxContentLen - 1, MaxContentLen, MaxContentLen + 1, 2 * MaxContentLen, 200001} {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte(i*7 + i>>16)
		}
		prefix := []byte("prefix")
		buf := append(append([]byte(nil), prefix...), content...)
		// Junk in the spare capacity must not leak into the padding.
		buf = slices.Grow(buf, 64)
		for i := len(buf); i < cap(buf); i++ {
			buf[:cap(buf)][i] = 0xAA
		}
		out := FrameStream(buf, len(prefix), TypeParams, 3)
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatalf("n=%d: prefix changed: %q", n, out[:len(prefix)])
		}
		var got []byte
		records := 0
		for rest := out[len(prefix):]; len(rest) > 0; records++ {
			if len(rest) < HeaderLen {
				t.Fatalf("n=%d: %d stray bytes", n, len(rest))
			}
			h := ParseHeader(rest)
			size := HeaderLen + int(h.ContentLength) + int(h.PaddingLength)
			if h.Version != Version1 || h.Type != TypeParams || h.ID != 3 || h.ContentLength == 0 || size%8 != 0 || size > len(rest) {
				t.Fatalf("n=%d: record %d header %+v, %d bytes left", n, records, h, len(rest))
			}
			got = append(got, rest[HeaderLen:HeaderLen+int(h.ContentLength)]...)
			for _, p := range rest[HeaderLen+int(h.ContentLength) : size] {
				if p != 0 {
					t.Fatalf("n=%d: padding byte %#x", n, p)
				}
			}
			rest = rest[size:]
		}
		if !bytes.Equal(got, content) {
			t.Errorf("n=%d: content differs after framing (%d bytes back)", n, len(got))
		}
		if want := (n + MaxContentLen - 1) / MaxContentLen; records != want {
			t.Errorf("n=%d: %d records, want %d", n, records, want)
		}
	}
}
