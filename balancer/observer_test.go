package balancer

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// recorder is an Observer and a backends.Upstream that remembers what it
// was told.
type recorder struct {
	mu        sync.Mutex
	retries   int
	waits     []time.Duration
	instances []string // every SetInstance, in order
	took      time.Duration
}

func (r *recorder) Retried() { r.mu.Lock(); r.retries++; r.mu.Unlock() }
func (r *recorder) QueueWaited(d time.Duration) {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
}
func (r *recorder) SetBackend(string) {}
func (r *recorder) SetInstance(name string) {
	r.mu.Lock()
	r.instances = append(r.instances, name)
	r.mu.Unlock()
}
func (r *recorder) SetUpstreamTime(d time.Duration) { r.mu.Lock(); r.took = d; r.mu.Unlock() }
func (r *recorder) SetUser(string)                  {}

func (r *recorder) state() (int, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retries, slices.Clone(r.waits)
}

// slow is an instance that takes a fixed time on the pool's fake clock.
type slow struct {
	clk  *fakeClock
	took time.Duration
	err  error
}

func (s *slow) Serve(w http.ResponseWriter, r *http.Request) error {
	s.clk.Advance(s.took)
	if s.err != nil {
		return s.err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func TestObserverAndUpstream(t *testing.T) {
	tests := []struct {
		name      string
		errs      [3]error // per instance a, b, c
		attempts  int
		retries   int
		instances []string // SetInstance calls
		took      time.Duration
		wantErr   bool
	}{
		{"first instance answers", [3]error{}, 0, 0, []string{"a"}, 10 * time.Millisecond, false},
		{"retried once", [3]error{err502}, 0, 1, []string{"a", "b"}, 20 * time.Millisecond, false},
		{"retried twice", [3]error{dialErr, dialErr}, 0, 2, []string{"a", "b", "c"}, 30 * time.Millisecond, false},
		{"404 is final", [3]error{err404}, 0, 0, []string{"a"}, 10 * time.Millisecond, true},
		{"bounded by MaxAttempts", [3]error{dialErr, dialErr, dialErr}, 2, 1, []string{"a", "b"}, 20 * time.Millisecond, true},
		{"every instance fails", [3]error{dialErr, dialErr, dialErr}, 0, 2, []string{"a", "b", "c"}, 30 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			var insts []Instance
			for i, name := range []string{"a", "b", "c"} {
				insts = append(insts, Instance{Name: name, Backend: &slow{clk: clk, took: time.Duration(i+1) * 10 * time.Millisecond, err: tt.errs[i]}})
			}
			rec := &recorder{}
			p := newPool(t, insts, Options{Clock: clk, Observer: rec, MaxAttempts: tt.attempts, FailThreshold: -1})
			r := get("/")
			r = r.WithContext(backends.NewUpstreamContext(r.Context(), rec))
			_, err, _ := do(p, r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if retries, waits := rec.state(); retries != tt.retries || len(waits) != 0 {
				t.Errorf("retries %d waits %v, want %d and none", retries, waits, tt.retries)
			}
			if !slices.Equal(rec.instances, tt.instances) {
				t.Errorf("instances %v, want %v", rec.instances, tt.instances)
			}
			if rec.took != tt.took {
				t.Errorf("upstream time %v, want %v (the last attempt)", rec.took, tt.took)
			}
		})
	}
}

func TestObserverNoInstance(t *testing.T) {
	// A failure on the only instance is not a retry: there is nowhere
	// else to go.
	fs, insts := fakes("a")
	fs[0].setErrs(err502)
	rec := &recorder{}
	p := newPool(t, insts, Options{Observer: rec, MaxAttempts: 3})
	if _, err, _ := do(p, get("/")); backends.Status(err) != http.StatusBadGateway {
		t.Fatalf("error %v", err)
	}
	if retries, _ := rec.state(); retries != 0 {
		t.Errorf("%d retries counted with a single instance", retries)
	}
}

func TestObserverQueueWait(t *testing.T) {
	tests := []struct {
		name    string
		wait    time.Duration // fake time before the held request ends
		cancel  bool
		wantErr error
		want    time.Duration
	}{
		{"granted", 2 * time.Second, false, nil, 2 * time.Second},
		{"timed out", 5 * time.Second, false, backends.ErrOverloaded, 5 * time.Second},
		{"client gone", time.Second, true, context.Canceled, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			clk := newFakeClock()
			fs, insts := fakes("a")
			insts[0].MaxConns = 1
			rec := &recorder{}
			p := newPool(t, insts, Options{QueueSize: 1, QueueTimeout: 5 * time.Second, Clock: clk, Observer: rec})
			_, release := hold(t, p, fs)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err, _ := do(p, get("/").WithContext(ctx))
				done <- err
			}()
			clk.waitTimer(t)
			clk.Advance(tt.wait)
			if tt.cancel {
				cancel()
			}
			if tt.wantErr == nil {
				release()
			}
			err := <-done
			if tt.wantErr != nil {
				release()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("queued request: %v, want %v", err, tt.wantErr)
			}
			// The held request never queued: one wait only.
			if _, waits := rec.state(); !slices.Equal(waits, []time.Duration{tt.want}) {
				t.Errorf("queue waits %v, want [%v]", waits, tt.want)
			}
		})
	}
}
