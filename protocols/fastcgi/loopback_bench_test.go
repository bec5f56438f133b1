package fastcgi

import (
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkLoopbackRequest serves one GET per TCP loopback connection, as
// nginx does without upstream keepalive: BEGIN_REQUEST without KEEP_CONN,
// PARAMS, empty STDIN, then read until the server closes.
func BenchmarkLoopbackRequest(b *testing.B) {
	data, err := readSeed("testdata/fuzz/FuzzRecordReader/nginx-1")
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello\n")
	})}
	go s.Serve(l)
	defer s.Close()
	addr := l.Addr().String()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := c.Read(buf)
			n += m
			if err != nil {
				break
			}
		}
		c.Close()
		if n == 0 {
			b.Fatal("no reply")
		}
	}
}
