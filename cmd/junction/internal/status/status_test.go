package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/balancer"
)

var now = time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)

func sample() Snapshot {
	return Snapshot{
		Version:       "0.3.0",
		Started:       now.Add(-(26*time.Hour + 3*time.Minute)),
		Now:           now,
		ConfigVersion: "sha256:ab12cd",
		ConfigLoaded:  now.Add(-time.Hour),
		Listeners: []Listener{
			{Name: "php", Protocol: "fastcgi", Address: "127.0.0.1:9000", OpenConns: 7},
			{Name: "tomcat-compat", Protocol: "ajp13", Address: "/run/junction/ajp.sock", OpenConns: 2},
		},
		Routes: []Route{{Pattern: "/app/", Backend: "app"}, {Pattern: "/cgi-bin/", Backend: "scripts"}},
		Pools: []Pool{{Name: "app", Policy: "least_conn", Queue: 4, Instances: []Instance{
			{Name: "10.0.0.1:8080", State: StateUp, InFlight: 3, Requests: 1200, Failures: 2, P50: 0.004, P90: 0.020, P99: 0.25},
			{Name: "10.0.0.2:8080", State: StateEjected, Ejections: 5, Requests: 800, Failures: 40,
				LastError: "dial tcp 10.0.0.2:8080: connection refused <script>", LastErrorTime: now.Add(-time.Minute)},
			{Name: "10.0.0.3:8080", State: StateBackup},
		}}},
		CGI: []CGI{{Name: "scripts", InUse: 3, Max: 4, Queue: 1, Timeouts: 9}},
	}
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHTML(t *testing.T) {
	rec := get(t, Handler(sample), "GET", "/status")
	body := rec.Body.String()
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"version 0.3.0", "up 1d 2h 3m", "config sha256:ab12cd, loaded 2026-03-07 11:00:00 UTC",
		"<td>php</td><td>fastcgi</td><td>127.0.0.1:9000</td><td class=\"n\">7</td>",
		"<td>/cgi-bin/</td><td>scripts</td>",
		"app <span class=\"none\">(least_conn)</span> · queue 4",
		`<span class="state up">up</span>`, `<span class="state ejected">ejected</span>`, `<span class="state backup">backup</span>`,
		"4.00 ms", "20 ms", "250 ms",
		"connection refused &lt;script&gt;", "2026-03-07 11:59:00 UTC",
		`style="width:75%"`, `<td class="n">9</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "http://", "https://", "shutting down"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestHTMLEmptyAndStopping(t *testing.T) {
	rec := get(t, Handler(func() Snapshot { return Snapshot{ShuttingDown: true} }), "GET", "/status")
	body := rec.Body.String()
	for _, want := range []string{"no listeners", "no routes", "no pools", "no CGI backends", "shutting down", "config –"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	rec := get(t, Handler(sample), "GET", "/status.json")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.UptimeSeconds = want.Now.Sub(want.Started).Seconds()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(rec.Body.String(), `"p99_seconds": 0.25`) {
		t.Errorf("JSON field names changed:\n%s", rec.Body.String())
	}
}

func TestMethods(t *testing.T) {
	h := Handler(sample)
	if rec := get(t, h, "POST", "/status"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	rec := get(t, h, "HEAD", "/status.json")
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d, %d body bytes, length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
}

func TestFromPool(t *testing.T) {
	p := FromPool(balancer.PoolStatus{Name: "app", Policy: "round_robin", QueueLen: 2, Instances: []balancer.InstanceStatus{
		{Name: "a", Healthy: true, InFlight: 1, Requests: 5, P50: 3 * time.Millisecond},
		{Name: "b", Ejected: true, Ejections: 2, LastError: "refused", LastFailure: now},
		{Name: "c", Down: true, Ejected: true},
		{Name: "d", Draining: true},
		{Name: "e", Removed: true},
		{Name: "f", Backup: true, Healthy: true},
	}})
	wantStates := []string{StateUp, StateEjected, StateDown, StateDraining, StateDraining, StateBackup}
	if p.Name != "app" || p.Policy != "round_robin" || p.Queue != 2 || len(p.Instances) != len(wantStates) {
		t.Fatalf("%+v", p)
	}
	for i, want := range wantStates {
		if p.Instances[i].State != want {
			t.Errorf("instance %s: state %q, want %q", p.Instances[i].Name, p.Instances[i].State, want)
		}
	}
	if a := p.Instances[0]; a.InFlight != 1 || a.Requests != 5 || a.P50 != 0.003 {
		t.Errorf("instance a: %+v", a)
	}
	if b := p.Instances[1]; b.Ejections != 2 || b.LastError != "refused" || !b.LastErrorTime.Equal(now) {
		t.Errorf("instance b: %+v", b)
	}
}

func TestUptime(t *testing.T) {
	for sec, want := range map[float64]string{0: "0s", 42: "42s", 61: "1m", 3600 + 120: "1h 2m", 86400*3 + 3600*4 + 60*5: "3d 4h 5m"} {
		if got := uptime(sec); got != want {
			t.Errorf("uptime(%v) = %q, want %q", sec, got, want)
		}
	}
}
