package cgiresp

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		status   int
		reason   string
		header   http.Header
		local    string
		kind     Kind
		body     string
		statusLn bool
	}{
		{name: "no status (AWStats)", in: "Content-type: text/html\n\n<html>", status: 200,
			header: http.Header{"Content-Type": {"text/html"}}, body: "<html>"},
		{name: "crlf with reason", in: "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope", status: 404, reason: "Not Found",
			header: http.Header{"Content-Type": {"text/plain"}}, body: "nope"},
		{name: "bare code", in: "Status: 404\n\n", status: 404, header: http.Header{}},
		{name: "php-cgi", in: "X-Powered-By: PHP/8.2.0\r\nStatus: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\nerr",
			status: 500, reason: "Internal Server Error", body: "err",
			header: http.Header{"X-Powered-By": {"PHP/8.2.0"}, "Content-Type": {"text/html; charset=UTF-8"}}},
		{name: "local redirect", in: "Location: /other?a=1\n\n", local: "/other?a=1", kind: LocalRedirect,
			header: http.Header{"Location": {"/other?a=1"}}},
		{name: "local path with other header is client redirect", in: "Location: /x\nContent-Type: text/html\n\nbody",
			status: 302, kind: ClientRedirect, body: "body",
			header: http.Header{"Location": {"/x"}, "Content-Type": {"text/html"}}},
		{name: "explicit status with relative location stays", in: "Status: 302 Found\nLocation: /x\n\n",
			status: 302, reason: "Found", kind: ClientRedirect, header: http.Header{"Location": {"/x"}}},
		{name: "explicit 200 with local location stays", in: "Status: 200\nLocation: /x\n\n",
			status: 200, kind: ClientRedirect, header: http.Header{"Location": {"/x"}}},
		{name: "absolute uri", in: "Location: https://example.org/\n\n", status: 302, kind: ClientRedirect,
			header: http.Header{"Location": {"https://example.org/"}}},
		{name: "network path is not local", in: "Location: //evil.example/\n\n", status: 302, kind: ClientRedirect,
			header: http.Header{"Location": {"//evil.example/"}}},
		{name: "nph style first line", in: "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n\r\nok", status: 201, reason: "Created",
			statusLn: true, header: http.Header{"Content-Type": {"text/plain"}}, body: "ok"},
		{name: "repeated fields and OWS", in: "Set-Cookie: a=1\nset-cookie:b=2  \nX-Empty:\n\n", status: 200,
			header: http.Header{"Set-Cookie": {"a=1", "b=2"}, "X-Empty": {""}}},
		{name: "eof ends head", in: "Status: 204", status: 204, header: http.Header{}},
		{name: "body keeps blank lines", in: "Content-Type: text/plain\n\n\n\nx", status: 200,
			header: http.Header{"Content-Type": {"text/plain"}}, body: "\n\nx"},
		{name: "obs-text allowed", in: "X-Name: caf\xc3\xa9\n\n", status: 200, header: http.Header{"X-Name": {"caf\xc3\xa9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			resp, err := Parse(br, Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if resp.Status != tt.status || resp.Reason != tt.reason || resp.LocalRedirect != tt.local || resp.StatusLine != tt.statusLn {
				t.Errorf("got status %d %q local %q statusLine %v, want %d %q %q %v",
					resp.Status, resp.Reason, resp.LocalRedirect, resp.StatusLine, tt.status, tt.reason, tt.local, tt.statusLn)
			}
			if !reflect.DeepEqual(resp.Header, tt.header) {
				t.Errorf("header %v, want %v", resp.Header, tt.header)
			}
			if resp.Kind() != tt.kind {
				t.Errorf("kind %v, want %v", resp.Kind(), tt.kind)
			}
			body, _ := io.ReadAll(br)
			if string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		want error
	}{
		{"empty", "", Limits{}, ErrNoHead},
		{"blank first line", "\nbody", Limits{}, ErrMalformed},
		{"bare CR in value", "X-A: a\rb\n\n", Limits{}, ErrMalformed},
		{"CR injection of header", "X-A: a\rSet-Cookie: x\n\n", Limits{}, ErrMalformed},
		{"double CR", "X-A: a\r\r\n\n", Limits{}, ErrMalformed},
		{"NUL in value", "X-A: a\x00b\n\n", Limits{}, ErrMalformed},
		{"conflicting Content-Length", "Content-Length: 5\nContent-Length: 6\n\nhello!", Limits{}, ErrMalformed},
		{"conflicting Content-Length list", "Content-Length: 5, 6\n\nhello!", Limits{}, ErrMalformed},
		{"negative Content-Length", "Content-Length: -1\n\n", Limits{}, ErrMalformed},
		{"signed Content-Length", "Content-Length: +5\n\nhello", Limits{}, ErrMalformed},
		{"empty Content-Length", "Content-Length:\n\n", Limits{}, ErrMalformed},
		{"obs-fold", "X-A: a\n b\n\n", Limits{}, ErrMalformed},
		{"no colon", "hello world\n\n", Limits{}, ErrMalformed},
		{"space in name", "X A: b\n\n", Limits{}, ErrMalformed},
		{"space before colon", "X-A : b\n\n", Limits{}, ErrMalformed},
		{"empty name", ": b\n\n", Limits{}, ErrMalformed},
		{"bad status", "Status: abc\n\n", Limits{}, ErrMalformed},
		{"1xx status", "Status: 100 Continue\n\n", Limits{}, ErrMalformed},
		{"status too long", "Status: 2000\n\n", Limits{}, ErrMalformed},
		{"repeated status", "Status: 200\nStatus: 404\n\n", Limits{}, ErrMalformed},
		{"bad protocol", "HTTP/2 200 OK\n\n", Limits{}, ErrMalformed},
		{"status line later", "X-A: b\nHTTP/1.1 200 OK\n\n", Limits{}, ErrMalformed},
		{"too many bytes", "X-A: " + strings.Repeat("a", 100) + "\n\n", Limits{MaxBytes: 64}, ErrTooLarge},
		{"endless line", strings.Repeat("a", 1<<20), Limits{}, ErrTooLarge},
		{"too many lines", strings.Repeat("X-A: b\n", 10) + "\n", Limits{MaxLines: 5}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(bufio.NewReaderSize(strings.NewReader(tt.in), 16), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// endless never ends: the parser must give up within its byte bound.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n += len(p)
	return len(p), nil
}

func TestParseEndlessHeadIsBounded(t *testing.T) {
	src := &endless{}
	_, err := Parse(bufio.NewReaderSize(src, 4096), Limits{MaxBytes: 8192})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if src.n > 8192+4096 {
		t.Errorf("read %d bytes for an 8 KiB limit", src.n)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse(bufio.NewReader(io.MultiReader(strings.NewReader("X-A: b\n"), iotestErr{boom})), Limits{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapped boom", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestAppendHeadRoundTrip(t *testing.T) {
	for _, in := range []string{
		"Content-Type: text/html\n\n",
		"Location: /a\n\n",
		"Location: /a\nX-B: c\n\n",
		"Status: 301 Moved\nLocation: /a\n\n",
		"HTTP/1.0 404 Not Found\nSet-Cookie: a\nSet-Cookie: b\n\n",
	} {
		a, err := Parse(bufio.NewReader(strings.NewReader(in)), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		head := a.AppendHead(nil)
		b, err := Parse(bufio.NewReader(strings.NewReader(string(head))), Limits{})
		if err != nil {
			t.Fatalf("reparse %q: %v", head, err)
		}
		if !sameResponse(a, b) {
			t.Errorf("%q -> %q: %+v != %+v", in, head, a, b)
		}
	}
}

func sameResponse(a, b *Response) bool {
	return a.Status == b.Status && a.Reason == b.Reason && a.LocalRedirect == b.LocalRedirect &&
		reflect.DeepEqual(a.Header, b.Header)
}

func BenchmarkParse(b *testing.B) {
	const in = "X-Powered-By: PHP/8.2.0\r\nStatus: 200 OK\r\nContent-type: text/html; charset=UTF-8\r\n" +
		"Set-Cookie: PHPSESSID=abc; path=/\r\nCache-Control: no-store\r\n\r\n<html>body</html>"
	sr := strings.NewReader(in)
	br := bufio.NewReader(sr)
	b.ReportAllocs()
	for b.Loop() {
		sr.Reset(in)
		br.Reset(sr)
		if _, err := Parse(br, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
