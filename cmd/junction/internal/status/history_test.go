package status

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/internal/spark"
)

// points returns the y values of the first polyline of the given series
// in page.
func points(t *testing.T, page, series string) []float64 {
	t.Helper()
	re := regexp.MustCompile(`<svg class="spark ` + series + `"[^>]*>.*?<polyline points="([^"]*)"/>`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s sparkline in the page", series)
	}
	var ys []float64
	for _, xy := range strings.Fields(m[1]) {
		_, y, _ := strings.Cut(xy, ",")
		f, err := strconv.ParseFloat(y, 64)
		if err != nil {
			t.Fatalf("point %q: %v", xy, err)
		}
		ys = append(ys, f)
	}
	return ys
}

func TestSparklines(t *testing.T) {
	var s spark.Series
	at := time.Unix(1_800_000_000, 0).Truncate(spark.Interval)
	// 20 requests 30 buckets ago, 10 (5 failed, slow) in the current one.
	for range 20 {
		s.Record(at.Add(-30*spark.Interval), time.Millisecond, false)
	}
	for i := range 10 {
		s.Record(at.Add(5*time.Second), 300*time.Millisecond, i%2 == 0)
	}
	hist := s.Points(at.Add(5 * time.Second))
	ps := balancer.PoolStatus{Name: "php", Policy: "round_robin", History: hist, Instances: []balancer.InstanceStatus{
		{Name: "unix:/run/fpm.sock", Healthy: true, Source: "static", Limit: 5, AutoMaxConns: true, CapacityKnown: true,
			Capacity: backends.Capacity{Max: 5, Idle: 3, Source: "status page"}, History: hist},
		{Name: "127.0.0.1:9000", Healthy: true, Source: "static", Limit: 3, AutoMaxConns: true, CapacityKnown: true,
			Capacity: backends.Capacity{Idle: 0, Source: "status page", Why: "pm = dynamic"}},
		{Name: "127.0.0.1:9001", Healthy: true, Limit: 2},
	}}
	p := FromPool(ps)
	snap := Snapshot{Now: at, Pools: []Pool{p}}
	rec := get(t, Handler(func() Snapshot { return snap }), "GET", "/status")
	page := rec.Body.String()
	for _, want := range []string{
		`5 from status page <span class="none">· 3 idle</span>`,
		"unknown (pm = dynamic); fallback 3",
		"max_conns 2",
		"requests/s, last 15 min: now 2.00/s, peak 2.00/s",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<svg class="spark `); n != 3+3 {
		t.Errorf("%d sparklines, want 6 (pool and one instance with history)", n)
	}
	req := points(t, page, "requests")
	if len(req) != spark.Buckets {
		t.Fatalf("%d points, want %d", len(req), spark.Buckets)
	}
	// Both busy buckets reach the top (2/s each); every other one lies on
	// the baseline.
	for i, y := range req {
		busy := i == spark.Buckets-1-30 || i == spark.Buckets-1
		if busy != (y < sparkBase) {
			t.Errorf("requests point %d at y %v (busy %v)", i, y, busy)
		}
	}
	errs := points(t, page, "errors")
	if errs[spark.Buckets-31] != sparkBase || errs[spark.Buckets-1] != sparkBase-sparkH {
		t.Errorf("errors: %v ... %v", errs[spark.Buckets-31], errs[spark.Buckets-1])
	}
	p99 := points(t, page, "p99")
	if !(p99[spark.Buckets-1] < p99[spark.Buckets-31] && p99[spark.Buckets-31] < sparkBase) {
		t.Errorf("p99: the slow bucket is not the higher one: %v vs %v", p99[spark.Buckets-1], p99[spark.Buckets-31])
	}

	rec = get(t, Handler(func() Snapshot { return snap }), "GET", "/status.json")
	var got struct {
		Pools []struct {
			History   History
			Instances []struct {
				Capacity       int      `json:"capacity"`
				CapacitySource string   `json:"capacity_source"`
				CapacityStatus string   `json:"capacity_status"`
				MaxConns       int      `json:"max_conns"`
				IdleWorkers    *int     `json:"idle_workers"`
				Source         string   `json:"source"`
				History        *History `json:"history"`
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	in := got.Pools[0].Instances
	if in[0].Capacity != 5 || in[0].CapacitySource != "status page" || in[0].MaxConns != 5 || in[0].IdleWorkers == nil ||
		*in[0].IdleWorkers != 3 || in[0].Source != "static" || in[0].History == nil || in[0].History.Requests[spark.Buckets-1] != 2 {
		t.Errorf("instance 0 = %+v", in[0])
	}
	if in[1].Capacity != 0 || in[1].MaxConns != 3 || !strings.Contains(in[1].CapacityStatus, "unknown") {
		t.Errorf("instance 1 = %+v", in[1])
	}
	if h := got.Pools[0].History; len(h.Errors) != spark.Buckets || h.Errors[spark.Buckets-1] != 1 || h.IntervalSeconds != 10 {
		t.Errorf("pool history = %+v", h)
	}
}
