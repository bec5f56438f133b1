package app

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFastCGIToCGI drives FastCGI (one connection per request, as
// nginx without fastcgi_keep_conn) → CGI in-process, one client at a
// time, so allocs/op is junction's per-request and per-connection cost
// plus the fixed cost of the client and of starting the script.
func BenchmarkFastCGIToCGI(b *testing.B) {
	dir := b.TempDir()
	script := filepath.Join(dir, "hello.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := parse(b, fmt.Sprintf(`
shutdown_timeout: 5s
log: {level: error}
listeners:
  - {protocol: fastcgi, address: "127.0.0.1:0", backend: cgi}
backends:
  cgi: {type: cgi, allow_root: true, script: %q}
`, script))
	// The production logger's level, not the tests' debug one: debug
	// lines per connection would dominate what is measured.
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	addr := a.Addrs()[0].String()
	req := fcgiBenchRequest(map[string]string{
		"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/hello", "REQUEST_URI": "/hello",
		"SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
		"REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
	})
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(req)
		got := 0
		for {
			k, err := c.Read(buf)
			got += k
			if err != nil {
				break
			}
		}
		c.Close()
		if got == 0 {
			b.Fatal("empty reply")
		}
	}
}

// fcgiBenchRequest is one FastCGI responder request with no body and no
// keep-alive, encoded by hand.
func fcgiBenchRequest(params map[string]string) []byte {
	rec := func(typ byte, content []byte) []byte {
		h := []byte{1, typ, 0, 1, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(h[4:], uint16(len(content)))
		return append(h, content...)
	}
	var p []byte
	for k, v := range params {
		p = append(p, byte(len(k)), byte(len(v)))
		p = append(p, k...)
		p = append(p, v...)
	}
	var out []byte
	out = append(out, rec(1, []byte{0, 1, 0, 0, 0, 0, 0, 0})...)
	out = append(out, rec(4, p)...)
	out = append(out, rec(4, nil)...)
	out = append(out, rec(5, nil)...)
	return out
}
