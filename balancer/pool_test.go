package balancer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

func TestStickyCookie(t *testing.T) {
	clk := newFakeClock()
	fs, insts := fakes("a", "b", "c")
	p := newPool(t, insts, Options{StickyCookie: "lb", FailThreshold: 1, Clock: clk})
	name, _, w := do(p, get("/"))
	cookies := w.Result().Cookies()
	if name != "a" || len(cookies) != 1 || cookies[0].Name != "lb" {
		t.Fatalf("first: %s %v", name, cookies)
	}
	pinned := cookies[0]
	for range 3 {
		r := get("/")
		r.AddCookie(pinned)
		name, _, w := do(p, r)
		if name != "a" || w.Header().Get("Set-Cookie") != "" {
			t.Fatalf("pinned went to %s, set %q", name, w.Header().Get("Set-Cookie"))
		}
	}
	// Eject a: the next pinned request falls back and is re-pinned.
	fs[0].setErrs(dialErr)
	r := get("/")
	r.AddCookie(pinned)
	name, err, w := do(p, r)
	if err != nil || name == "a" {
		t.Fatalf("after a failed: %s %v", name, err)
	}
	got := w.Result().Cookies()
	if len(got) != 1 || got[0].Value == pinned.Value {
		t.Fatalf("not re-pinned: %v", got)
	}
	if s := w.Result().Header.Values("Set-Cookie"); len(s) != 1 {
		t.Errorf("the failed attempt's cookie was left: %q", s)
	}
	r = get("/")
	r.AddCookie(pinned)
	if name, _, _ := do(p, r); name == "a" {
		t.Error("ejected sticky target chosen")
	}
}

func TestSessionRoute(t *testing.T) {
	_, insts := fakes("a", "b", "c")
	for i, route := range []string{"ra", "rb", "rc"} {
		insts[i].Route = route
	}
	p := newPool(t, insts, Options{})
	tests := []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{"cookie", func() *http.Request {
			r := get("/")
			r.AddCookie(&http.Cookie{Name: "JSESSIONID", Value: "ABC123.rb"})
			return r
		}, "b"},
		{"path parameter", func() *http.Request { return get("/app/page;jsessionid=XYZ.rc?q=1") }, "c"},
		{"path parameter mid-path", func() *http.Request { return get("/app;jsessionid=XYZ.rb/x") }, "b"},
		{"unknown route", func() *http.Request {
			r := get("/")
			r.AddCookie(&http.Cookie{Name: "JSESSIONID", Value: "ABC.zz"})
			return r
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 {
				name, err, _ := do(p, tt.req())
				if err != nil {
					t.Fatal(err)
				}
				if tt.want != "" && name != tt.want {
					t.Fatalf("went to %s, want %s", name, tt.want)
				}
			}
		})
	}
}

func TestQueue(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a")
	insts[0].MaxConns = 1
	p := newPool(t, insts, Options{QueueSize: 1, QueueTimeout: 5 * time.Second, Clock: clk})
	_, release := hold(t, p, fs)

	queued := make(chan error, 1)
	go func() {
		name, err, _ := do(p, get("/"))
		if err == nil && name != "a" {
			err = errors.New("served by " + name)
		}
		queued <- err
	}()
	clk.waitTimer(t)
	if q := p.Snapshot().QueueLen; q != 1 {
		t.Fatalf("queue length %d, want 1", q)
	}
	// The queue is full: the next request is refused at once.
	if _, err, _ := do(p, get("/")); !errors.Is(err, backends.ErrOverloaded) {
		t.Fatalf("with a full queue: %v, want ErrOverloaded", err)
	}
	release()
	if err := <-queued; err != nil {
		t.Fatalf("queued request: %v", err)
	}

	// A queued request gives up after QueueTimeout.
	_, release = hold(t, p, fs)
	defer release()
	go func() {
		_, err, _ := do(p, get("/"))
		queued <- err
	}()
	clk.waitTimer(t)
	clk.Advance(4 * time.Second)
	select {
	case err := <-queued:
		t.Fatalf("gave up early: %v", err)
	default:
	}
	clk.Advance(time.Second)
	if err := <-queued; !errors.Is(err, backends.ErrOverloaded) || backends.Status(err) != http.StatusServiceUnavailable {
		t.Fatalf("after timeout: %v", err)
	}
	if q := p.Snapshot().QueueLen; q != 0 {
		t.Errorf("queue length %d after timeout", q)
	}
}

