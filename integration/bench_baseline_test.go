package integration

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The before/after comparison every end-to-end benchmark carries. With
// JUNCTION_BENCH_BASELINE naming another junction binary (an older build;
// `make bench-compare` builds one from a git ref), each benchmark starts
// that binary next to the junction under test, on the same config but for
// its own socket and operations listener (startGateways), puts it behind
// the same front server, and runs every junction path on both in the same
// rounds: junction and baseline back to back in each round, taking turns
// to go first (pairOrder). Each benchmark's summary then ends with a
// baseline table (bench_verdict_test.go).
//
// This file holds the settings every end-to-end benchmark reads, the two
// gateways, and the heap allocation counts read from their metrics.

const (
	durationEnv = "JUNCTION_BENCH_DURATION"
	roundsEnv   = "JUNCTION_BENCH_ROUNDS"
	baselineEnv = "JUNCTION_BENCH_BASELINE"
)

// mallocsMetric is the Prometheus Go collector's cumulative count of heap
// allocations, on junction's operations listener (/metrics).
const mallocsMetric = "go_memstats_mallocs_total"

// benchConfig is what the environment asks of the end-to-end benchmarks.
type benchConfig struct {
	// Duration is how long each compared path is measured in total
	// (JUNCTION_BENCH_DURATION, default 10s), split over Rounds runs.
	Duration time.Duration
	// Rounds is how many interleaved runs each path gets
	// (JUNCTION_BENCH_ROUNDS, default 3); the figures are their medians.
	Rounds int
	// Baseline is the path of another junction binary to run every
	// junction path on as well (JUNCTION_BENCH_BASELINE), or "".
	Baseline string
}

// roundSecs is how long one wrk run of a path lasts, in whole seconds
// (wrk's unit), at least 1.
func (c benchConfig) roundSecs() int {
	return max(1, int(math.Round(c.Duration.Seconds()/float64(c.Rounds))))
}

