package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/junction-gw/junction/balancer"
)

// value returns the value of the series of name with exactly labels, and
// whether it exists. Histograms give their sample count.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !sameLabels(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

func mustValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(t, reg, name, labels)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestNewRegistersRuntimeCollectors(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	New(reg)
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := value(t, reg, name, map[string]string{}); !ok {
			t.Errorf("%s not registered", name)
		}
	}
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		body      string
		backend   string
		wantClass string
		wantIn    float64
		wantOut   float64
	}{
		{"implicit 200", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, "", "php", "2xx", 0, 5},
		{"no write at all", func(w http.ResponseWriter, r *http.Request) {}, "", "php", "2xx", 0, 0},
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "", "static", "4xx", 0, 19},
		{"interim then 503", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusServiceUnavailable)
		}, "", "app", "5xx", 0, 0},
		{"post echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) }, "0123456789", "app", "2xx", 10, 10},
		{"no backend", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(302) }, "", "", "3xx", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m := New(reg)
			h := m.Middleware("main", "fastcgi", func(*http.Request) string { return tt.backend }, tt.handler)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", body))
			backend := tt.backend
			if backend == "" {
				backend = "none"
			}
			routed := map[string]string{"listener": "main", "protocol": "fastcgi", "backend": backend}
			withClass := map[string]string{"listener": "main", "protocol": "fastcgi", "backend": backend, "code_class": tt.wantClass}
			mustValue(t, reg, "junction_requests_total", withClass, 1)
			mustValue(t, reg, "junction_request_duration_seconds", routed, 1)
			mustValue(t, reg, "junction_requests_in_flight", map[string]string{"listener": "main", "protocol": "fastcgi"}, 0)
			if tt.wantIn > 0 {
				mustValue(t, reg, "junction_request_bytes_total", routed, tt.wantIn)
			}
			if tt.wantOut > 0 {
				mustValue(t, reg, "junction_response_bytes_total", routed, tt.wantOut)
			}
		})
	}
}

func TestMiddlewareInFlightAndFlush(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	var inside float64
	h := m.Middleware("l", "scgi", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside, _ = value(t, reg, "junction_requests_in_flight", map[string]string{"listener": "l", "protocol": "scgi"})
		io.WriteString(w, "part")
		if _, ok := w.(http.Flusher); !ok {
			t.Error("wrapped writer is not an http.Flusher")
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if inside != 1 {
		t.Errorf("in flight during the request = %v, want 1", inside)
	}
	if !rec.Flushed {
		t.Error("flush did not reach the codec's writer")
	}
}

func TestCodecObserver(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	o := m.CodecObserver("front", "ajp13")
	o.ConnOpened()
	o.ConnOpened()
	o.ConnClosed()
	o.DecodeError("bad_magic")
	o.DecodeError("bad_magic")
	o.Event("ajp_cping")
	mustValue(t, reg, "junction_connections_open", map[string]string{"listener": "front", "protocol": "ajp13"}, 1)
	mustValue(t, reg, "junction_decode_errors_total", map[string]string{"protocol": "ajp13", "reason": "bad_magic"}, 2)
	mustValue(t, reg, "junction_protocol_events_total", map[string]string{"protocol": "ajp13", "event": "ajp_cping"}, 1)
}

func TestCGIObserver(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	o := m.CGIObserver("scripts")
	o.Spawned(2 * time.Millisecond)
	o.Spawned(3 * time.Millisecond)
	o.Exited(0)
	o.Exited(1)
	o.Exited(0)
	o.Signaled("SIGKILL")
	o.TimedOut()
	b := map[string]string{"backend": "scripts"}
	mustValue(t, reg, "junction_cgi_spawns_total", b, 2)
	mustValue(t, reg, "junction_cgi_spawn_seconds", b, 2)
	mustValue(t, reg, "junction_cgi_exits_total", map[string]string{"backend": "scripts", "code": "0"}, 2)
	mustValue(t, reg, "junction_cgi_exits_total", map[string]string{"backend": "scripts", "code": "1"}, 1)
	mustValue(t, reg, "junction_cgi_signals_total", map[string]string{"backend": "scripts", "signal": "SIGKILL"}, 1)
	mustValue(t, reg, "junction_cgi_timeouts_total", b, 1)
}

func TestPoolMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	if _, ok := value(t, reg, "junction_backend_queue_length", map[string]string{"backend": "app"}); ok {
		t.Error("pool metrics without a source")
	}
	m.SetPoolSource(func() []balancer.PoolStatus {
		return []balancer.PoolStatus{{Name: "app", QueueLen: 3, Instances: []balancer.InstanceStatus{
			{Name: "a", Healthy: true, InFlight: 2, Requests: 10, Failures: 1},
			{Name: "b", Ejected: true, Ejections: 4},
			{Name: "a", Removed: true, InFlight: 1}, // replaced, still finishing
		}}}
	})
	mustValue(t, reg, "junction_backend_queue_length", map[string]string{"backend": "app"}, 3)
	a := map[string]string{"backend": "app", "instance": "a"}
	bi := map[string]string{"backend": "app", "instance": "b"}
	mustValue(t, reg, "junction_instance_healthy", a, 1)
	mustValue(t, reg, "junction_instance_healthy", bi, 0)
	mustValue(t, reg, "junction_instance_ejections_total", bi, 4)
	mustValue(t, reg, "junction_instance_in_flight", a, 2)
	mustValue(t, reg, "junction_instance_requests_total", a, 10)
	mustValue(t, reg, "junction_instance_failures_total", a, 1)

	p := m.Pool("app")
	p.Retried()
	p.QueueWaited(5 * time.Millisecond)
	mustValue(t, reg, "junction_retries_total", map[string]string{"backend": "app"}, 1)
	mustValue(t, reg, "junction_backend_queue_wait_seconds", map[string]string{"backend": "app"}, 1)

	m.SetPoolSource(nil)
	if _, ok := value(t, reg, "junction_backend_queue_length", map[string]string{"backend": "app"}); ok {
		t.Error("pool metrics after the source was removed")
	}
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.CodecObserver("main", "scgi").DecodeError("bad_netstring")
	ready := false
	h := Handler(reg, func() bool { return ready })
	tests := []struct {
		path     string
		ready    bool
		code     int
		contains string
	}{
		{"/metrics", false, 200, `junction_decode_errors_total{protocol="scgi",reason="bad_netstring"} 1`},
		{"/healthz", false, 200, "ok"},
		{"/readyz", false, 503, "not ready"},
		{"/readyz", true, 200, "ready"},
		{"/other", true, 404, ""},
	}
	for _, tt := range tests {
		ready = tt.ready
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("GET %s (ready %v): %d %.200q, want %d containing %q", tt.path, tt.ready, rec.Code, rec.Body.String(), tt.code, tt.contains)
		}
	}
}

func TestConnState(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	hook := m.ConnState("web", "http")
	for _, s := range []http.ConnState{http.StateNew, http.StateNew, http.StateNew, http.StateActive, http.StateIdle, http.StateClosed, http.StateHijacked} {
		hook(nil, s)
	}
	mustValue(t, reg, "junction_connections_open", map[string]string{"listener": "web", "protocol": "http"}, 1)
}
