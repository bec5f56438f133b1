package integration

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The baseline table closing each end-to-end benchmark's summary when a
// baseline binary ran (bench_baseline_test.go) gives, per scenario and
// figure, both binaries' medians, their ratio, the spread of the
// round-by-round ratios (the noise of this run) and a verdict:
//
//   - req/s (closed loop): REGRESSION when junction is more than 5 % slower;
//   - CPU µs per request of the gateway's process group (its scripts
//     excluded, see groupCPUs): REGRESSION when more than 5 % higher;
//   - allocations per request, from the Go runtime's count of heap
//     allocations (go_memstats_mallocs_total on the operations listener):
//     REGRESSION when junction makes more than allocSlack more;
//   - open-loop latencies, CPU and allocations at a fixed rate (pools):
//     likewise.
//
// "better" marks a figure more than 5 % on the good side, "(noisy)" one
// whose rounds disagree by more than the band the verdict tells apart (a
// busy machine: rerun with more or longer rounds). With the same code on
// both sides (a baseline built from the tree under test) the ratios are
// the noise level of the machine.

// baselineTolerance is how far, relatively, a rate, a CPU cost or a
// latency of junction's may fall behind the baseline's before the
// difference counts as a regression.
const baselineTolerance = 0.05

// allocSlack is how many more heap allocations per request than the
// baseline junction may make before that counts as a regression. A request
// allocates a whole number of times, so an extra allocation on every
// request shows as +1; what stays below half of one is counting noise: the
// runtime counts a cached span's allocations only when the span is handed
// back, so each reading of the counter lags by up to a few thousand
// objects (and the scrape itself allocates), spread over a round's
// requests.
const allocSlack = 0.5

// figureKind says which way a figure is better.
type figureKind int

const (
	higherBetter figureKind = iota // a rate
	lowerBetter                    // a cost or a latency
	allocations                    // allocations per request: compared by difference
)

// baselineFigure is one figure of a scenario on junction (J) and the baseline
// (B). A negative value means not measured.
type baselineFigure struct {
	// Name heads the row ("req/s"); Key names the metric reported to the
	// benchmark framework (no white space).
	Name, Key string
	Kind      figureKind
	// J and B are the medians of the rounds (allocations: the rounds'
	// total over their requests).
	J, B float64
	// Rounds holds each round's pair, junction's first.
	Rounds [][2]float64
}

// compare is J against B: the ratio, or for allocations the difference.
func (f baselineFigure) compare(j, b float64) float64 {
	if f.Kind == allocations {
		return j - b
	}
	if b == 0 {
		return math.NaN()
	}
	return j / b
}

// measured reports whether both sides have the figure.
func (f baselineFigure) measured() bool {
	return f.J >= 0 && f.B >= 0 && (f.Kind == allocations || f.B > 0)
}

// verdict judges J against B (see the file comment), marked "(noisy)"
// when the rounds disagree too much for the judgement to hold.
func (f baselineFigure) verdict() string {
	if !f.measured() {
		return "not measured"
	}
	v := f.judge()
	if f.noisy() {
		v += " (noisy)"
	}
	return v
}

func (f baselineFigure) judge() string {
	c := f.compare(f.J, f.B)
	switch f.Kind {
	case allocations:
		switch {
		case c > allocSlack:
			return "REGRESSION"
		case c < -allocSlack:
			return "lower"
		}
		return "not higher"
	case higherBetter:
		c = 1 / c
	}
	// c is now junction's cost relative to the baseline's.
	switch {
	case c > 1+baselineTolerance:
		return "REGRESSION"
	case c < 1-baselineTolerance:
		return "better"
	}
	return fmt.Sprintf("within %.0f %%", 100*baselineTolerance)
}

// roundRange is the lowest and highest of the rounds' own comparisons;
// ok is false when fewer than one round has both sides.
func (f baselineFigure) roundRange() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, r := range f.Rounds {
		if r[0] < 0 || r[1] < 0 {
			continue
		}
		c := f.compare(r[0], r[1])
		if math.IsNaN(c) {
			continue
		}
		lo, hi = min(lo, c), max(hi, c)
	}
	return lo, hi, lo <= hi
}

// noisy reports whether the rounds' comparisons spread wider than the band
// a verdict tells apart (±baselineTolerance, ±allocSlack): a burst of
// someone else's load landed on some rounds, and the medians may be off.
func (f baselineFigure) noisy() bool {
	lo, hi, ok := f.roundRange()
	if !ok {
		return false
	}
	if f.Kind == allocations {
		return hi-lo > 2*allocSlack
	}
	return hi-lo > 2*baselineTolerance
}

