package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/junction-gw/junction/cmd/junction/internal/privdrop"
	"github.com/junction-gw/junction/cmd/junction/internal/status"
	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/internal/syncbuf"
)

// runWithOptions runs NewWithOptions(cfg) until the test ends.
func runWithOptions(t *testing.T, cfg *config.Config, o Options) (*App, context.CancelFunc, func() error) {
	t.Helper()
	a, err := NewWithOptions(cfg, testLogger(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = a.Run(ctx); close(done) }()
	wait := func() error {
		select {
		case <-done:
			return runErr
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
			return nil
		}
	}
	t.Cleanup(func() {
		cancel()
		wait()
	})
	// Run marks itself ready once its listeners serve.
	if !waitUntil(5*time.Second, a.ops.ready.Load) {
		t.Fatal("app never became ready")
	}
	return a, cancel, wait
}

func waitUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// metricValue sums the samples of family whose labels include want.
func metricValue(t *testing.T, a *App, family string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			found = true
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(want)
}

func TestOperations(t *testing.T) {
	a1, a2 := named(t, "a1"), named(t, "a2")
	cfg := parse(t, fmt.Sprintf(`
shutdown_timeout: 5s
log: {access: json}
metrics: {address: "127.0.0.1:0"}
listeners:
  - {protocol: http, address: "127.0.0.1:0", backend: app}
routes:
  - {prefix: /cgi-bin/, backend: scripts}
backends:
  app: {type: http, instances: [%q, %q]}
  scripts: {type: cgi, root: %q, url_prefix: /cgi-bin/, max_concurrent: 3}
`, a1, a2, examplesRoot(t)))
	alog := &syncbuf.Buffer{}
	a, cancel, wait := runWithOptions(t, cfg, Options{Version: "test-1", AccessLog: alog})
	front := "http://" + a.Addrs()[0].String()
	admin := "http://" + a.MetricsAddr().String()

	for range 3 {
		if code, _ := get(t, front+"/x"); code != 200 {
			t.Fatalf("pool request: %d", code)
		}
	}
	if code, body := get(t, front+"/cgi-bin/hello.sh"); code != 200 {
		t.Fatalf("cgi request: %d %s", code, body)
	}
	if code, _ := get(t, front+"/cgi-bin/missing.sh"); code != 404 {
		t.Fatalf("missing script: %d", code)
	}

	listener := map[string]string{"listener": "127.0.0.1:0", "protocol": "http"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range listener {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	counters := []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"junction_requests_total", with("backend", "app", "code_class", "2xx"), 3},
		{"junction_requests_total", with("backend", "scripts", "code_class", "2xx"), 1},
		{"junction_requests_total", with("backend", "scripts", "code_class", "4xx"), 1},
		{"junction_request_duration_seconds", with("backend", "app"), 3},
		{"junction_requests_in_flight", listener, 0},
		{"junction_cgi_spawns_total", map[string]string{"backend": "scripts"}, 1},
		{"junction_cgi_exits_total", map[string]string{"backend": "scripts", "code": "0"}, 1},
		{"junction_instance_requests_total", map[string]string{"backend": "app"}, 3},
		{"junction_instance_healthy", map[string]string{"backend": "app"}, 2},
		{"junction_backend_queue_length", map[string]string{"backend": "app"}, 0},
	}
	for _, c := range counters {
		got, found := metricValue(t, a, c.family, c.labels)
		if !found || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.family, c.labels, got, found, c.want)
		}
	}
	// The HTTP listener's keep-alive connection is counted while open.
	if _, found := metricValue(t, a, "junction_connections_open", listener); !found {
		t.Error("no junction_connections_open series for the http listener")
	}

	code, body := get(t, admin+"/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_open_fds") {
		t.Errorf("/metrics: %d, runtime or process collector missing", code)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nothing": 404} {
		if code, _ := get(t, admin+path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}

	code, body = get(t, admin+"/status.json")
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); code != 200 || err != nil {
		t.Fatalf("/status.json: %d %v\n%s", code, err, body)
	}
	if snap.Version != "test-1" || snap.ConfigVersion != cfg.Version || snap.UptimeSeconds <= 0 {
		t.Errorf("status header: version %q config %q uptime %v", snap.Version, snap.ConfigVersion, snap.UptimeSeconds)
	}
	if len(snap.Listeners) != 1 || snap.Listeners[0].Protocol != "http" || snap.Listeners[0].Address != a.Addrs()[0].String() {
		t.Errorf("listeners %+v", snap.Listeners)
	}
	if len(snap.Pools) != 1 || snap.Pools[0].Name != "app" || len(snap.Pools[0].Instances) != 2 {
		t.Fatalf("pools %+v", snap.Pools)
	}
	var reqs int64
	for _, in := range snap.Pools[0].Instances {
		reqs += in.Requests
		if in.State != status.StateUp {
			t.Errorf("instance %s is %s", in.Name, in.State)
		}
	}
	if reqs != 3 {
		t.Errorf("pool instances served %d requests, want 3", reqs)
	}
	if len(snap.CGI) != 1 || snap.CGI[0].Name != "scripts" || snap.CGI[0].Max != 3 {
		t.Errorf("cgi %+v", snap.CGI)
	}
	if len(snap.Routes) != 2 || snap.Routes[0].Backend != "scripts" || snap.Routes[1].Backend != "app" {
		t.Errorf("routes %+v", snap.Routes)
	}
	if code, body := get(t, admin+"/status"); code != 200 || !strings.Contains(body, a1) || !strings.Contains(body, "scripts") {
		t.Errorf("/status: %d\n%s", code, body)
	}

	// One JSON access log line per request, with backend and instance.
	lines := strings.Split(strings.TrimSpace(alog.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d access log lines, want 5:\n%s", len(lines), alog)
	}
	type line struct {
		URI, Backend, Instance, Protocol string
		Status                           int
		UpstreamTime                     float64 `json:"upstream_time"`
	}
	for i, l := range lines {
		var got line
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		switch {
		case i < 3 && (got.Backend != "app" || (got.Instance != a1 && got.Instance != a2) || got.UpstreamTime <= 0):
			t.Errorf("pool line %s", l)
		case i == 3 && (got.Backend != "scripts" || got.Status != 200 || got.UpstreamTime <= 0):
			t.Errorf("cgi line %s", l)
		case got.Protocol != "http":
			t.Errorf("protocol in %s", l)
		}
	}

	cancel()
	if err := wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if a.ops.ready.Load() {
		t.Error("still ready after shutdown")
	}
}

