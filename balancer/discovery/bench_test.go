package discovery

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/internal/benchcpu"
)

type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(int)             {}

type okBackend struct{}

func (okBackend) Serve(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

// BenchmarkPoolWhileDiscovering is balancer's BenchmarkPoolSelect (five
// instances, parallel requests) with a Watcher refreshing the pool's
// instance set every millisecond, 5000 times its default rate: "static"
// has no watcher, "unchanged" looks up the same five records each time
// (the common case: no Replace), "changing" alternates between five and
// four records, so every refresh swaps the set (Replace).
func BenchmarkPoolWhileDiscovering(b *testing.B) {
	five := addrs("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5")
	for _, policy := range []string{balancer.RoundRobin, balancer.Hash} {
		for _, mode := range []string{"static", "unchanged", "changing"} {
			b.Run(policy+"/"+mode, func(b *testing.B) {
				f := newFakeDNS()
				f.hosts["app"] = five
				var insts []balancer.Instance
				for _, a := range five {
					insts = append(insts, balancer.Instance{Name: netip.AddrPortFrom(a, 8080).String(), Backend: okBackend{}})
				}
				p, err := balancer.NewPool("bench", insts, balancer.Options{Policy: policy, HashKey: "header:X-User"})
				if err != nil {
					b.Fatal(err)
				}
				var replaced atomic.Int64
				if mode != "static" {
					w, err := New(Options{DNS: "app:8080", Resolver: f, Refresh: time.Millisecond,
						Apply: func(_ context.Context, set []Instance) bool {
							list := make([]balancer.Instance, len(set))
							for i, in := range set {
								list[i] = balancer.Instance{Name: in.Name, Backend: okBackend{}, Weight: in.Weight}
							}
							if err := p.Replace(list); err != nil {
								b.Error(err)
							}
							replaced.Add(1)
							return true
						}})
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() { defer close(done); w.Run(ctx) }()
					<-w.Ready()
					if mode == "changing" {
						stop := make(chan struct{})
						go func() {
							t := time.NewTicker(time.Millisecond)
							defer t.Stop()
							for n := 0; ; n++ {
								select {
								case <-stop:
									return
								case <-t.C:
								}
								f.set(func(f *fakeDNS) { f.hosts["app"] = five[:4+n%2] })
							}
						}()
						defer close(stop)
					}
					defer func() { cancel(); <-done }()
				}
				reqs := make([]*http.Request, 64)
				for i := range reqs {
					reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
					reqs[i].Header.Set("X-User", fmt.Sprint("user-", i))
				}
				start := replaced.Load()
				b.ReportAllocs()
				stopCPU := benchcpu.Start(b)
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
				b.StopTimer()
				stopCPU()
				b.ReportMetric(float64(replaced.Load()-start), "replaces")
			})
		}
	}
}
