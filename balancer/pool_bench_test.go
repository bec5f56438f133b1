package balancer

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// nopWriter is a ResponseWriter that keeps nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(int)             {}
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkPoolServe is the pool's own cost per request (selection,
// slots, bookkeeping, the sparkline counters), over instances that answer
// at once.
func BenchmarkPoolServe(b *testing.B) {
	ok := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusOK); return nil }
	var insts []Instance
	for _, n := range []string{"a", "b", "c"} {
		insts = append(insts, Instance{Name: n, Backend: backendFunc(ok), MaxConns: 64})
	}
	p, err := NewPool("bench", insts, Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Serve(w, r); err != nil {
			b.Fatal(err)
		}
	}
}

type backendFunc func(http.ResponseWriter, *http.Request) error

func (f backendFunc) Serve(w http.ResponseWriter, r *http.Request) error { return f(w, r) }
