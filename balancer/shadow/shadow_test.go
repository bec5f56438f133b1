package shadow

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// request builds what a codec hands the router: a request carrying its
// variables in the context.
func request(t testing.TB, method, uri, body string) *http.Request {
	t.Helper()
	v := vars.Vars{
		{Name: "REQUEST_METHOD", Value: method}, {Name: "REQUEST_URI", Value: uri},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"}, {Name: "SERVER_NAME", Value: "example.com"},
		{Name: "SERVER_PORT", Value: "80"}, {Name: "REMOTE_ADDR", Value: "192.0.2.1"},
		{Name: "HTTP_HOST", Value: "example.com"},
	}
	if body != "" {
		v = append(v, vars.Var{Name: "CONTENT_LENGTH", Value: strconv.Itoa(len(body))})
	}
	ctx := vars.NewContext(context.Background(), v)
	r, err := vars.Request(ctx, v, io.NopCloser(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		r.Body = http.NoBody
	}
	return r
}

// app answers like a tiny application; variant changes the answer to
// /differs.
func app(variant string, seen *atomic.Int64, bodies *sync.Map) backends.Func {
	return func(w http.ResponseWriter, r *http.Request) error {
		if seen != nil {
			seen.Add(1)
		}
		b, _ := io.ReadAll(r.Body)
		if bodies != nil {
			bodies.Store(r.URL.Path, string(b))
		}
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/differs" {
			io.WriteString(w, "answer "+variant)
			return nil
		}
		if r.URL.Path == "/redirect" {
			w.Header().Set("Location", "/there")
			w.WriteHeader(http.StatusFound)
			return nil
		}
		io.WriteString(w, "same answer for "+r.URL.Path+" "+string(b))
		return nil
	}
}

type countObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *countObserver) Result(r string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[r]++
}

func (o *countObserver) get(r string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[r]
}

func waitCounted(t *testing.T, b *Backend, total int64) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := b.Stats()
		if s.Same+s.Different+s.Errors+s.Dropped >= total || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSameAndDifferent(t *testing.T) {
	obs := &countObserver{}
	var bodies sync.Map
	b := New(Config{Route: "/app/", Primary: app("A", nil, nil), Shadow: app("B", nil, &bodies),
		ShadowName: "candidate", Percent: 100, Methods: []string{"GET", "POST"}, Observer: obs})
	defer b.Close()
	for _, c := range []struct{ method, uri, body string }{
		{"GET", "/one", ""}, {"GET", "/differs", ""}, {"POST", "/post", "a=1&b=2"}, {"GET", "/redirect", ""},
	} {
		w := httptest.NewRecorder()
		if err := b.Serve(w, request(t, c.method, c.uri, c.body)); err != nil {
			t.Fatalf("%s %s: %v", c.method, c.uri, err)
		}
		if c.uri == "/differs" && w.Body.String() != "answer A" {
			t.Errorf("client got %q, want the primary's answer", w.Body.String())
		}
		if c.uri == "/post" && w.Body.String() != "same answer for /post a=1&b=2" {
			t.Errorf("primary got the body as %q", w.Body.String())
		}
	}
	s := waitCounted(t, b, 4)
	if s.Same != 3 || s.Different != 1 || s.Errors != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v, want 3 same and 1 different", s)
	}
	if got, _ := bodies.Load("/post"); got != "a=1&b=2" {
		t.Errorf("shadow got the POST body %q", got)
	}
	if obs.get(Same) != 3 || obs.get(Different) != 1 {
		t.Errorf("observer counted %v", obs.n)
	}
	if len(s.Last) != 1 || s.Last[0].Request != "GET /differs HTTP/1.1" || s.Last[0].Aspects[0] != AspectBody {
		t.Errorf("last differences %+v", s.Last)
	}
	if s.MatchRate() != 0.75 {
		t.Errorf("match rate %v, want 0.75", s.MatchRate())
	}
}

func TestOnlyListedMethodsAndPercent(t *testing.T) {
	var seen atomic.Int64
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: app("A", &seen, nil), Percent: 100})
	defer b.Close()
	b.Serve(httptest.NewRecorder(), request(t, "POST", "/p", "x"))
	b.Serve(httptest.NewRecorder(), request(t, "HEAD", "/h", ""))
	s := waitCounted(t, b, 1)
	if s.Same != 1 || seen.Load() != 1 {
		t.Errorf("default methods: stats %+v, shadow saw %d; want only the HEAD", s, seen.Load())
	}
	off := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: app("A", &seen, nil), Percent: 0})
	defer off.Close()
	for range 20 {
		off.Serve(httptest.NewRecorder(), request(t, "GET", "/g", ""))
	}
	if st := off.Stats(); st.Same+st.Dropped != 0 {
		t.Errorf("percent 0 shadowed: %+v", st)
	}
}

func TestShadowDownCountsErrors(t *testing.T) {
	down := backends.Func(func(http.ResponseWriter, *http.Request) error {
		return &backends.DialError{Addr: "127.0.0.1:1", Err: errors.New("connection refused")}
	})
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: down, Percent: 100})
	defer b.Close()
	for range 5 {
		w := httptest.NewRecorder()
		if err := b.Serve(w, request(t, "GET", "/x", "")); err != nil || w.Code != 200 {
			t.Fatalf("client: %v %d", err, w.Code)
		}
	}
	s := waitCounted(t, b, 5)
	if s.Errors != 5 || s.Same+s.Different != 0 {
		t.Errorf("stats %+v, want 5 errors", s)
	}
}

