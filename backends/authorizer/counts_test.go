package authorizer

import (
	"net/http/httptest"
	"testing"
	"time"
)

// TestStats: every outcome is counted beside the Observer (a client that
// went away is no error: TestClientGone), and Counts given in Options
// carry on across authorizers (a reload builds them anew).
func TestStats(t *testing.T) {
	f := startFake(t, func(req fakeRequest) reply {
		switch req.params["REQUEST_URI"] {
		case "/allow":
			return reply{stdout: "Status: 200\r\n\r\n"}
		case "/deny":
			return reply{stdout: "Status: 403\r\nContent-Type: text/plain\r\n\r\nno"}
		}
		return reply{stdout: "broken"}
	})
	counts := new(Counts)
	obs := &counter{}
	for gen := 1; gen <= 2; gen++ {
		a := newAuth(t, &guarded{}, Options{Instances: []string{f.addr()}, Timeout: time.Second, Observer: obs, Counts: counts})
		for _, target := range []string{"/allow", "/allow", "/deny", "/broken"} {
			_, _ = serve(a, httptest.NewRequest("GET", target, nil)) // the outcome is what is counted
		}
		want := Stats{Allowed: 2 * int64(gen), Denied: int64(gen), Errors: int64(gen)}
		if got := a.Stats(); got != want {
			t.Errorf("authorizer %d: Stats = %+v, want %+v", gen, got, want)
		}
	}
	if got := counts.Stats(); got.Allowed != int64(obs.allowed.Load()) || got.Denied != int64(obs.denied.Load()) || got.Errors != int64(obs.failed.Load()) {
		t.Errorf("Counts %+v differ from the Observer's %d/%d/%d", got, obs.allowed.Load(), obs.denied.Load(), obs.failed.Load())
	}
	own := newAuth(t, &guarded{}, Options{Instances: []string{f.addr()}})
	_, _ = serve(own, httptest.NewRequest("GET", "/deny", nil))
	if got := own.Stats(); got != (Stats{Denied: 1}) {
		t.Errorf("without Options.Counts: Stats = %+v, want one denial", got)
	}
}
