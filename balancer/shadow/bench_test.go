package shadow

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// BenchmarkClientLatency is what a client of a shadowed route waits for,
// side by side: the primary alone, shadowed to a fast backend, and
// shadowed to one that takes 50ms per copy (the queue fills and copies
// are dropped; the client must not notice).
func BenchmarkClientLatency(b *testing.B) {
	primary := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, world\n")
		return nil
	})
	slow := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
		return primary(w, r)
	})
	req := request(b, "GET", "/app/x", "")
	for _, c := range []struct {
		name    string
		backend func() (backends.Backend, func())
	}{
		{"primary-only", func() (backends.Backend, func()) { return primary, func() {} }},
		{"shadow-fast", func() (backends.Backend, func()) {
			s := New(Config{Route: "/app/", Primary: primary, Shadow: primary, Percent: 100})
			return s, s.Close
		}},
		{"shadow-slow", func() (backends.Backend, func()) {
			s := New(Config{Route: "/app/", Primary: primary, Shadow: slow, Percent: 100})
			return s, s.Close
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			be, stop := c.backend()
			defer stop()
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				if err := be.Serve(w, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
