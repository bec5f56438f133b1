package balancer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// fakeClock is a Clock moved by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan struct{} // one token per timer created
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), created: make(chan struct{}, 100)}
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	ch    chan time.Time
	f     func()
	fired bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(t *fakeTimer) Timer {
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.created <- struct{}{}
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	return c.add(&fakeTimer{c: c, at: c.Now().Add(d), ch: make(chan time.Time, 1)})
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	return c.add(&fakeTimer{c: c, at: c.Now().Add(d), f: f})
}

// Advance moves time forward and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.fired && !t.at.After(c.now) {
			t.fired = true
			due = append(due, t)
		} else if !t.fired {
			kept = append(kept, t)
		}
	}
	c.timers = kept
	now := c.now
	c.mu.Unlock()
	for _, t := range due {
		if t.f != nil {
			go t.f()
		} else {
			t.ch <- now
		}
	}
}

// waitTimer blocks until some goroutine created a timer.
func (c *fakeClock) waitTimer(t *testing.T) {
	t.Helper()
	select {
	case <-c.created:
	case <-time.After(5 * time.Second):
		t.Fatal("no timer was created")
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.fired
	t.fired = true
	return was
}

// fake is a scripted instance backend.
type fake struct {
	name  string
	mu    sync.Mutex
	calls int
	errs  []error // returned in turn; nil or exhausted means write 200
	hold  chan struct{}
	start chan string
	check error
	close int
}

func (f *fake) Serve(w http.ResponseWriter, r *http.Request) error {
	f.mu.Lock()
	f.calls++
	var err error
	if len(f.errs) > 0 {
		err, f.errs = f.errs[0], f.errs[1:]
	}
	hold, start := f.hold, f.start
	f.mu.Unlock()
	if start != nil {
		start <- f.name
	}
	if hold != nil {
		<-hold
	}
	if err != nil {
		return err
	}
	w.Header().Set("X-Instance", f.name)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (f *fake) Check(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.check
}

func (f *fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.close++
	return nil
}

func (f *fake) setErrs(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = errs
}

func (f *fake) setCheck(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.check = err
}

func (f *fake) nCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func fakes(names ...string) ([]*fake, []Instance) {
	fs := make([]*fake, len(names))
	insts := make([]Instance, len(names))
	for i, n := range names {
		fs[i] = &fake{name: n}
		insts[i] = Instance{Name: n, Backend: fs[i]}
	}
	return fs, insts
}

func newPool(t *testing.T, insts []Instance, o Options) *Pool {
	t.Helper()
	p, err := NewPool("test", insts, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// do serves one GET and returns the instance that answered ("" on error).
func do(p *Pool, r *http.Request) (string, error, *httptest.ResponseRecorder) {
	w := httptest.NewRecorder()
	err := p.Serve(w, r)
	return w.Header().Get("X-Instance"), err, w
}

func get(path string) *http.Request { return httptest.NewRequest(http.MethodGet, path, nil) }

// sequence serves n GETs and returns who answered, in order.
func sequence(t *testing.T, p *Pool, n int) []string {
	t.Helper()
	var out []string
	for range n {
		name, err, _ := do(p, get("/"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	return out
}

// noLeaks fails the test if goroutines started during it are still alive
// shortly after it ends.
func noLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond)
		}
	})
}

var (
	dialErr = &backends.DialError{Addr: "x", Err: context.DeadlineExceeded}
	err502  = &backends.Error{Status: http.StatusBadGateway}
	err404  = &backends.Error{Status: http.StatusNotFound}
)
