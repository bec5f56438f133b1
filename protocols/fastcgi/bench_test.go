package fastcgi

import (
	"bytes"
	"context"
	"testing"

	"github.com/junction-gw/junction/vars"
)

// BenchmarkDecodeNginxRequest decodes a GET captured from nginx (records,
// PARAMS name-values, then the *http.Request), as the connection reader
// does per request.
func BenchmarkDecodeNginxRequest(b *testing.B) {
	data, err := readSeed("testdata/fuzz/FuzzRecordReader/nginx-1")
	if err != nil {
		b.Fatal(err)
	}
	br := bytes.NewReader(data)
	rr := newRecordReader(br)
	var params []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		br.Reset(data)
		// A fresh buffer per request, as the connection collects PARAMS.
		params = nil
		// Stop at the end of the capture rather than at the EOF error, which
		// a real connection never pays per request.
		for br.Len() > 0 {
			r, _, err := rr.next()
			if err != nil {
				b.Fatal(err)
			}
			if r.Type == typeParams {
				params = append(params, r.content...)
			}
		}
		v, err := parseOwnedNameValues(params)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := vars.Request(context.Background(), v, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNameValues isolates PARAMS decoding of the same request.
func BenchmarkNameValues(b *testing.B) {
	data, err := readSeed("testdata/fuzz/FuzzNameValues/nginx-1")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseNameValues(data); err != nil {
			b.Fatal(err)
		}
	}
}
