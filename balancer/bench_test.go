package balancer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/junction-gw/junction/internal/benchcpu"
)

// okBackend answers 200 and nothing else: the benchmarks measure the
// pool, not an instance.
type okBackend struct{}

func (okBackend) Serve(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

// nullWriter is a ResponseWriter that keeps nothing.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(int)             {}

// BenchInstances returns n instances named as discovery names them
// ("IP:port"), all answering 200.
func benchInstances(n int) []Instance {
	out := make([]Instance, n)
	for i := range out {
		out[i] = Instance{Name: fmt.Sprintf("10.0.0.%d:8080", i+1), Backend: okBackend{}}
	}
	return out
}

// benchRequests returns n GETs with distinct X-User keys.
func benchRequests(n int) []*http.Request {
	out := make([]*http.Request, n)
	for i := range out {
		out[i] = httptest.NewRequest(http.MethodGet, "/", nil)
		out[i].Header.Set("X-User", fmt.Sprint("user-", i))
	}
	return out
}

// BenchmarkPoolSelect is one request through a pool of five instances
// (choosing, taking and releasing a slot), by policy, from one goroutine
// (the policy's own cost) and from parallel goroutines as the codec
// servers call it (the pool's lock shared).
func BenchmarkPoolSelect(b *testing.B) {
	for _, policy := range []string{RoundRobin, Hash} {
		for _, par := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/parallel=%v", policy, par), func(b *testing.B) {
				p, err := NewPool("bench", benchInstances(5), Options{Policy: policy, HashKey: "header:X-User"})
				if err != nil {
					b.Fatal(err)
				}
				benchServe(b, p, par)
			})
		}
	}
}

// benchServe sends requests through p, from parallel goroutines if par,
// and fails the benchmark on an error.
func benchServe(b *testing.B, p *Pool, par bool) {
	reqs := benchRequests(64)
	b.ReportAllocs()
	defer benchcpu.Start(b)()
	if !par {
		w := &nullWriter{h: http.Header{}}
		i := 0
		for b.Loop() {
			if err := p.Serve(w, reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &nullWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			if err := p.Serve(w, reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
