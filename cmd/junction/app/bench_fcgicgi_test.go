package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/junction-gw/junction/internal/fcgiwire"
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
		if err := oneShot(addr, req, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// fcgiBenchRequest is one FastCGI responder request with no body and no
// keep-alive.
func fcgiBenchRequest(params map[string]string) []byte {
	var p []byte
	for k, v := range params {
		p = fcgiwire.AppendPair(p, k, v)
	}
	out := fcgiwire.AppendBeginRequest(nil, 1, fcgiwire.RoleResponder, 0)
	out = fcgiwire.AppendRecord(out, fcgiwire.TypeParams, 1, p, fcgiwire.PadFor(len(p)))
	out = fcgiwire.AppendRecord(out, fcgiwire.TypeParams, 1, nil, 0)
	return fcgiwire.AppendRecord(out, fcgiwire.TypeStdin, 1, nil, 0)
}