func TestQueueCancelled(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a")
	insts[0].MaxConns = 1
	p := newPool(t, insts, Options{QueueSize: 4, Clock: clk})
	_, release := hold(t, p, fs)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err, _ := do(p, get("/").WithContext(ctx))
		done <- err
	}()
	clk.waitTimer(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestEjectionBackoff(t *testing.T) {
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	p := newPool(t, insts, Options{FailThreshold: 2, EjectBase: time.Second, EjectMax: 3 * time.Second, Clock: clk})
	a := fs[0]
	ejected := func() bool { return p.Snapshot().Instances[0].Ejected }
	// a fails twice (each GET retried on b): ejected for 1s.
	a.setErrs(err502, err502, err502, err502, err502, err502)
	sequence(t, p, 3) // a fails, b, (cursor) a fails, b...
	if !ejected() {
		t.Fatal("a not ejected after 2 failures")
	}
	steps := []struct {
		advance time.Duration
		ejected bool
	}{
		{999 * time.Millisecond, true},
		{time.Millisecond, false}, // 1s elapsed
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if ejected() != s.ejected {
			t.Fatalf("after +%v: ejected=%v", s.advance, !s.ejected)
		}
	}
	// Back from ejection, one failure re-ejects for 2s, then 3s (capped).
	for _, want := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		calls := a.nCalls()
		for a.nCalls() == calls {
			sequence(t, p, 1)
		}
		st := p.Snapshot().Instances[0]
		if got := st.EjectedUntil.Sub(clk.Now()); got != want {
			t.Fatalf("ejected for %v, want %v", got, want)
		}
		clk.Advance(want)
	}
	// A success resets the back-off: the next ejection needs 2 failures.
	a.setErrs()
	for range 4 {
		sequence(t, p, 1)
	}
	a.setErrs(err502)
	for range 4 {
		sequence(t, p, 1)
	}
	if ejected() {
		t.Fatal("one failure after a success ejected a")
	}
	if st := p.Snapshot().Instances[0]; st.Ejections != 4 || st.Failures != 6 {
		t.Errorf("ejections %d failures %d, want 4 and 6", st.Ejections, st.Failures)
	}
}

