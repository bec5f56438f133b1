package cgiresp

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, never lets CR, LF or NUL into a
// header, and that parse -> AppendHead -> parse is stable.
func FuzzParse(f *testing.F) {
	f.Add([]byte("Content-type: text/html\n\n<html></html>"))
	f.Add([]byte("Location: /x\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := Parse(bufio.NewReaderSize(bytes.NewReader(in), 16), Limits{MaxBytes: 4096, MaxLines: 100})
		if err != nil {
			return
		}
		for k, vs := range a.Header {
			if !validName(k) {
				t.Fatalf("bad name %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("bad value %q", v)
				}
			}
		}
		if a.LocalRedirect == "" && (a.Status < 200 || a.Status > 999) {
			t.Fatalf("status %d", a.Status)
		}
		head := a.AppendHead(nil)
		b, err := Parse(bufio.NewReader(bytes.NewReader(head)), Limits{MaxBytes: 1 << 20, MaxLines: 10000})
		if err != nil {
			t.Fatalf("reparse %q: %v", head, err)
		}
		if !sameResponse(a, b) {
			t.Fatalf("round trip %q -> %q: %+v != %+v", in, head, a, b)
		}
	})
}