// benchSettings skips b unless JUNCTION_BENCH=1 and reads the benchmark
// settings from the environment, failing b on a malformed one.
func benchSettings(b *testing.B) benchConfig {
	b.Helper()
	if os.Getenv("JUNCTION_BENCH") != "1" {
		b.Skip("set JUNCTION_BENCH=1 to run the end-to-end benchmarks")
	}
	cfg, err := parseBenchConfig(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// parseBenchConfig reads the settings through getenv and reports every
// malformed one at once.
func parseBenchConfig(getenv func(string) string) (benchConfig, error) {
	cfg := benchConfig{Duration: 10 * time.Second, Rounds: 3}
	var errs []string
	if s := getenv(durationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a positive duration such as 10s", durationEnv, s))
		}
		cfg.Duration = d
	}
	if s := getenv(roundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a whole number of rounds, at least 1", roundsEnv, s))
		}
		cfg.Rounds = n
	}
	if s := getenv(baselineEnv); s != "" {
		abs, err := filepath.Abs(s)
		if err == nil {
			var st os.FileInfo
			if st, err = os.Stat(abs); err == nil && (st.IsDir() || st.Mode().Perm()&0o111 == 0) {
				err = errors.New("not an executable file")
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: want a junction binary (%v)", baselineEnv, s, err))
		}
		cfg.Baseline = abs
	}
	if len(errs) > 0 {
		return benchConfig{}, fmt.Errorf("benchmark settings: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

func TestParseBenchConfig(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	notExec := writeFile(t, t.TempDir(), "junction", "")
	tests := []struct {
		name string
		env  map[string]string
		want benchConfig
		err  []string
	}{
		{"defaults", nil, benchConfig{Duration: 10 * time.Second, Rounds: 3}, nil},
		{"set", map[string]string{durationEnv: "2s", roundsEnv: "5", baselineEnv: exe},
			benchConfig{Duration: 2 * time.Second, Rounds: 5, Baseline: exe}, nil},
		{"all wrong at once", map[string]string{durationEnv: "-1s", roundsEnv: "0", baselineEnv: notExec}, benchConfig{},
			[]string{durationEnv, roundsEnv, baselineEnv + `="` + notExec + `": want a junction binary (not an executable file)`}},
		{"no such baseline", map[string]string{baselineEnv: "/nonexistent/junction"}, benchConfig{}, []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBenchConfig(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("parseBenchConfig = %+v, want %+v", got, tt.want)
			}
			for _, want := range tt.err {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("parseBenchConfig error %v, want one with %q", err, want)
				}
			}
			if len(tt.err) == 0 && err != nil {
				t.Errorf("parseBenchConfig error %v", err)
			}
		})
	}
}

// gateway is one junction binary serving a benchmark's scenario.
type gateway struct {
	// Label is "junction" (the build under test) or "baseline".
	Label string
	// Listen is the address of its one listener: unix:DIR/LABEL.sock.
	Listen string
	// Metrics is its operations listener (host:port), read for the
	// allocation counts.
	Metrics string
	proc    *proc
}

// PGID is the gateway's process group, charged for its CPU time.
func (g *gateway) PGID() int { return g.proc.cmd.Process.Pid }

// gateways are the junction under test and, second, the baseline when
// there is one.
type gateways []*gateway

// startGateways starts the junction under test on the config conf returns
// for a listener address, and the baseline binary of cfg, if any, on the
// same config for its own address: each on a unix socket in dir named
// after it. Both get an operations listener on a free loopback port for
// their allocation counts; it serves nothing else meanwhile, and the
// request metrics it exposes are kept whether it is configured or not.
func startGateways(b *testing.B, cfg benchConfig, dir string, conf func(listen string) string) gateways {
	b.Helper()
	labels := []string{"junction"}
	if cfg.Baseline != "" {
		labels = append(labels, "baseline")
	}
	var gs gateways
	for _, label := range labels {
		g := &gateway{Label: label, Listen: "unix:" + filepath.Join(dir, label+".sock"), Metrics: freeAddr(b)}
		yaml := strings.TrimRight(conf(g.Listen), "\n") + fmt.Sprintf("\nmetrics: {address: %q}\n", g.Metrics)
		if label == "junction" {
			g.proc = startJunction(b, yaml, g.Listen, g.Metrics).proc
		} else {
			path := writeFile(b, b.TempDir(), "baseline.yaml", baselineYAML(b, cfg.Baseline, yaml))
			g.proc = startCmd(b, "junction-baseline", exec.Command(cfg.Baseline, "serve", "-c", path), 5*time.Second, false)
			waitListening(b, g.proc, 10*time.Second, g.Listen, g.Metrics)
		}
		gs = append(gs, g)
	}
	return gs
}

// baselineYAML returns yaml as the baseline binary bin accepts it: a
// junction older than the allow_root key rejects it (and needs none, since
// it runs scripts as root unasked), so the key is dropped for such a build.
func baselineYAML(b *testing.B, bin, yaml string) string {
	b.Helper()
	path := writeFile(b, b.TempDir(), "probe.yaml", yaml)
	out, _ := exec.Command(bin, "check", "-c", path).CombinedOutput()
	if !strings.Contains(string(out), "allow_root: unknown key") {
		return yaml
	}
	return strings.ReplaceAll(yaml, "allow_root: true, ", "")
}

// hasBaseline reports whether a baseline binary runs next to junction.
func (gs gateways) hasBaseline() bool { return len(gs) > 1 }

// load returns l aimed at the junction under test through url(0), charged
// to it; with a baseline, l.Baseline is the same load on the baseline,
// through url(1). url maps a gateway's index to the front server's URL
// that reaches it.
func (gs gateways) load(l wrkLoad, url func(i int) string) wrkLoad {
	j := l
	j.URL, j.PGID, j.Metrics = url(0), gs[0].PGID(), gs[0].Metrics
	if gs.hasBaseline() {
		bl := l
		bl.Name += " (baseline)"
		bl.URL, bl.PGID, bl.Metrics = url(1), gs[1].PGID(), gs[1].Metrics
		j.Baseline = &bl
	}
	return j
}

// openPath is load's open-loop counterpart.
func (gs gateways) openPath(name string, url func(i int) string) openPath {
	p := openPath{Name: name, URL: url(0), PGID: gs[0].PGID(), Metrics: gs[0].Metrics}
	if gs.hasBaseline() {
		p.Baseline = &openPath{Name: name + " (baseline)", URL: url(1), PGID: gs[1].PGID(), Metrics: gs[1].Metrics}
	}
	return p
}

// requestsMetric is junction's count of the requests it served.
const requestsMetric = "junction_requests_total"

// heapCount is what a gateway's own metrics say about one run.
type heapCount struct {
	// Mallocs counts its heap allocations; negative when they could not
	// be counted (no operations listener, or a binary whose metrics lack
	// mallocsMetric).
	Mallocs float64
	// Served counts the requests it finished meanwhile (requestsMetric);
	// 0 when unknown. It is the divisor for allocations per request
	// rather than the client's count: requests cut off at the end of a
	// run allocate in the gateway but are not among the client's.
	Served float64
}

// perRequest is the allocations per request: per request Served, or per
// request the client counted (sent) when the gateway did not count them;
// -1 when the allocations were not counted or nothing was served.
func (h heapCount) perRequest(sent int) float64 {
	n := h.Served
	if n <= 0 {
		n = float64(sent)
	}
	if h.Mallocs < 0 || n <= 0 {
		return -1
	}
	return h.Mallocs / n
}

// sumHeap pools runs' counts: allocations not counted in one run (or no
// run at all) are not counted in the pool, and the gateway's request count is used only when
// every run has it (otherwise the client's, pooled likewise).
func sumHeap(runs ...heapCount) heapCount {
	if len(runs) == 0 {
		return heapCount{Mallocs: -1}
	}
	var total heapCount
	for _, h := range runs {
		if total.Mallocs >= 0 {
			if h.Mallocs < 0 {
				total.Mallocs = -1
			} else {
				total.Mallocs += h.Mallocs
			}
		}
		if total.Served >= 0 {
			if h.Served <= 0 {
				total.Served = -1
			} else {
				total.Served += h.Served
			}
		}
	}
	total.Served = max(total.Served, 0)
	return total
}

// heapCounter counts a gateway's heap allocations and served requests
// from a starting point.
type heapCounter struct {
	addr  string // the operations listener; "" when there is none
	start metricsSample
}

// countHeap starts counting for the gateway whose operations listener is
// addr ("" for a process without one).
func countHeap(t testing.TB, addr string) heapCounter {
	t.Helper()
	c := heapCounter{addr: addr}
	if addr != "" {
		c.start = scrape(t, addr)
	}
	return c
}

// since returns the counts since countHeap.
func (c heapCounter) since(t testing.TB) heapCount {
	t.Helper()
	h := heapCount{Mallocs: -1}
	if c.addr == "" {
		return h
	}
	now := scrape(t, c.addr)
	m0, ok0 := c.start[mallocsMetric]
	m1, ok1 := now[mallocsMetric]
	if ok0 && ok1 {
		h.Mallocs = m1 - m0
	}
	h.Served = max(now.sum(requestsMetric)-c.start.sum(requestsMetric), 0)
	return h
}

func TestSumHeap(t *testing.T) {
	tests := []struct {
		name string
		runs []heapCount
		want heapCount
		// per is the pool's allocations per request when the client
		// sent 100 requests in all.
		per float64
	}{
		{"none", nil, heapCount{Mallocs: -1}, -1},
		{"counted", []heapCount{{Mallocs: 1000, Served: 10}, {Mallocs: 3000, Served: 30}}, heapCount{Mallocs: 4000, Served: 40}, 100},
		{"a run without served", []heapCount{{Mallocs: 1000, Served: 10}, {Mallocs: 3000}}, heapCount{Mallocs: 4000}, 40},
		{"a run without allocations", []heapCount{{Mallocs: 1000, Served: 10}, {Mallocs: -1, Served: 30}}, heapCount{Mallocs: -1, Served: 40}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sumHeap(tt.runs...)
			if got != tt.want {
				t.Errorf("sumHeap = %+v, want %+v", got, tt.want)
			}
			if per := got.perRequest(100); per != tt.per {
				t.Errorf("perRequest(100) = %v, want %v", per, tt.per)
			}
		})
	}
}