func TestActiveHealth(t *testing.T) {
	noLeaks(t)
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	p := newPool(t, insts, Options{Clock: clk, Health: HealthOptions{Interval: time.Second, Rise: 2, Fall: 3}})
	ctx := context.Background()
	down := func() bool { return p.Snapshot().Instances[0].Down }
	fs[0].setCheck(errors.New("refused"))
	for i, want := range []bool{false, false, true, true} {
		p.checkAll(ctx)
		if down() != want {
			t.Fatalf("after %d failed checks: down=%v", i+1, !want)
		}
	}
	if got := strings.Join(sequence(t, p, 3), ""); got != "bbb" {
		t.Errorf("down instance served: %s", got)
	}
	fs[0].setCheck(nil)
	for i, want := range []bool{true, false} {
		p.checkAll(ctx)
		if down() != want {
			t.Fatalf("after %d passing checks: down=%v", i+1, !want)
		}
	}

	// Run checks at once and then every Interval on the clock.
	fs[0].setCheck(errors.New("refused"))
	for len(clk.created) > 0 { // tokens from the direct rounds above
		<-clk.created
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for range 3 {
		clk.waitTimer(t) // check timeout (a)
		clk.waitTimer(t) // check timeout (b)
		clk.waitTimer(t) // interval
		clk.Advance(time.Second)
	}
	clk.waitTimer(t)
	clk.waitTimer(t)
	clk.waitTimer(t)
	if !down() {
		t.Error("Run: not down after 3 rounds")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestBackup(t *testing.T) {
	clk := newFakeClock()
	fs, insts := fakes("a", "b", "spare")
	insts[2].Backup = true
	p := newPool(t, insts, Options{FailThreshold: 1, EjectBase: time.Minute, Clock: clk})
	if got := strings.Join(sequence(t, p, 4), ""); got != "abab" {
		t.Fatalf("with all up: %s", got)
	}
	fs[0].setErrs(dialErr)
	fs[1].setErrs(dialErr)
	sequence(t, p, 1) // a and b fail, spare serves
	if got := strings.Join(sequence(t, p, 3), ""); got != "spare"+"spare"+"spare" {
		t.Fatalf("with primaries ejected: %s", got)
	}
	clk.Advance(time.Minute)
	if got := strings.Join(sequence(t, p, 2), ""); got != "ab" && got != "ba" {
		t.Fatalf("primaries back: %s", got)
	}
}

func TestAllDownTriesLeastRecentlyFailed(t *testing.T) {
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	p := newPool(t, insts, Options{FailThreshold: 1, EjectBase: time.Minute, Clock: clk})
	fs[0].setErrs(dialErr)
	fs[1].setErrs(dialErr)
	if _, err, _ := do(p, get("/")); !errors.As(err, new(*backends.DialError)) {
		t.Fatalf("both failing: %v", err)
	}
	clk.Advance(time.Second)
	fs[1].setErrs(dialErr) // b failed last
	// Both ejected: one attempt goes to a, which failed longest ago.
	calls := fs[0].nCalls()
	if name, err, _ := do(p, get("/")); name != "a" || err != nil {
		t.Fatalf("all down: %q %v", name, err)
	}
	if fs[0].nCalls() != calls+1 || fs[1].nCalls() != 1 {
		t.Errorf("calls a=%d b=%d", fs[0].nCalls(), fs[1].nCalls())
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		replay bool
		err    error
		calls  int // on the failing instance plus the next
		status int // 0: success
	}{
		{"GET retried on 502", http.MethodGet, "", false, err502, 2, 0},
		{"GET retried on plain error", http.MethodGet, "", false, io.ErrUnexpectedEOF, 2, 0},
		{"POST not retried on 502", http.MethodPost, "x=1", false, err502, 1, 502},
		{"POST retried on dial error", http.MethodPost, "x=1", false, dialErr, 2, 0},
		{"POST retried on overload", http.MethodPost, "x=1", false, backends.ErrOverloaded, 2, 0},
		{"PUT with body not retried", http.MethodPut, "x", false, err502, 1, 502},
		{"PUT with GetBody retried", http.MethodPut, "x", true, err502, 2, 0},
		{"DELETE retried", http.MethodDelete, "", false, err502, 2, 0},
		{"GET not retried on 404", http.MethodGet, "", false, err404, 1, 404},
		{"local redirect returned", http.MethodGet, "", false, &backends.LocalRedirect{Location: "/x"}, 1, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, insts := fakes("a", "b")
			p := newPool(t, insts, Options{})
			fs[0].setErrs(tt.err)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := httptest.NewRequest(tt.method, "/", body)
			if tt.replay {
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.body)), nil }
			}
			_, err, _ := do(p, r)
			if calls := fs[0].nCalls() + fs[1].nCalls(); calls != tt.calls {
				t.Errorf("%d calls, want %d", calls, tt.calls)
			}
			switch {
			case tt.status == 0 && err != nil:
				t.Errorf("error %v", err)
			case tt.status != 0 && (err == nil || backends.Status(err) != tt.status):
				t.Errorf("error %v, want status %d", err, tt.status)
			}
		})
	}
}

// writer writes a 502 page itself and returns nil, as a backend does once
// it has started the response.
type writer struct{ calls int }

func (w *writer) Serve(rw http.ResponseWriter, r *http.Request) error {
	w.calls++
	rw.WriteHeader(http.StatusBadGateway)
	return nil
}

