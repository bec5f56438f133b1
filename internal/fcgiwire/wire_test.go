package fcgiwire

import (
	"bytes"
	"errors"
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