// cells formats the values, the comparison and the spread of the rounds'
// comparisons.
func (f baselineFigure) cells() (j, b, cmp, spread string) {
	val := func(v float64) string {
		if v < 0 {
			return "-"
		}
		if f.Kind == higherBetter {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.1f", v)
	}
	j, b, cmp, spread = val(f.J), val(f.B), "-", "-"
	if !f.measured() {
		return
	}
	form := "%.3fx"
	if f.Kind == allocations {
		form = "%+.2f"
	}
	cmp = fmt.Sprintf(form, f.compare(f.J, f.B))
	if lo, hi, ok := f.roundRange(); ok {
		spread = fmt.Sprintf(form+"…"+form, lo, hi)
	}
	return
}

// baselineScenario is one scenario's figures on junction and the baseline.
type baselineScenario struct {
	Name    string
	Figures []baselineFigure
	// Others is the median share of the machine other processes used
	// during junction's rounds and during the baseline's (see
	// wrkResult.Others); nil when not measured.
	Others []float64
}

// wrkScenario gives a closed-loop path's figures: its runs on junction
// (r.Runs) and on the baseline (r.Baseline), round by round.
func wrkScenario(name string, r loadResult) baselineScenario {
	j, bl := medianWrk(r.Runs), medianWrk(r.Baseline)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	cpu := func(w wrkResult) float64 {
		if w.CPUPerReq == 0 {
			return -1
		}
		return us(w.CPUPerReq)
	}
	figs := []baselineFigure{
		{Name: "req/s", Key: "req/s", Kind: higherBetter, J: j.RPS, B: bl.RPS},
		{Name: "cpu µs/req", Key: "cpu-us/req", Kind: lowerBetter, J: cpu(j), B: cpu(bl)},
		{Name: "allocs/req", Key: "allocs/req", Kind: allocations, J: j.allocsPerReq(), B: bl.allocsPerReq()},
	}
	for i := range min(len(r.Runs), len(r.Baseline)) {
		rj, rb := r.Runs[i], r.Baseline[i]
		figs[0].Rounds = append(figs[0].Rounds, [2]float64{rj.RPS, rb.RPS})
		figs[1].Rounds = append(figs[1].Rounds, [2]float64{cpu(rj), cpu(rb)})
		figs[2].Rounds = append(figs[2].Rounds, [2]float64{rj.allocsPerReq(), rb.allocsPerReq()})
	}
	sc := baselineScenario{Name: name, Figures: figs}
	if j.Others != 0 || bl.Others != 0 {
		sc.Others = []float64{j.Others, bl.Others}
	}
	return sc
}

// openScenario gives an open-loop path's figures at its fixed rate:
// latencies, and the gateway's CPU and allocations per request.
func openScenario(name string, r openCompared) baselineScenario {
	j, bl := medianOpen(r.Runs), medianOpen(r.Baseline)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	cpu := func(o openResult) float64 {
		if o.GatewayCPUPerReq == 0 {
			return -1
		}
		return float64(o.GatewayCPUPerReq) / float64(time.Microsecond)
	}
	figs := []baselineFigure{
		{Name: "open p50 ms", Key: "open-p50-ms", Kind: lowerBetter, J: ms(j.P50), B: ms(bl.P50)},
		{Name: "open p99 ms", Key: "open-p99-ms", Kind: lowerBetter, J: ms(j.P99), B: ms(bl.P99)},
		{Name: "open cpu µs/req", Key: "open-cpu-us/req", Kind: lowerBetter, J: cpu(j), B: cpu(bl)},
		{Name: "open allocs/req", Key: "open-allocs/req", Kind: allocations, J: j.allocsPerReq(), B: bl.allocsPerReq()},
	}
	for i := range min(len(r.Runs), len(r.Baseline)) {
		rj, rb := r.Runs[i], r.Baseline[i]
		figs[0].Rounds = append(figs[0].Rounds, [2]float64{ms(rj.P50), ms(rb.P50)})
		figs[1].Rounds = append(figs[1].Rounds, [2]float64{ms(rj.P99), ms(rb.P99)})
		figs[2].Rounds = append(figs[2].Rounds, [2]float64{cpu(rj), cpu(rb)})
		figs[3].Rounds = append(figs[3].Rounds, [2]float64{rj.allocsPerReq(), rb.allocsPerReq()})
	}
	return baselineScenario{Name: name, Figures: figs}
}

// report sends the scenario's junction/baseline comparisons to the
// benchmark framework.
func (s baselineScenario) report(b *testing.B) {
	b.Helper()
	name := strings.Join(strings.Fields(s.Name), "-")
	for _, f := range s.Figures {
		if !f.measured() {
			continue
		}
		unit := name + "-" + f.Key + "-junction/baseline"
		if f.Kind == allocations {
			unit = name + "-" + f.Key + "-junction-baseline"
		}
		b.ReportMetric(f.compare(f.J, f.B), unit)
	}
}

// baselineTable formats the scenarios of one benchmark under title, with
// a closing verdict line, or returns "" without scenarios (no baseline).
func baselineTable(cfg benchConfig, title string, scenarios []baselineScenario, notes ...string) string {
	if len(scenarios) == 0 {
		return ""
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\n%s: junction vs baseline %s\n", title, cfg.Baseline)
	fmt.Fprintf(&t, "(same config and front server; %d rounds, junction and baseline back to back in each, taking turns to go first;\n"+
		" medians, allocations pooled over the rounds; GOMAXPROCS %d)\n",
		cfg.Rounds, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&t, "%-16s %-16s %10s %10s %8s %17s  %s\n", "scenario", "figure", "junction", "baseline", "j/b", "rounds j/b", "verdict")
	var bad, noisy, others []string
	n := 0
	for _, s := range scenarios {
		for _, f := range s.Figures {
			j, b, cmp, spread := f.cells()
			v := f.verdict()
			fmt.Fprintf(&t, "%-16s %-16s %10s %10s %8s %17s  %s\n", s.Name, f.Name, j, b, cmp, spread, v)
			if !f.measured() {
				continue
			}
			n++
			if f.judge() == "REGRESSION" {
				bad = append(bad, s.Name+" "+f.Name)
			}
			if f.noisy() {
				noisy = append(noisy, s.Name+" "+f.Name)
			}
		}
		if s.Others != nil {
			others = append(others, fmt.Sprintf("%s %s/%s", s.Name, othersCell(s.Others[0]), othersCell(s.Others[1])))
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(&t, "verdict: REGRESSION in %s\n", strings.Join(bad, ", "))
	} else {
		fmt.Fprintf(&t, "verdict: no regression in %d figures (rates, CPU and latencies within %.0f %%, allocations at most +%.1f per request)\n",
			n, 100*baselineTolerance, allocSlack)
	}
	if len(noisy) > 0 {
		fmt.Fprintf(&t, "noisy: the rounds of %s disagree by more than the verdict's band: the machine was too busy for these to hold;\n"+
			"  rerun with more rounds (%s) or longer ones (%s) when it is quieter\n", strings.Join(noisy, ", "), roundsEnv, durationEnv)
	}
	if len(others) > 0 {
		fmt.Fprintf(&t, "other processes' share of the machine during junction's/the baseline's rounds (medians): %s\n", strings.Join(others, ", "))
	}
	t.WriteString("j/b: ratio of the medians, for allocs/req the difference; rounds j/b: the lowest and highest of the rounds' own (the noise)\n")
	for _, n := range notes {
		t.WriteString(n)
		t.WriteByte('\n')
	}
	return t.String()
}

func TestBaselineFigureVerdict(t *testing.T) {
	tests := []struct {
		name string
		f    baselineFigure
		want string
	}{
		{"rate within", baselineFigure{Kind: higherBetter, J: 960, B: 1000}, "within 5 %"},
		{"rate slower", baselineFigure{Kind: higherBetter, J: 940, B: 1000}, "REGRESSION"},
		{"rate faster", baselineFigure{Kind: higherBetter, J: 1100, B: 1000}, "better"},
		{"cost within", baselineFigure{Kind: lowerBetter, J: 104, B: 100}, "within 5 %"},
		{"cost higher", baselineFigure{Kind: lowerBetter, J: 106, B: 100}, "REGRESSION"},
		{"cost lower", baselineFigure{Kind: lowerBetter, J: 90, B: 100}, "better"},
		{"allocs noise", baselineFigure{Kind: allocations, J: 100.4, B: 100}, "not higher"},
		{"allocs one more", baselineFigure{Kind: allocations, J: 101, B: 100}, "REGRESSION"},
		{"allocs fewer", baselineFigure{Kind: allocations, J: 99, B: 100}, "lower"},
		{"allocs zero", baselineFigure{Kind: allocations, J: 0, B: 0}, "not higher"},
		{"not counted", baselineFigure{Kind: allocations, J: 10, B: -1}, "not measured"},
		{"rounds agree", baselineFigure{Kind: higherBetter, J: 1000, B: 1000, Rounds: [][2]float64{{1000, 960}, {1000, 1040}}}, "within 5 %"},
		{"rounds disagree", baselineFigure{Kind: higherBetter, J: 1000, B: 1000, Rounds: [][2]float64{{1000, 900}, {1000, 1100}}}, "within 5 % (noisy)"},
		{"allocs rounds disagree", baselineFigure{Kind: allocations, J: 102, B: 100, Rounds: [][2]float64{{101, 100}, {103, 101}, {100, 100.5}}}, "REGRESSION (noisy)"},
		{"no baseline rate", baselineFigure{Kind: higherBetter, J: 10, B: 0}, "not measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.verdict(); got != tt.want {
				t.Errorf("verdict of %+v = %q, want %q", tt.f, got, tt.want)
			}
		})
	}
}

func TestBaselineTable(t *testing.T) {
	cfg := benchConfig{Rounds: 2, Baseline: "/tmp/junction-old"}
	if got := baselineTable(cfg, "none", nil); got != "" {
		t.Errorf("baselineTable without scenarios = %q, want nothing", got)
	}
	r := loadResult{
		Runs: []wrkResult{{RPS: 1000, CPUPerReq: 100 * time.Microsecond, Requests: 1000, Heap: heapCount{Mallocs: 50000}},
			{RPS: 1040, CPUPerReq: 108 * time.Microsecond, Requests: 1000, Heap: heapCount{Mallocs: 51000}}},
		Baseline: []wrkResult{{RPS: 1100, CPUPerReq: 100 * time.Microsecond, Requests: 1000, Heap: heapCount{Mallocs: 50000}},
			{RPS: 1100, CPUPerReq: 100 * time.Microsecond, Requests: 1000, Heap: heapCount{Mallocs: -1}}},
	}
	got := baselineTable(cfg, "SCGI", []baselineScenario{wrkScenario("hello.sh", r)})
	for _, want := range []string{
		"SCGI: junction vs baseline /tmp/junction-old",
		// Medians 1020 vs 1100: 0.927x, rounds 0.909x and 0.945x.
		"hello.sh         req/s                  1020       1100   0.927x     0.909x…0.945x  REGRESSION\n",
		"hello.sh         cpu µs/req            104.0      100.0   1.040x     1.000x…1.080x  within 5 %\n",
		// One baseline round was not counted: no allocation comparison.
		"hello.sh         allocs/req             50.5          -        -                 -  not measured\n",
		"verdict: REGRESSION in hello.sh req/s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("baselineTable lacks %q:\n%s", want, got)
		}
	}

	ms := time.Millisecond
	o := openCompared{
		Runs: []openResult{{P50: 2 * ms, P99: 10 * ms, Sent: 1000, GatewayCPUPerReq: 50 * time.Microsecond, Heap: heapCount{Mallocs: 80000, Served: 1000}},
			{P50: 2 * ms, P99: 12 * ms, Sent: 1000, GatewayCPUPerReq: 50 * time.Microsecond, Heap: heapCount{Mallocs: 80500, Served: 1000}}},
		Baseline: []openResult{{P50: 2 * ms, P99: 10 * ms, Sent: 1000, GatewayCPUPerReq: 50 * time.Microsecond, Heap: heapCount{Mallocs: 80000, Served: 1000}},
			{P50: 2 * ms, P99: 10 * ms, Sent: 1000, GatewayCPUPerReq: 50 * time.Microsecond, Heap: heapCount{Mallocs: 80000, Served: 1000}}},
	}
	got = baselineTable(cfg, "Pools", []baselineScenario{openScenario("php-fpm GET", o)})
	for _, want := range []string{
		"php-fpm GET      open p50 ms             2.0        2.0   1.000x     1.000x…1.000x  within 5 %\n",
		// p99 medians 11 vs 10 ms; the rounds 1.0x and 1.2x.
		"php-fpm GET      open p99 ms            11.0       10.0   1.100x     1.000x…1.200x  REGRESSION (noisy)\n",
		"php-fpm GET      open cpu µs/req        50.0       50.0   1.000x     1.000x…1.000x  within 5 %\n",
		"php-fpm GET      open allocs/req        80.2       80.0    +0.25       +0.00…+0.50  not higher\n",
		"verdict: REGRESSION in php-fpm GET open p99 ms\n",
		"noisy: the rounds of php-fpm GET open p99 ms disagree",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("baselineTable lacks %q:\n%s", want, got)
		}
	}
}
