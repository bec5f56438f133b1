package cgi

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// waitStats polls b.Stats until ok accepts it (the queue is entered on
// another goroutine) and returns the last value.
func waitStats(t *testing.T, b *Backend, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := b.Stats()
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStatsLoad(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, func(o *Options) { o.MaxConcurrent = 1; o.MaxQueue = 1 })
	if s := b.Stats(); s != (Stats{Max: 1}) {
		t.Fatalf("idle stats %+v", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	r := request("GET", "/cgi-bin/env.cgi", nil, "sleep").WithContext(ctx)
	r.Header.Set("X-Pidfile", pidfile)
	errc := make(chan error, 2)
	go func() { errc <- b.Serve(httptest.NewRecorder(), r) }()
	readPids(t, pidfile)
	if s := b.Stats(); s != (Stats{InUse: 1, Max: 1}) {
		t.Errorf("one running: %+v", s)
	}
	go func() {
		errc <- b.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "nostatus").WithContext(ctx))
	}()
	want := Stats{InUse: 1, Max: 1, Queue: 1}
	if s := waitStats(t, b, func(s Stats) bool { return s == want }); s != want {
		t.Errorf("one running, one queued: %+v, want %+v", s, want)
	}
	cancel()
	<-errc
	<-errc
	// A client going away is not a timeout.
	if s := waitStats(t, b, func(s Stats) bool { return s.InUse == 0 }); s != (Stats{Max: 1}) {
		t.Errorf("after both ended: %+v", s)
	}
}

func TestStatsTimeouts(t *testing.T) {
	checkLeaks(t)
	// Long enough for "nostatus" to finish on a loaded machine (or -race).
	b, _ := newBackend(t, func(o *Options) { o.Timeout = 1500 * time.Millisecond })
	b.grace = 200 * time.Millisecond
	for i, mode := range []string{"nostatus", "sleep", "sleep"} {
		r := request("GET", "/cgi-bin/env.cgi", nil, mode)
		r.Header.Set("X-Pidfile", filepath.Join(t.TempDir(), "pid"))
		_ = b.Serve(httptest.NewRecorder(), r) // the count is what matters here
		if got, want := b.Stats().Timeouts, int64(i); got != want {
			t.Errorf("after %d requests (%s): %d timeouts, want %d", i+1, mode, got, want)
		}
	}
	if s := b.Stats(); s.Max != 0 || s.InUse != 0 {
		t.Errorf("unlimited backend: %+v", s)
	}
}
