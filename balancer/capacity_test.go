package balancer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/internal/spark"
)

// capFake is a fake instance that reports a scripted capacity.
type capFake struct {
	*fake
	cmu   sync.Mutex
	c     backends.Capacity
	err   error
	asked int
}

func (f *capFake) Capacity(ctx context.Context) (backends.Capacity, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.asked++
	return f.c, f.err
}

func (f *capFake) set(c backends.Capacity, err error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.c, f.err = c, err
}

func (f *capFake) nAsked() int {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.asked
}

// room holds requests on p until one is refused, and returns how many
// it held; the held ones are released at the end of the test.
func room(t *testing.T, p *Pool, fs []*fake) int {
	t.Helper()
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	for n := 0; n < 20; n++ {
		if _, err, _ := doNoHold(p); err != nil {
			if !errors.Is(err, backends.ErrOverloaded) {
				t.Fatalf("after %d held: %v, want ErrOverloaded", n, err)
			}
			return n
		}
		_, release := hold(t, p, fs)
		releases = append(releases, release)
	}
	t.Fatal("no bound")
	return 0
}

// doNoHold probes whether a request would find room right now without
// serving it: it acquires and releases a slot.
func doNoHold(p *Pool) (string, error, any) {
	u, err := p.acquire(context.Background(), &pick{})
	if err != nil {
		return "", err, nil
	}
	p.release(u, nil, 0, outcomeNeutral)
	return u.Name, nil, nil
}

func TestAutoMaxConns(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	a := &capFake{fake: fs[0]}
	b := &capFake{fake: fs[1], c: backends.Capacity{Max: 9}}
	insts[0].Backend, insts[0].MaxConns, insts[0].AutoMaxConns = a, 1, true
	insts[1].Backend, insts[1].MaxConns = b, 1 // not auto: never asked
	p := newPool(t, insts[:1], Options{Clock: clk, Health: HealthOptions{Interval: time.Second}})
	ctx := context.Background()
	limit := func() InstanceStatus { return p.Snapshot().Instances[0] }

	// Before any answer: the fallback.
	if st := limit(); st.Limit != 1 || st.CapacityKnown || !st.AutoMaxConns {
		t.Fatalf("before probing: %+v", st)
	}
	if n := room(t, p, fs[:1]); n != 1 {
		t.Fatalf("fallback 1 held %d", n)
	}

	a.set(backends.Capacity{Max: 3, Idle: 2, Source: "status page"}, nil)
	p.checkAll(ctx)
	if st := limit(); st.Limit != 3 || st.Capacity.Max != 3 || !st.CapacityKnown || st.CapacityError != "" {
		t.Fatalf("after capacity 3: %+v", st)
	}
	if n := room(t, p, fs[:1]); n != 3 {
		t.Fatalf("capacity 3 held %d", n)
	}

	// A failed probe keeps what was learned, and says why.
	a.set(backends.Capacity{}, errors.New("status page: status 404"))
	p.checkAll(ctx)
	if st := limit(); st.Limit != 3 || st.CapacityError == "" {
		t.Fatalf("after a failed probe: %+v", st)
	}

	// An answer without a capacity (pm = dynamic) falls back.
	a.set(backends.Capacity{Idle: 1, Source: "status page", Why: "pm = dynamic"}, nil)
	p.checkAll(ctx)
	if st := limit(); st.Limit != 1 || st.Capacity.Why != "pm = dynamic" || st.CapacityError != "" {
		t.Fatalf("after an unknown capacity: %+v", st)
	}

	// A failing health check asks nothing.
	asked := a.nAsked()
	fs[0].setCheck(errors.New("refused"))
	p.checkAll(ctx)
	if a.nAsked() != asked {
		t.Error("capacity asked after a failed check")
	}
	fs[0].setCheck(nil)

	// Without AutoMaxConns an instance is not asked, and MaxConns holds.
	if err := p.Replace(insts); err != nil {
		t.Fatal(err)
	}
	p.checkAll(ctx)
	if b.nAsked() != 0 {
		t.Errorf("instance without auto asked %d times", b.nAsked())
	}
	if st := p.Snapshot().Instances[1]; st.Limit != 1 || st.CapacityKnown || st.Source != "static" {
		t.Errorf("instance without auto: %+v", st)
	}
}

// TestAutoMaxConnsQueue: a capacity learned larger than the fallback
// hands slots to queued requests at once.
func TestAutoMaxConnsQueue(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a")
	a := &capFake{fake: fs[0], c: backends.Capacity{Max: 2}}
	insts[0].Backend, insts[0].MaxConns, insts[0].AutoMaxConns = a, 1, true
	p := newPool(t, insts, Options{Clock: clk, QueueSize: 1, Health: HealthOptions{Interval: time.Second}})
	_, release := hold(t, p, fs)
	defer release()
	start := make(chan string, 1)
	fs[0].mu.Lock()
	fs[0].start = start
	fs[0].mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err, _ := do(p, get("/"))
		done <- err
	}()
	clk.waitTimer(t) // queued
	p.checkAll(context.Background())
	select {
	case <-start:
	case <-time.After(5 * time.Second):
		t.Fatal("the queued request did not get the new slot")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHistory(t *testing.T) {
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	p := newPool(t, insts, Options{Clock: clk, FailThreshold: -1})
	fs[0].setErrs(err502, err502) // a fails twice, retried on b
	for range 10 {
		if _, err, _ := do(p, get("/")); err != nil {
			t.Fatal(err)
		}
	}
	fs[0].setErrs(err502)
	fs[1].setErrs(err502)
	if _, err, _ := do(p, get("/")); err == nil {
		t.Fatal("want the pool's 502")
	}
	fs[0].setErrs(err404) // the application's answer: not an error
	do(p, get("/"))
	st := p.Snapshot()
	last := func(h []spark.Point) spark.Point {
		if len(h) != spark.Buckets {
			t.Fatalf("history of %d points", len(h))
		}
		return h[len(h)-1]
	}
	if pt := last(st.History); pt.Requests != 12 || pt.Errors != 1 {
		t.Errorf("pool: %d requests, %d errors; want 12, 1", pt.Requests, pt.Errors)
	}
	var reqs, errs uint32
	for _, in := range st.Instances {
		pt := last(in.History)
		reqs += pt.Requests
		errs += pt.Errors
	}
	// 12 requests, 3 of them retried: 15 attempts, 4 failed (a twice,
	// then a and b).
	if reqs != 15 || errs != 4 {
		t.Errorf("instances: %d attempts, %d failed; want 15, 4", reqs, errs)
	}
}
