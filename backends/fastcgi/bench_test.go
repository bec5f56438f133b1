package fastcgi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/junction-gw/junction/internal/benchcpu"
	"github.com/yookoala/gofast"
)

// benchReply is what the benchmark's responder answers.
var benchReply = []byte("hello from the responder\n")

// benchResponder serves Go's net/http/fcgi responder on a Unix socket: it
// reads the whole body and answers benchReply.
func benchResponder(b *testing.B) string {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "bench.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(benchReply)
	}))
	return sock
}

// benchWriter is a ResponseWriter that keeps the status and counts the
// body, reused across iterations.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }

func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// Flush does nothing; junction's front ends flush, and the relay asks.
func (w *benchWriter) Flush() {}

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// BenchmarkResponder sends the same requests to the same in-process
// responder through junction's client (each request on a new connection,
// and with keep-alive) and through gofast's Client.Do (a new connection
// per request, its params map built from the same cgienv variables, as
// junction's requests with a body were sent before). Compare ns/op and
// allocs/op of the sub-benchmarks side by side:
//
//	go test ./backends/fastcgi -run '^$' -bench Responder -benchmem -count=3
func BenchmarkResponder(b *testing.B) {
	sock := benchResponder(b)
	for _, size := range []int{0, 64 << 10} {
		body := testBody(size)
		name := "GET"
		if size > 0 {
			name = fmt.Sprintf("POST%dKiB", size>>10)
		}
		for _, client := range []struct {
			name string
			keep int
			do   func(be *Backend, w http.ResponseWriter, r *http.Request) error
		}{
			{"junction", 0, (*Backend).Serve},
			{"junction-keepalive", 1, (*Backend).Serve},
			{"gofast", 0, gofastDo(sock)},
		} {
			b.Run(name+"/"+client.name, func(b *testing.B) {
				be, err := New(Options{Addr: "unix:" + sock, Root: "/srv", KeepAlive: client.keep})
				if err != nil {
					b.Fatal(err)
				}
				defer be.Close()
				method := "GET"
				if size > 0 {
					method = "POST"
				}
				// One request, its body rewound each time: what is
				// measured is the client, not building requests.
				br := bytes.NewReader(body)
				r := httptest.NewRequest(method, "/bench.php", br)
				r.Header.Set("User-Agent", "bench/1")
				r.Header.Set("Accept", "*/*")
				w := &benchWriter{h: http.Header{}}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				reportCPU := benchcpu.Start(b)
				for b.Loop() {
					br.Reset(body)
					w.reset()
					if err := client.do(be, w, r); err != nil {
						b.Fatal(err)
					}
					if w.status != http.StatusOK || w.n != len(benchReply) {
						b.Fatalf("status %d, %d body bytes", w.status, w.n)
					}
				}
				// The process's CPU time (client and responder both) per
				// request: steadier than ns/op on a machine whose other
				// work takes turns with the benchmark's goroutines.
				reportCPU()
			})
		}
	}
}

// gofastDo sends r through gofast's client on a new connection to sock.
func gofastDo(sock string) func(be *Backend, w http.ResponseWriter, r *http.Request) error {
	factory := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", sock))
	return func(be *Backend, w http.ResponseWriter, r *http.Request) error {
		s, err := be.resolve(r)
		if err != nil {
			return err
		}
		client, err := factory()
		if err != nil {
			return err
		}
		defer client.Close()
		req := gofast.NewRequest(r)
		vs := be.env.Vars(r, s)
		req.Params = make(map[string]string, len(vs))
		for _, kv := range vs {
			req.Params[kv.Name] = kv.Value
		}
		if r.ContentLength == 0 {
			req.Stdin = nil
		}
		pipe, err := client.Do(req)
		if err != nil {
			return err
		}
		var stderr bytes.Buffer
		if err := pipe.WriteTo(w, &stderr); err != nil {
			return fmt.Errorf("gofast: %w (%s)", err, stderr.Bytes())
		}
		return nil
	}
}
