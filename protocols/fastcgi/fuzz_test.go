package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
)

// Seeds under testdata/fuzz/ were captured from nginx, lighttpd, Apache
// mod_proxy_fcgi and cgi-fcgi by TestCapture.

func decodeAll(b []byte) ([]record, error) {
	var out []record
	rr := newRecordReader(bytes.NewReader(b))
	for {
		r, _, err := rr.next()
		if err != nil {
			if errors.Is(err, io.EOF) && !rr.inRecord() {
				return out, nil
			}
			return out, err
		}
		r.content = bytes.Clone(r.content)
		out = append(out, r)
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add(get(1, 0, "/hello"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeAll(data)
		var enc []byte
		for _, r := range recs {
			if int(r.ContentLength) != len(r.content) {
				t.Fatalf("header says %d content bytes, got %d", r.ContentLength, len(r.content))
			}
			enc = appendRecord(enc, r.Type, r.ID, r.content, r.PaddingLength)
		}
		again, err2 := decodeAll(enc)
		if err2 != nil {
			t.Fatalf("re-decoding %d good records: %v (first decode: %v)", len(recs), err2, err)
		}
		if len(again) != len(recs) {
			t.Fatalf("round trip: %d records, want %d", len(again), len(recs))
		}
		for i := range recs {
			if again[i].header != recs[i].header || !bytes.Equal(again[i].content, recs[i].content) {
				t.Fatalf("record %d changed in the round trip", i)
			}
		}
		if err == nil && !bytes.Equal(stripPadding(data, recs), enc) {
			// Only padding bytes may differ between input and encoding.
			t.Fatalf("re-encoding differs beyond padding")
		}
	})
}

// stripPadding zeroes the padding and reserved byte of each record.
func stripPadding(data []byte, recs []record) []byte {
	out := bytes.Clone(data)
	off := 0
	for _, r := range recs {
		out[off+7] = 0 // reserved
		off += headerLen + int(r.ContentLength)
		clear(out[off : off+int(r.PaddingLength)])
		off += int(r.PaddingLength)
	}
	return out
}

func FuzzNameValues(f *testing.F) {
	f.Add(nv("REQUEST_METHOD", "GET", "HTTP_X", strings.Repeat("y", 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseNameValues(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		enc := appendNameValues(nil, v)
		again, err := parseNameValues(enc)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(again, v) && !(len(again) == 0 && len(v) == 0) {
			t.Fatalf("round trip changed the pairs")
		}
		if len(enc) > len(data) {
			t.Fatalf("shortest encoding (%d bytes) longer than the input (%d)", len(enc), len(data))
		}
	})
}

// FuzzServeConn feeds arbitrary bytes to a whole connection: the server
// must never panic, must end the connection, and must leave nothing
// running (synctest fails on leaked goroutines).
func FuzzServeConn(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzRecordReader", "*"))
	for _, s := range seeds {
		if b, err := readSeed(s); err == nil {
			f.Add(b)
		}
	}
	f.Add(cat(get(1, flagKeepConn, "/hello"), post(2, 0, "/echo", []byte("abc"), 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) {
			s := &Server{Handler: testHandler(), Logger: quietLogger(), Multiplex: true, MaxRequestsPerConn: 8, MaxHeaderBytes: 4096}
			exchange(t, s, data)
			if n := s.inflight.Load(); n != 0 {
				t.Fatalf("inflight = %d after the connection ended", n)
			}
		})
	})
}

// readSeed decodes a one-value corpus file ("go test fuzz v1" and a
// []byte literal).
func readSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "\n[]byte(")
	if !ok {
		return nil, errors.New("not a []byte seed")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	return []byte(s), err
}
