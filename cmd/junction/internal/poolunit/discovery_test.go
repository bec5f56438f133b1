package poolunit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/discovery"
)

// hostsDNS answers A lookups from a map; SRV is not used here.
type hostsDNS struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
}

func (h *hostsDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(a), nil
}

func (h *hostsDNS) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return "", nil, errors.New("no SRV here")
}

func (h *hostsDNS) set(host string, ips ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var a []netip.Addr
	for _, ip := range ips {
		a = append(a, netip.MustParseAddr(ip))
	}
	h.hosts[host] = a
}

// checked is a fakeBackend with an active check and a held request.
type checked struct {
	*fakeBackend
	mu   sync.Mutex
	fail error
	hold chan struct{}
}

func (c *checked) Check(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fail
}

func (c *checked) Serve(w http.ResponseWriter, r *http.Request) error {
	c.mu.Lock()
	hold := c.hold
	c.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return c.fakeBackend.Serve(w, r)
}

// TestDiscoveredMembers runs a unit whose members come from DNS: a new
// instance joins only once its first check passes (pending until then), a
// vanished one is drained (its request in flight finishes, then its
// backend is closed), and a failing lookup keeps the members.
func TestDiscoveredMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dns := &hostsDNS{hosts: map[string][]netip.Addr{}}
		dns.set("app", "10.0.0.1", "10.0.0.2")
		var mu sync.Mutex
		built := map[string][]*checked{}
		failing := map[string]error{"10.0.0.2:80": errors.New("503 from /health")}
		build := func(addr string) (backends.Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			c := &checked{fakeBackend: &fakeBackend{addr: addr}, fail: failing[addr]}
			built[addr] = append(built[addr], c)
			return c, nil
		}
		backend := func(addr string) *checked {
			mu.Lock()
			defer mu.Unlock()
			b := built[addr]
			return b[len(b)-1]
		}
		errs := 0
		u, err := New(Options{Name: "app", NewBackend: build, MaxConns: 7, CheckNew: true,
			Discovery: &discovery.Options{DNS: "app:80", Resolver: dns, Refresh: time.Second,
				OnError: func(error) { errs++ }},
			Pool:   balancer.Options{Logger: slog.New(slog.DiscardHandler)},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var g errgroup.Group
		u.Start(g.Go)
		if err := u.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
		tick := func() { time.Sleep(time.Second); synctest.Wait() }
		if got := members(u); !slices.Equal(got, []string{"10.0.0.1:80"}) {
			t.Fatalf("members %v, want only the instance whose check passes", got)
		}
		src := u.Source()
		if src.Kind != discovery.KindDNS || src.Discovery == nil || src.Discovery.Instances != 2 ||
			src.Pending["10.0.0.2:80"] == "" {
			t.Fatalf("source %+v", src)
		}
		if mc := u.Pool().Snapshot().Instances[0].MaxConns; mc != 7 {
			t.Errorf("max_conns %d, want 7", mc)
		}
		backend("10.0.0.2:80").mu.Lock()
		backend("10.0.0.2:80").fail = nil
		backend("10.0.0.2:80").mu.Unlock()
		tick()
		if got := members(u); !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
			t.Fatalf("members %v after the check passed", got)
		}
		if p := u.Source().Pending; len(p) != 0 {
			t.Errorf("still pending: %v", p)
		}

		// A request in flight on .1 when .1 leaves DNS finishes there.
		one := backend("10.0.0.1:80")
		one.mu.Lock()
		one.hold = make(chan struct{})
		one.mu.Unlock()
		done := make(chan string)
		go func() {
			for {
				rec := httptest.NewRecorder()
				if err := u.Pool().Serve(rec, httptest.NewRequest("GET", "/", nil)); err != nil {
					t.Error(err)
				}
				if rec.Body.String() == "10.0.0.1:80" {
					done <- rec.Body.String()
					return
				}
			}
		}()
		synctest.Wait()
		dns.set("app", "10.0.0.2")
		tick()
		if got := members(u); !slices.Equal(got, []string{"10.0.0.2:80"}) {
			t.Fatalf("members %v after .1 left DNS", got)
		}
		one.fakeBackend.mu.Lock()
		early := one.closed
		one.fakeBackend.mu.Unlock()
		if early != 0 {
			t.Fatal("backend closed with a request in flight")
		}
		rec := httptest.NewRecorder()
		if err := u.Pool().Serve(rec, httptest.NewRequest("GET", "/", nil)); err != nil || rec.Body.String() != "10.0.0.2:80" {
			t.Errorf("new request went to %q (%v), want the remaining instance", rec.Body, err)
		}
		close(one.hold)
		if got := <-done; got != "10.0.0.1:80" {
			t.Errorf("held request answered by %q", got)
		}
		synctest.Wait()
		one.fakeBackend.mu.Lock()
		closed := one.closed
		one.fakeBackend.mu.Unlock()
		if closed != 1 {
			t.Errorf("drained backend closed %d times, want once", closed)
		}

		// A failing lookup keeps what the pool has.
		dns.mu.Lock()
		delete(dns.hosts, "app")
		dns.mu.Unlock()
		tick()
		tick()
		if got := members(u); !slices.Equal(got, []string{"10.0.0.2:80"}) || errs != 2 {
			t.Errorf("members %v, %d errors counted, while lookups fail", got, errs)
		}
		if st := u.Source().Discovery; !st.Failing || st.LastError == "" {
			t.Errorf("status %+v", st)
		}
		// A pending instance's backend (never the pool's) is closed by Stop.
		mu.Lock()
		failing["10.0.0.9:80"] = errors.New("refused")
		mu.Unlock()
		dns.set("app", "10.0.0.2", "10.0.0.9")
		tick()
		if p := u.Source().Pending; p["10.0.0.9:80"] == "" {
			t.Fatalf("pending %v", p)
		}
		u.Stop()
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		nine := backend("10.0.0.9:80")
		nine.fakeBackend.mu.Lock()
		defer nine.fakeBackend.mu.Unlock()
		if nine.closed != 1 {
			t.Errorf("pending backend closed %d times by Stop, want once", nine.closed)
		}
	})
}
