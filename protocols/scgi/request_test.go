package scgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/junction-gw/junction/vars"
)

// head builds a netstring from name/value pairs, for fixtures.
func head(pairs ...string) string {
	var b strings.Builder
	for _, p := range pairs {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return netstring(b.String())
}

// pairs builds vars from alternating names and values.
func pairs(nv ...string) vars.Vars {
	v := make(vars.Vars, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		v = append(v, vars.Var{Name: nv[i], Value: nv[i+1]})
	}
	return v
}

func netstring(s string) string { return itoa(len(s)) + ":" + s + "," }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

func TestReadHead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		limit   int
		want    vars.Vars
		wantLen int64
		wantErr error
	}{
		{
			name:    "spec example",
			in:      head("CONTENT_LENGTH", "27", "SCGI", "1", "REQUEST_METHOD", "POST", "REQUEST_URI", "/deepthought"),
			want:    pairs("CONTENT_LENGTH", "27", "SCGI", "1", "REQUEST_METHOD", "POST", "REQUEST_URI", "/deepthought"),
			wantLen: 27,
		},
		{
			name: "empty values and repeated HTTP_ names kept",
			in:   head("CONTENT_LENGTH", "0", "SCGI", "1", "CONTENT_TYPE", "", "HTTP_X", "1", "HTTP_X", "2"),
			want: pairs("CONTENT_LENGTH", "0", "SCGI", "1", "CONTENT_TYPE", "", "HTTP_X", "1", "HTTP_X", "2"),
		},
		{name: "CONTENT_LENGTH not first", in: head("SCGI", "1", "CONTENT_LENGTH", "0"), wantErr: ErrMalformed},
		{name: "SCGI missing", in: head("CONTENT_LENGTH", "0", "REQUEST_METHOD", "GET"), wantErr: ErrMalformed},
		{name: "SCGI not 1", in: head("CONTENT_LENGTH", "0", "SCGI", "2"), wantErr: ErrMalformed},
		{name: "repeated CONTENT_LENGTH", in: head("CONTENT_LENGTH", "0", "SCGI", "1", "CONTENT_LENGTH", "5"), wantErr: vars.ErrDuplicate},
		{name: "repeated SCRIPT_FILENAME", in: head("CONTENT_LENGTH", "0", "SCGI", "1", "SCRIPT_FILENAME", "/a", "SCRIPT_FILENAME", "/b"), wantErr: vars.ErrDuplicate},
		{name: "negative length", in: head("CONTENT_LENGTH", "-1", "SCGI", "1"), wantErr: ErrMalformed},
		{name: "signed length", in: head("CONTENT_LENGTH", "+1", "SCGI", "1"), wantErr: ErrMalformed},
		{name: "length with space", in: head("CONTENT_LENGTH", " 1", "SCGI", "1"), wantErr: ErrMalformed},
		{name: "huge length", in: head("CONTENT_LENGTH", "99999999999999999999", "SCGI", "1"), wantErr: ErrMalformed},
		{name: "no trailing comma", in: strings.TrimSuffix(head("CONTENT_LENGTH", "0", "SCGI", "1"), ",") + ";", wantErr: ErrMalformed},
		{name: "block not NUL terminated", in: netstring("CONTENT_LENGTH\x000\x00SCGI\x001"), wantErr: ErrMalformed},
		{name: "name without value", in: netstring("CONTENT_LENGTH\x000\x00SCGI\x00"), wantErr: ErrMalformed},
		{name: "empty name", in: netstring("CONTENT_LENGTH\x000\x00\x00x\x00SCGI\x001\x00"), wantErr: ErrMalformed},
		{name: "empty block", in: "0:,", wantErr: ErrMalformed},
		{name: "leading zero", in: "07:abcdefg,", wantErr: ErrMalformed},
		{name: "no digits", in: ":abc,", wantErr: ErrMalformed},
		{name: "letters in length", in: "1a:abc,", wantErr: ErrMalformed},
		{name: "truncated block", in: "100:CONTENT_LENGTH\x00", wantErr: ErrMalformed},
		{name: "over limit before allocating", in: "70000:", wantErr: ErrHeaderTooBig},
		{name: "endless digits", in: strings.Repeat("1", 50), limit: 1 << 62, wantErr: ErrHeaderTooBig},
		{name: "small limit", in: head("CONTENT_LENGTH", "0", "SCGI", "1"), limit: 10, wantErr: ErrHeaderTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if limit == 0 {
				limit = DefaultMaxHeaderBytes
			}
			got, n, err := readHead(bufio.NewReader(strings.NewReader(tt.in)), limit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) || n != tt.wantLen {
				t.Errorf("got %q (len %d), want %q (len %d)", got, n, tt.want, tt.wantLen)
			}
		})
	}
}

// TestNginxCaptures decodes requests captured from Debian's nginx scgi_pass.
func TestNginxCaptures(t *testing.T) {
	files, _ := filepath.Glob("testdata/nginx/*.scgi")
	if len(files) == 0 {
		t.Fatal("no captures in testdata/nginx")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(strings.NewReader(string(data)))
			v, n, err := readHead(br, DefaultMaxHeaderBytes)
			if err != nil {
				t.Fatal(err)
			}
			if v.Get("SCGI") != "1" || v.Get("REQUEST_METHOD") == "" {
				t.Errorf("vars = %q", v)
			}
			if rest := int64(br.Buffered()); rest != n {
				t.Errorf("body bytes after head = %d, CONTENT_LENGTH = %d", rest, n)
			}
			if got := string(appendHead(nil, v)); got != string(data[:len(data)-int(n)]) {
				t.Errorf("re-encoded head differs:\n got %q\nwant %q", got, data[:len(data)-int(n)])
			}
		})
	}
}

// FuzzReadHead checks the decoder never panics, respects the limit, and
// that whatever it accepts survives an encode/decode round trip.
func FuzzReadHead(f *testing.F) {
	files, _ := filepath.Glob("testdata/nginx/*.scgi")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(head("CONTENT_LENGTH", "0", "SCGI", "1")))
	f.Add([]byte("5:a\x00b\x00,"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 4096
		v, n, err := readHead(bufio.NewReader(strings.NewReader(string(data))), limit)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("negative CONTENT_LENGTH %d", n)
		}
		enc := appendHead(nil, v)
		v2, n2, err := readHead(bufio.NewReader(strings.NewReader(string(enc))), limit)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", enc, err)
		}
		if !reflect.DeepEqual(v, v2) || n != n2 {
			t.Fatalf("round trip: %q/%d != %q/%d", v, n, v2, n2)
		}
	})
}

func BenchmarkReadHead(b *testing.B) {
	data, err := os.ReadFile("testdata/nginx/get-repeated-headers.scgi")
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(nil)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		br.Reset(r)
		if _, _, err := readHead(br, DefaultMaxHeaderBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequest measures the whole decoder cost per request: the
// netstring head of a captured nginx request into an *http.Request.
func BenchmarkDecodeRequest(b *testing.B) {
	data, err := os.ReadFile("testdata/nginx/get-repeated-headers.scgi")
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(nil)
	br := bufio.NewReader(r)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		br.Reset(r)
		v, _, err := readHead(br, DefaultMaxHeaderBytes)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := vars.Request(ctx, v, http.NoBody); err != nil {
			b.Fatal(err)
		}
	}
}
