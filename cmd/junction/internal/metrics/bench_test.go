package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMiddleware is the per-request cost of the request metrics.
func BenchmarkMiddleware(b *testing.B) {
	m := New(prometheus.NewRegistry())
	h := m.Middleware("127.0.0.1:9000", "scgi", func(*http.Request) string { return "app" },
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hi\n")) }))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