// TestPrimaryErrorComparedAsItsPage: when the primary fails before
// answering, the client sees the listener's error page; the shadow's
// answer is compared with that page.
func TestPrimaryErrorComparedAsItsPage(t *testing.T) {
	fail := backends.Func(func(http.ResponseWriter, *http.Request) error {
		return backends.Errorf(http.StatusBadGateway, "down")
	})
	page := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		return backends.Errorf(http.StatusBadGateway, "down too") // the shadow fails the same way, without answering
	})
	b := New(Config{Route: "/", Primary: fail, Shadow: app("A", nil, nil), Percent: 100})
	defer b.Close()
	if err := b.Serve(httptest.NewRecorder(), request(t, "GET", "/x", "")); err == nil {
		t.Fatal("primary's error was swallowed")
	}
	s := waitCounted(t, b, 1)
	if s.Different != 1 || s.Last[0].Primary.Status != http.StatusBadGateway || s.Last[0].Shadow.Status != 200 {
		t.Errorf("stats %+v", s)
	}
	b2 := New(Config{Route: "/", Primary: fail, Shadow: page, Percent: 100})
	defer b2.Close()
	b2.Serve(httptest.NewRecorder(), request(t, "GET", "/x", ""))
	if s := waitCounted(t, b2, 1); s.Errors != 1 {
		t.Errorf("a shadow failing before answering is an error, got %+v", s)
	}
}

// TestSlowShadowNeverDelaysClient: with the shadow stuck, requests are
// answered, the queue fills and further copies are dropped.
func TestSlowShadowNeverDelaysClient(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 10)
	stuck := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return nil
	})
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: stuck, Percent: 100, Queue: 2, Workers: 1})
	b.Serve(httptest.NewRecorder(), request(t, "GET", "/x", ""))
	<-started // the one worker holds the first copy
	done := make(chan struct{})
	go func() {
		for range 9 {
			b.Serve(httptest.NewRecorder(), request(t, "GET", "/x", ""))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the client waited for the shadow")
	}
	// One copy is with the worker, two wait; the other seven are dropped.
	if s := b.Stats(); s.Dropped != 7 {
		t.Errorf("dropped %d, want 7 (%+v)", s.Dropped, s)
	}
	close(release)
	b.Close()
}

// TestShadowOutlivesClientRequest: the copy runs with its own context,
// not cancelled when the client's request ends.
func TestShadowOutlivesClientRequest(t *testing.T) {
	var cancelled atomic.Bool
	slow := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		time.Sleep(50 * time.Millisecond)
		cancelled.Store(r.Context().Err() != nil)
		io.WriteString(w, "x")
		return nil
	})
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: slow, Percent: 100, Compare: []string{AspectStatus}})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := request(t, "GET", "/x", "").WithContext(ctx)
	r = r.WithContext(vars.NewContext(ctx, vars.FromContext(request(t, "GET", "/x", "").Context())))
	b.Serve(httptest.NewRecorder(), r)
	cancel()
	if s := waitCounted(t, b, 1); s.Same != 1 || cancelled.Load() {
		t.Errorf("stats %+v, shadow context cancelled %v", s, cancelled.Load())
	}
}

func TestBodyLimit(t *testing.T) {
	var bodies sync.Map
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: app("A", nil, &bodies), Percent: 100,
		Methods: []string{"POST"}, MaxBody: 4})
	defer b.Close()
	w := httptest.NewRecorder()
	r := request(t, "POST", "/big", "0123456789")
	r.ContentLength = -1 // unknown length: found too large while copying
	if err := b.Serve(w, r); err != nil {
		t.Fatal(err)
	}
	if w.Body.String() != "same answer for /big 0123456789" {
		t.Errorf("primary got %q: the body must reach it whole", w.Body.String())
	}
	if s := b.Stats(); s.Dropped != 1 {
		t.Errorf("stats %+v, want the copy dropped", s)
	}
	if _, ok := bodies.Load("/big"); ok {
		t.Error("a body over max_body was shadowed")
	}
}

func TestHeaderAspect(t *testing.T) {
	mk := func(v string) backends.Func {
		return func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("X-Version", v)
			io.WriteString(w, "body")
			return nil
		}
	}
	b := New(Config{Route: "/", Primary: mk("1"), Shadow: mk("2"), Percent: 100, Compare: []string{AspectBody, "header:X-Version"}})
	defer b.Close()
	b.Serve(httptest.NewRecorder(), request(t, "GET", "/", ""))
	if s := waitCounted(t, b, 1); s.Different != 1 || s.Last[0].Aspects[0] != "header:X-Version" {
		t.Errorf("stats %+v", s)
	}
	if !ValidAspect("header:X-Version") || ValidAspect("header:bad name") || ValidAspect("colour") {
		t.Error("ValidAspect")
	}
}

// TestCloseCancelsCopies: Close does not wait for a stuck shadow.
func TestCloseCancelsCopies(t *testing.T) {
	started := make(chan struct{}, 1)
	stuck := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		started <- struct{}{}
		<-r.Context().Done()
		return r.Context().Err()
	})
	b := New(Config{Route: "/", Primary: app("A", nil, nil), Shadow: stuck, Percent: 100, Timeout: time.Hour})
	b.Serve(httptest.NewRecorder(), request(t, "GET", "/x", ""))
	<-started
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the stuck copy")
	}
	if s := b.Stats(); s.Dropped != 1 || s.Errors != 0 {
		t.Errorf("stats %+v, want the cut copy dropped", s)
	}
	// A request after Close is served and not shadowed.
	w := httptest.NewRecorder()
	if err := b.Serve(w, request(t, "GET", "/y", "")); err != nil || w.Code != 200 {
		t.Errorf("after Close: %v %d", err, w.Code)
	}
}