func TestNoRetryAfterWrite(t *testing.T) {
	a, b := &writer{}, &writer{}
	p := newPool(t, []Instance{{Name: "a", Backend: a}, {Name: "b", Backend: b}}, Options{})
	w := httptest.NewRecorder()
	if err := p.Serve(w, get("/")); err != nil || w.Code != http.StatusBadGateway {
		t.Fatalf("%v %d", err, w.Code)
	}
	if a.calls+b.calls != 1 {
		t.Errorf("%d calls after a write", a.calls+b.calls)
	}
}

func TestMaxAttempts(t *testing.T) {
	fs, insts := fakes("a", "b", "c")
	for _, f := range fs {
		f.setErrs(dialErr)
	}
	p := newPool(t, insts, Options{MaxAttempts: 2, FailThreshold: -1})
	if _, err, _ := do(p, get("/")); !errors.As(err, new(*backends.DialError)) {
		t.Fatalf("error %v", err)
	}
	if n := fs[0].nCalls() + fs[1].nCalls() + fs[2].nCalls(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestReplaceDrains(t *testing.T) {
	noLeaks(t)
	fs, insts := fakes("a", "b")
	p := newPool(t, insts, Options{})
	sequence(t, p, 1) // a; cursor at b
	who, release := hold(t, p, fs)
	if who != "b" {
		t.Fatalf("held on %s", who)
	}
	_, add := fakes("c")
	if err := p.Replace([]Instance{insts[0], add[0]}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sequence(t, p, 4), ""); strings.Contains(got, "b") {
		t.Fatalf("removed instance served: %s", got)
	}
	st := p.Snapshot()
	if n := len(st.Instances); n != 3 || !st.Instances[2].Removed || st.Instances[2].InFlight != 1 {
		t.Fatalf("status while draining: %+v", st.Instances)
	}
	idle := make(chan error, 1)
	go func() { idle <- p.WaitIdle(context.Background(), "b") }()
	if fs[1].close != 0 {
		t.Fatal("closed while busy")
	}
	release()
	if err := <-idle; err != nil {
		t.Fatal(err)
	}
	if fs[1].close != 1 || fs[0].close != 0 {
		t.Errorf("closes a=%d b=%d", fs[0].close, fs[1].close)
	}
	if n := len(p.Snapshot().Instances); n != 2 {
		t.Errorf("%d instances after drain", n)
	}
}

func TestDrain(t *testing.T) {
	_, insts := fakes("a", "b")
	p := newPool(t, insts, Options{})
	if !p.Drain("a") || p.Drain("zz") {
		t.Fatal("Drain result")
	}
	if got := strings.Join(sequence(t, p, 3), ""); got != "bbb" {
		t.Errorf("while a drains: %s", got)
	}
	p.Undrain("a")
	if got := strings.Join(sequence(t, p, 2), ""); got != "ab" {
		t.Errorf("after undrain: %s", got)
	}
}

func TestSnapshotLatency(t *testing.T) {
	clk := newFakeClock()
	slow := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		clk.Advance(d)
		return nil
	})
	p := newPool(t, []Instance{{Name: "s", Backend: slow}}, Options{Clock: clk})
	for i := 1; i <= 100; i++ {
		if err := p.Serve(httptest.NewRecorder(), get("/?d="+(time.Duration(i)*time.Millisecond).String())); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Snapshot().Instances[0]
	if st.P50 != 50*time.Millisecond || st.P90 != 90*time.Millisecond || st.P99 != 99*time.Millisecond || st.Requests != 100 {
		t.Errorf("p50 %v p90 %v p99 %v requests %d", st.P50, st.P90, st.P99, st.Requests)
	}
}

func TestNewPoolErrors(t *testing.T) {
	f := &fake{}
	tests := []struct {
		name  string
		insts []Instance
		o     Options
	}{
		{"policy", nil, Options{Policy: "fastest"}},
		{"no name", []Instance{{Backend: f}}, Options{}},
		{"no backend", []Instance{{Name: "a"}}, Options{}},
		{"duplicate", []Instance{{Name: "a", Backend: f}, {Name: "a", Backend: f}}, Options{}},
		{"negative queue", nil, Options{QueueSize: -1}},
	}
	for _, tt := range tests {
		if _, err := NewPool("p", tt.insts, tt.o); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, err := NewPool("p", []Instance{{Name: "a", Backend: f}}, Options{}); err != nil {
		t.Error(err)
	}
}

// bodyCheck fails its first request and records the body of the rest.
type bodyCheck struct {
	mu     sync.Mutex
	failed bool
	got    []string
}

func (b *bodyCheck) Serve(w http.ResponseWriter, r *http.Request) error {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.failed {
		b.failed = true
		return err502
	}
	b.got = append(b.got, string(body))
	return nil
}

func TestRetryReplaysBody(t *testing.T) {
	b := &bodyCheck{}
	p := newPool(t, []Instance{{Name: "a", Backend: b}, {Name: "b", Backend: b}}, Options{})
	r := httptest.NewRequest(http.MethodPut, "/", strings.NewReader("payload"))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil }
	if err := p.Serve(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	if len(b.got) != 1 || b.got[0] != "payload" {
		t.Errorf("retried body %q", b.got)
	}
}

func TestConcurrentServeReplace(t *testing.T) {
	noLeaks(t)
	_, insts := fakes("a", "b", "c")
	for i := range insts {
		insts[i].MaxConns = 2
	}
	p := newPool(t, insts, Options{Policy: LeastConn, QueueSize: 100})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, err, _ := do(p, get("/")); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	for i := range 100 {
		set := insts[i%3:]
		set[0].Weight = i%4 + 1
		if err := p.Replace(set); err != nil {
			t.Fatal(err)
		}
		p.Snapshot()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	for _, st := range p.Snapshot().Instances {
		if st.InFlight != 0 || st.Removed {
			t.Errorf("after the load: %+v", st)
		}
	}
}

// TestRecoveredInstanceLeavesEjection: once every instance was ejected, a
// success through the fallback ends that instance's ejection at once, so
// it is a normal candidate again (not only the last-resort fallback).
func TestRecoveredInstanceLeavesEjection(t *testing.T) {
	clk := newFakeClock()
	fs, insts := fakes("a", "b")
	p := newPool(t, insts, Options{FailThreshold: 1, EjectBase: time.Minute, Clock: clk})
	fs[0].setErrs(dialErr)
	fs[1].setErrs(dialErr)
	do(p, get("/")) // both fail, both ejected
	clk.Advance(time.Second)
	fs[1].setErrs(dialErr) // b is still down; a is back
	if name, err, _ := do(p, get("/")); name != "a" || err != nil {
		t.Fatalf("fallback: %q %v", name, err)
	}
	for _, in := range p.Snapshot().Instances {
		if in.Name == "a" && in.Ejected {
			t.Errorf("a answered but is still ejected until %v", in.EjectedUntil)
		}
	}
}

// stickyEarlyHints answers 103 Early Hints the way httputil.ReverseProxy
// relays it (the header map is cleared after the 1xx), then 200.
type stickyEarlyHints struct{}

func (stickyEarlyHints) Serve(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Link", "</style.css>; rel=preload")
	w.WriteHeader(http.StatusEarlyHints)
	clear(w.Header())
	w.Header().Set("X-Instance", "hints")
	w.WriteHeader(http.StatusOK)
	return nil
}

// noInterim is a codec-like writer that drops 1xx responses.
type noInterim struct{ *httptest.ResponseRecorder }

func (w noInterim) WriteHeader(code int) {
	if code >= 200 {
		w.ResponseRecorder.WriteHeader(code)
	}
}

func TestStickyCookieSurvivesInterimResponse(t *testing.T) {
	p := newPool(t, []Instance{{Name: "hints", Backend: stickyEarlyHints{}}}, Options{StickyCookie: "srv"})
	rec := noInterim{httptest.NewRecorder()}
	if err := p.Serve(rec, get("/")); err != nil {
		t.Fatal(err)
	}
	if c := rec.Result().Header.Get("Set-Cookie"); !strings.HasPrefix(c, "srv=") {
		t.Errorf("Set-Cookie = %q after a 103: stickiness lost", c)
	}
}
