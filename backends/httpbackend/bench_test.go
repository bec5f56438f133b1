package httpbackend

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, like a codec's
// writer that has sent the bytes.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// BenchmarkServeGET is the backend hop of a proxied GET: ReverseProxy,
// the inline transport over a kept connection, and an instance answering
// a few bytes.
func BenchmarkServeGET(b *testing.B) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("a1 /hello\n"))
	}))
	defer app.Close()
	be, err := New(Options{Addr: app.Listener.Addr().String()})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	r := httptest.NewRequest("GET", "/hello", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "wrk")
	r.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: make(http.Header, 4)}
		if err := be.Serve(w, r); err != nil {
			b.Fatal(err)
		}
	}
}
