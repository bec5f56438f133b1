package poolunit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
)

// fakeBackend answers with its address and counts Close.
type fakeBackend struct {
	addr   string
	mu     sync.Mutex
	closed int
}

func (b *fakeBackend) Serve(w http.ResponseWriter, r *http.Request) error {
	io.WriteString(w, b.addr)
	return nil
}

func (b *fakeBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed++
	return nil
}

// builder builds fakeBackends and remembers every one, by address.
type builder struct {
	mu    sync.Mutex
	built map[string][]*fakeBackend
	fail  map[string]bool
}

func (bu *builder) build(addr string) (backends.Backend, error) {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	if bu.fail[addr] {
		return nil, errors.New("cannot build " + addr)
	}
	b := &fakeBackend{addr: addr}
	bu.built[addr] = append(bu.built[addr], b)
	return b, nil
}

func (bu *builder) count(addr string) int {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	return len(bu.built[addr])
}

func newStatic(t *testing.T, bu *builder, addrs ...string) *Unit {
	t.Helper()
	u, err := New(Options{Name: "app", Instances: instances(addrs...), NewBackend: bu.build,
		Pool: balancer.Options{Logger: slog.New(slog.DiscardHandler)}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func instances(addrs ...string) []balancer.Instance {
	var out []balancer.Instance
	for _, a := range addrs {
		out = append(out, balancer.Instance{Name: a})
	}
	return out
}

func members(u *Unit) []string {
	var out []string
	for _, in := range u.Pool().Snapshot().Instances {
		if !in.Removed {
			out = append(out, in.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestReplaceKeepsBackendsByAddress: a reload's new instance list keeps
// the backend (and its state) of every address it keeps, builds the new
// ones, and forgets the removed ones.
func TestReplaceKeepsBackendsByAddress(t *testing.T) {
	bu := &builder{built: map[string][]*fakeBackend{}}
	u := newStatic(t, bu, "a:1", "b:1")
	if got := members(u); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Fatalf("members %v", got)
	}
	if err := u.Replace(instances("b:1", "c:1")); err != nil {
		t.Fatal(err)
	}
	if got := members(u); !slices.Equal(got, []string{"b:1", "c:1"}) {
		t.Errorf("members after Replace %v", got)
	}
	if bu.count("b:1") != 1 || bu.count("c:1") != 1 {
		t.Errorf("built b %d times, c %d times; want once each", bu.count("b:1"), bu.count("c:1"))
	}
	if err := u.Replace(instances("a:1", "b:1")); err != nil {
		t.Fatal(err)
	}
	if bu.count("a:1") != 2 {
		t.Errorf("a removed and added again was built %d times, want 2 (a removed backend is forgotten)", bu.count("a:1"))
	}

	bu.fail = map[string]bool{"d:1": true}
	if err := u.Replace(instances("b:1", "d:1")); err == nil {
		t.Error("Replace with an unbuildable instance succeeded")
	}
	if got := members(u); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Errorf("members after a failed Replace %v, want the old list", got)
	}
}

// TestLifecycle: a static unit is ready at once, serves through its pool
// while running, and Stop ends its Run and closes the instance backends.
func TestLifecycle(t *testing.T) {
	bu := &builder{built: map[string][]*fakeBackend{}}
	u := newStatic(t, bu, "a:1")
	var g errgroup.Group
	u.Start(g.Go)
	u.Start(g.Go) // a second Start does nothing
	if err := u.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u.Supervisor() != nil {
		t.Error("a static unit has a supervisor")
	}
	rec := httptest.NewRecorder()
	if err := u.Pool().Serve(rec, httptest.NewRequest("GET", "/", nil)); err != nil || rec.Body.String() != "a:1" {
		t.Errorf("Serve = %v, body %q", err, rec.Body)
	}
	u.Drain(context.Background())
	u.Stop()
	u.Stop()
	if err := g.Wait(); err != nil {
		t.Errorf("Run = %v", err)
	}
	b := bu.built["a:1"][0]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed != 1 {
		t.Errorf("instance backend closed %d times, want once", b.closed)
	}
}

// TestSpawnedAutoMaxConns: a spawned pool's instances, as the supervisor
// publishes them, learn their capacity with max_conns: auto and are bound
// by the fallback until they tell.
func TestSpawnedAutoMaxConns(t *testing.T) {
	bu := &builder{built: map[string][]*fakeBackend{}}
	u, err := New(Options{Name: "app", NewBackend: bu.build, MaxConns: 3, AutoMaxConns: true,
		Pool: balancer.Options{Logger: slog.New(slog.DiscardHandler)}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	u.onChange([]string{"127.0.0.1:9001", "127.0.0.1:9002"})
	ins := u.Pool().Snapshot().Instances
	if len(ins) != 2 {
		t.Fatalf("%d instances, want 2", len(ins))
	}
	for _, in := range ins {
		if !in.AutoMaxConns || in.MaxConns != 3 || in.Limit != 3 {
			t.Errorf("%s: auto %v, max_conns %d, limit %d; want auto with fallback 3", in.Name, in.AutoMaxConns, in.MaxConns, in.Limit)
		}
	}
}