func TestScriptUser(t *testing.T) {
	nobody, err := privdrop.Lookup("nobody", "")
	if err != nil {
		t.Skip(err)
	}
	tests := []struct {
		name             string
		cred             *privdrop.Credential
		user, group      string
		wantUser, wantGr string
		wantErr          bool
	}{
		{"no drop keeps the backend's user", nil, "www-data", "", "www-data", "", false},
		{"no user on the backend", nobody, "", "", "", "", false},
		{"same user runs as junction", nobody, "nobody", "", "", "", false},
		{"same user by id", nobody, "65534", "nogroup", "", "", false},
		{"other user refused", nobody, "root", "", "", "", true},
		{"other group refused", nobody, "", "root", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, g, err := scriptUser(&config.Backend{User: tt.user, Group: tt.group}, tt.cred)
			if (err != nil) != tt.wantErr || u != tt.wantUser || g != tt.wantGr {
				t.Errorf("got %q %q %v; want %q %q error %v", u, g, err, tt.wantUser, tt.wantGr, tt.wantErr)
			}
		})
	}
}

func TestNotifySystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	cfg := testConfig(t, `  - {protocol: http, address: "127.0.0.1:0", backend: scripts}`)
	a, cancel, wait := runWithOptions(t, cfg, Options{})
	if m := next(); !strings.HasPrefix(m, "READY=1\n") {
		t.Errorf("after start: %q", m)
	}
	if err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if m := next(); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reload start: %q", m)
	}
	if m := next(); !strings.HasPrefix(m, "READY=1\n") {
		t.Errorf("reload end: %q", m)
	}
	cancel()
	if m := next(); m != "STOPPING=1" {
		t.Errorf("shutdown: %q", m)
	}
	wait()
}
