package balancer

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// connBackend models an instance backend with kept connections: a Check
// leaves one open, Close closes the open ones.
type connBackend struct {
	mu      sync.Mutex
	open    int
	started chan struct{} // a Check began
	release chan struct{} // lets the Check finish
}

func (b *connBackend) Serve(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

func (b *connBackend) Check(ctx context.Context) error {
	b.started <- struct{}{}
	<-b.release
	b.mu.Lock()
	b.open++ // the check's connection is kept for the next one
	b.mu.Unlock()
	return nil
}

func (b *connBackend) Close() error {
	b.mu.Lock()
	b.open = 0
	b.mu.Unlock()
	return nil
}

func (b *connBackend) kept() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// TestReplaceDuringCheckClosesAfterIt: an instance removed while its
// active check runs is closed when it is removed (no request in flight)
// and again once the check ended, so the check's kept connection does
// not stay open to an instance the pool no longer has.
func TestReplaceDuringCheckClosesAfterIt(t *testing.T) {
	noLeaks(t)
	gone := &connBackend{started: make(chan struct{}, 1), release: make(chan struct{})}
	_, stay := fakes("stay")
	p := newPool(t, []Instance{{Name: "gone", Backend: gone}, stay[0]},
		Options{Health: HealthOptions{Interval: time.Hour, Timeout: time.Hour}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.checkAll(context.Background())
	}()
	<-gone.started
	if err := p.Replace(stay); err != nil {
		t.Fatal(err)
	}
	close(gone.release)
	<-done
	if n := gone.kept(); n != 0 {
		t.Errorf("%d connections left open to the removed instance after its check", n)
	}
}

// TestRendezvousHashUnchanged pins the hash policy's mapping to its
// definition, mix64(FNV-1a(key, 0, name)) as hash/fnv computes it: junctions
// of different versions behind one front server must keep agreeing.
func TestRendezvousHashUnchanged(t *testing.T) {
	ref := func(key, name string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(name))
		return mix64(h.Sum64())
	}
	var ups []*upstream
	for i := range 7 {
		ups = append(ups, &upstream{Instance: Instance{Name: fmt.Sprintf("10.0.%d.%d:8080", i, i*37)}})
	}
	ups = append(ups, &upstream{Instance: Instance{Name: "node1.node.dc1.consul:21000"}}, &upstream{Instance: Instance{Name: ""}})
	for i := range 5000 {
		key := fmt.Sprint("user-", i, strings.Repeat("é", i%5))
		var want *upstream
		var top uint64
		for _, u := range ups {
			if s := ref(key, u.Name); want == nil || s > top {
				want, top = u, s
			}
		}
		if got := rendezvous(ups, key); got != want {
			t.Fatalf("key %q: %q, want %q", key, got.Name, want.Name)
		}
	}
}
