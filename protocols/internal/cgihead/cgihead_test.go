package cgihead

import (
	"bufio"
	"bytes"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		h       http.Header
		want    string
		dropped []string
	}{
		{"no fields", 200, nil, "Status: 200 OK\r\n\r\n", nil},
		{"unknown status has no reason", 599, http.Header{}, "Status: 599\r\n\r\n", nil},
		{"lowest", 100, nil, "Status: 100 Continue\r\n\r\n", nil},
		{"highest", 999, nil, "Status: 999\r\n\r\n", nil},
		{"sorted, repeated values kept in order", 302,
			http.Header{"Location": {"../x"}, "Set-Cookie": {"a=1", "b=2"}, "Content-Type": {"text/plain"}},
			"Status: 302 Found\r\nContent-Type: text/plain\r\nLocation: ../x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", nil},
		{"status field left out", 404, http.Header{"Status": {"200 OK"}, "status": {"201"}, "X": {"y"}},
			"Status: 404 Not Found\r\nX: y\r\n\r\n", nil},
		{"value with CR LF dropped", 200, http.Header{"X-Bad": {"a\r\nSet-Cookie: evil=1"}, "X-Good": {"ok"}},
			"Status: 200 OK\r\nX-Good: ok\r\n\r\n", []string{"X-Bad"}},
		{"only the bad value of a field dropped", 200, http.Header{"X": {"ok", "b\nad", "z\x00"}},
			"Status: 200 OK\r\nX: ok\r\n\r\n", []string{"X"}},
		{"bad names dropped", 200, http.Header{"Bad Name": {"x"}, "Bad:Name": {"x"}, "": {"x"}, "Ünicode": {"x"}, "A": {"1"}},
			"Status: 200 OK\r\nA: 1\r\n\r\n", []string{"", "Bad Name", "Bad:Name", "Ünicode"}},
		{"value kept as is", 200, http.Header{"X": {"  spaced\tout  "}, "Y": {""}},
			"Status: 200 OK\r\nX:   spaced\tout  \r\nY: \r\n\r\n", nil},
		{"many fields", 200, manyFields(20), manyFieldsHead(20), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			bw := bufio.NewWriter(&b)
			dropped := Write(bw, tt.status, tt.h)
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("head\n%q\nwant\n%q", b.String(), tt.want)
			}
			if !slices.Equal(dropped, tt.dropped) {
				t.Errorf("dropped %q, want %q", dropped, tt.dropped)
			}
		})
	}
}

func manyFields(n int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set("X-"+string(rune('a'+i)), "v")
	}
	return h
}

func manyFieldsHead(n int) string {
	var b strings.Builder
	b.WriteString("Status: 200 OK\r\n")
	for i := range n {
		b.WriteString("X-" + string(rune('A'+i)) + ": v\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestWriteAllocs: a usual head costs no allocation.
func TestWriteAllocs(t *testing.T) {
	h := http.Header{"Content-Type": {"text/html"}, "Set-Cookie": {"a=1"}, "Cache-Control": {"no-store"}}
	bw := bufio.NewWriterSize(discard{}, 4096)
	if n := testing.AllocsPerRun(100, func() { Write(bw, 200, h) }); n != 0 {
		t.Errorf("Write allocates %v times", n)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestStatus(t *testing.T) {
	tests := []struct {
		code, want int
		logged     bool
	}{
		{200, 200, false},
		{100, 100, false},
		{103, 103, false},
		{599, 599, false},
		{999, 999, false},
		{99, 500, true},
		{0, 500, true},
		{-1, 500, true},
		{1000, 500, true},
		{2000, 500, true},
	}
	for _, tt := range tests {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		got := tt.code
		if !ValidStatus(got) {
			got = InvalidStatus(got, log, "request", 1)
		}
		if got != tt.want {
			t.Errorf("Status(%d) = %d, want %d", tt.code, got, tt.want)
		}
		if logged := logs.Len() > 0; logged != tt.logged {
			t.Errorf("Status(%d) logged %q", tt.code, logs.String())
		}
		if tt.logged && !strings.Contains(logs.String(), "request=1") {
			t.Errorf("Status(%d): log line without the codec's attributes: %q", tt.code, logs.String())
		}
	}
}
