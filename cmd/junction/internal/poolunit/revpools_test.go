package poolunit

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/discovery"
)

// stuck is a fakeBackend whose Check waits for its context, and says when
// it started.
type stuck struct {
	*fakeBackend
	started chan struct{}
	once    sync.Once
}

func (s *stuck) Check(ctx context.Context) error {
	s.once.Do(func() { close(s.started) })
	<-ctx.Done()
	return ctx.Err()
}

// TestStopDuringFirstCheck: a unit stopped (removed by a reload, or at
// shutdown) while a discovered instance's first check runs closes the
// backend built for it, which neither the pool nor the pending list holds
// yet.
func TestStopDuringFirstCheck(t *testing.T) {
	dns := &hostsDNS{hosts: map[string][]netip.Addr{}}
	dns.set("app", "10.0.0.1")
	var mu sync.Mutex
	var built []*stuck
	build := func(addr string) (backends.Backend, error) {
		mu.Lock()
		defer mu.Unlock()
		s := &stuck{fakeBackend: &fakeBackend{addr: addr}, started: make(chan struct{})}
		built = append(built, s)
		return s, nil
	}
	u, err := New(Options{Name: "app", NewBackend: build, CheckNew: true, CheckTimeout: time.Hour,
		Discovery: &discovery.Options{DNS: "app:80", Resolver: dns, Refresh: time.Hour},
		Pool:      balancer.Options{Logger: slog.New(slog.DiscardHandler)},
		Logger:    slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	u.Start(g.Go)
	for {
		mu.Lock()
		n := len(built)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	<-built[0].started
	u.Stop()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	b := built[0]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed != 1 {
		t.Errorf("backend of the instance being checked closed %d times by Stop, want once", b.closed)
	}
}
