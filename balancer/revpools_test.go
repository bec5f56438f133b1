package balancer

import (
	"context"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// TestCapacityLoweredBelowInFlight: a capacity learned lower than the
// requests in flight leaves those running; a queued request gets a slot
// only once the in-flight count is below the new bound.
func TestCapacityLoweredBelowInFlight(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a")
	a := &capFake{fake: fs[0], c: backends.Capacity{Max: 3}}
	insts[0].Backend, insts[0].MaxConns, insts[0].AutoMaxConns = a, 1, true
	p := newPool(t, insts, Options{Clock: clk, QueueSize: 1, Health: HealthOptions{Interval: time.Second}})
	p.checkAll(context.Background())
	var releases []func()
	for range 3 {
		_, r := hold(t, p, fs)
		releases = append(releases, r)
	}
	a.set(backends.Capacity{Max: 1}, nil)
	p.checkAll(context.Background())
	if st := p.Snapshot().Instances[0]; st.Limit != 1 || st.InFlight != 3 {
		t.Fatalf("after lowering: limit %d, in flight %d", st.Limit, st.InFlight)
	}
	start := make(chan string, 1)
	fs[0].mu.Lock()
	fs[0].start = start
	fs[0].mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err, _ := do(p, get("/"))
		done <- err
	}()
	for p.Snapshot().QueueLen == 0 {
		time.Sleep(time.Millisecond)
	}
	for i, release := range releases {
		release()
		st := p.Snapshot()
		if i < 2 && (st.QueueLen != 1 || st.Instances[0].InFlight != 2-i) {
			t.Fatalf("after %d of 3 finished: queue %d, in flight %d", i+1, st.QueueLen, st.Instances[0].InFlight)
		}
	}
	<-start
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCapacityOfJoiningInstance: an instance with AutoMaxConns that
// joins a running pool (a discovered one, found after the pool's first
// check round) is asked its capacity at once, not a health interval
// later: until then the fallback bounds it, which for php-fpm with many
// workers is a fraction of what it takes.
func TestCapacityOfJoiningInstance(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	a := &capFake{fake: fs[0], c: backends.Capacity{Max: 5}}
	b := &capFake{fake: fs[1], c: backends.Capacity{Max: 7}}
	insts[0].Backend, insts[0].MaxConns, insts[0].AutoMaxConns = a, 1, true
	insts[1].Backend, insts[1].MaxConns, insts[1].AutoMaxConns = b, 1, true
	p := newPool(t, nil, Options{Clock: clk, Health: HealthOptions{Interval: time.Hour, Timeout: time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	clk.waitTimer(t) // the first round (of none) is over
	limits := func() map[string]int {
		out := map[string]int{}
		for _, in := range p.Snapshot().Instances {
			out[in.Name] = in.Limit
		}
		return out
	}
	if err := p.Replace(insts[:1]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); limits()["a"] != 5; {
		if time.Now().After(deadline) {
			t.Fatalf("limits %v: the joining instance's capacity not asked", limits())
		}
		time.Sleep(time.Millisecond)
	}
	asked := a.nAsked()
	if err := p.Replace(insts); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); limits()["b"] != 7; {
		if time.Now().After(deadline) {
			t.Fatalf("limits %v: the second joining instance's capacity not asked", limits())
		}
		time.Sleep(time.Millisecond)
	}
	if a.nAsked() != asked {
		t.Errorf("an instance already asked was asked again before its round")
	}
}
