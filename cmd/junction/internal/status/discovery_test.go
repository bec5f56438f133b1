package status

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func discoverySample() Snapshot {
	return Snapshot{Now: now, Pools: []Pool{
		{Name: "static", Source: "static", Instances: []Instance{{Name: "127.0.0.1:8080", State: StateUp}}},
		{Name: "app", Source: "srv", Discovery: &Discovery{
			Name: "_app._tcp.service.consul", Resolver: "127.0.0.1:8600", RefreshSeconds: 5,
			LastRefresh: now.Add(-2 * time.Second), Instances: 3, Failing: true,
			LastError: "lookup _app._tcp.service.consul on 127.0.0.1:8600: <i/o timeout>", LastErrorTime: now.Add(-time.Second),
			Pending: map[string]string{"node3.node.dc1.consul:21000": "health check: 503"},
		}, Instances: []Instance{{Name: "node1.node.dc1.consul:21000", State: StateUp}}},
	}}
}

func TestDiscoveryShown(t *testing.T) {
	rec := get(t, Handler(discoverySample), "GET", "/status")
	body := rec.Body.String()
	for _, want := range []string{
		"<span>source static</span>", "<span>source srv</span>",
		"_app._tcp.service.consul via 127.0.0.1:8600 every 5s · 3 found",
		"last refresh 2026-03-07 11:59:58 UTC",
		`<span class="stopping">last error lookup _app._tcp.service.consul on 127.0.0.1:8600: &lt;i/o timeout&gt;`,
		"pending node3.node.dc1.consul:21000: health check: 503",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	rec = get(t, Handler(discoverySample), "GET", "/status.json")
	var got struct {
		Pools []map[string]any `json:"pools"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	d, _ := got.Pools[1]["discovery"].(map[string]any)
	if got.Pools[0]["source"] != "static" || got.Pools[0]["discovery"] != nil || got.Pools[1]["source"] != "srv" ||
		d["last_refresh"] != "2026-03-07T11:59:58Z" || d["failing"] != true || d["refresh_seconds"] != 5.0 ||
		!strings.Contains(d["last_error"].(string), "i/o timeout") {
		t.Errorf("JSON pools %v", got.Pools)
	}
}
