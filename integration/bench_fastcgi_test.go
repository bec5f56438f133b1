package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file holds the FastCGI comparison and the A/B machinery that every
// end-to-end benchmark shares (bench_test.go, bench_ajp_test.go,
// bench_pools_test.go):
//
//   - benchSettings (bench_baseline_test.go) skips unless JUNCTION_BENCH=1
//     and reads JUNCTION_BENCH_DURATION, the measured time of each path,
//     JUNCTION_BENCH_ROUNDS and JUNCTION_BENCH_BASELINE;
//   - compareLoads warms every path up, then runs the rounds interleaved
//     (A B C, B C A, C A B), a path's baseline run right after its junction
//     run, and returns per-path medians, so a burst of load from someone
//     else on the machine lands on every path alike;
//   - abTable formats rows of "junction path vs reference path" with the
//     ratio and the target, for appendBenchSummary; baselineTable
//     (bench_baseline_test.go) the junction vs baseline figures.

const (
	fcgiwrapBin  = "/usr/sbin/fcgiwrap"
	spawnFCGIBin = "/usr/bin/spawn-fcgi"
)

// wrkLoad is one path under test.
type wrkLoad struct {
	Name string
	URL  string
	// Conns is how many connections wrk keeps busy; 0 means wrkConns.
	Conns int
	// Script is a wrk Lua script (e.g. setting a POST body); "" for GETs.
	Script string
	// PGID is the process group whose CPU time is charged per request
	// (the gateway under test); 0 charges nobody.
	PGID int
	// FrontPGID is the front server's process group (nginx: master and
	// workers), charged per request as FrontCPUPerReq; 0 for none.
	FrontPGID int
	// Metrics is the gateway's operations listener (host:port), read
	// before and after the run for its heap allocations; "" for none.
	Metrics string
	// Baseline, when set, is the same path on the baseline binary,
	// measured by compareLoads right after this one in every round.
	Baseline *wrkLoad
}

// runWrkLoad runs wrk once on l for secs seconds.
func runWrkLoad(b *testing.B, l wrkLoad, secs int) wrkResult {
	b.Helper()
	conns := l.Conns
	if conns == 0 {
		conns = wrkConns
	}
	args := []string{"-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), "--latency", "--timeout", "10s"}
	if l.Script != "" {
		args = append(args, "-s", l.Script)
	}
	args = append(args, l.URL)
	var cpu0, kids0, front0 time.Duration
	if l.PGID != 0 {
		cpu0, kids0 = groupCPUs(l.PGID)
	}
	if l.FrontPGID != 0 {
		front0 = groupCPU(l.FrontPGID)
	}
	heap := countHeap(b, l.Metrics)
	busy0, busyErr := machineCPU()
	start := time.Now()
	cmd := exec.Command(wrkBin, args...)
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	busy1, busyErr1 := machineCPU()
	if err != nil {
		b.Fatalf("wrk %s (%s): %v\n%s", l.URL, l.Name, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		b.Fatalf("%s: %v", l.Name, err)
	}
	r.Heap = heap.since(b)
	if r.Requests == 0 {
		return r
	}
	n := time.Duration(r.Requests)
	var gw, kids, front time.Duration
	if l.PGID != 0 {
		cpu1, kids1 := groupCPUs(l.PGID)
		gw, kids = cpu1-cpu0, kids1-kids0
		r.CPUPerReq = gw / n
	}
	if l.FrontPGID != 0 {
		front = groupCPU(l.FrontPGID) - front0
		r.FrontCPUPerReq = front / n
	}
	// wrk's rusage: every thread of it, from exec to exit.
	wrkCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r.WrkCPUPerReq = wrkCPU / n
	switch {
	case l.PGID == 0 || l.FrontPGID == 0 || busyErr != nil || busyErr1 != nil:
	case groupIgnoresSIGCHLD(l.PGID):
		r.Others = -1
	default:
		r.Others = othersShare(busy1-busy0, gw+kids+front+wrkCPU, wall, runtime.NumCPU())
	}
	return r
}

// loadResult is what compareLoads measured on one path.
type loadResult struct {
	// Median holds the medians of the rounds' rates, latencies and CPU;
	// its Requests, Errors and Heap are the rounds' sums.
	Median wrkResult
	// AllRequests counts every request sent, warm-up included.
	AllRequests int
	// Runs are the rounds, in order; Baseline the baseline's, one per
	// round, when the load had one (nil otherwise).
	Runs, Baseline []wrkResult
}

// compareLoads warms each load up for a short run, then measures each for
// cfg.Duration in total, in cfg.Rounds interleaved runs whose starting
// path rotates; a load and its Baseline run back to back in each round
// (pairOrder). Every run is checked for errors.
func compareLoads(b *testing.B, cfg benchConfig, loads ...wrkLoad) []loadResult {
	b.Helper()
	warm := 1
	if cfg.Duration >= 10*time.Second {
		warm = 2
	}
	secs := cfg.roundSecs()
	res := make([]loadResult, len(loads))
	for i, l := range loads {
		for k, side := range l.sides() {
			w := runWrkLoad(b, side, warm)
			if k == 0 {
				res[i].AllRequests += w.Requests
			}
			if w.Errors > 0 {
				b.Errorf("%s warm-up: %d errors of %d requests", side.Name, w.Errors, w.Requests)
			}
		}
	}
	for round := range cfg.Rounds {
		for k := range loads {
			i := (round + k) % len(loads)
			for _, side := range pairOrder(round) {
				l := loads[i]
				if side == 1 {
					if l.Baseline == nil {
						continue
					}
					l = *l.Baseline
				}
				r := runWrkLoad(b, l, secs)
				logRound(b, round, l, r)
				if side == 0 {
					res[i].Runs = append(res[i].Runs, r)
					res[i].AllRequests += r.Requests
				} else {
					res[i].Baseline = append(res[i].Baseline, r)
				}
			}
		}
	}
	for i, l := range loads {
		res[i].Median = medianWrk(res[i].Runs)
		if m := res[i].Median; m.Errors > 0 {
			b.Errorf("%s: %d errors of %d requests", l.Name, m.Errors, m.Requests)
		}
		if m := medianWrk(res[i].Baseline); m.Errors > 0 {
			b.Errorf("%s: %d errors of %d requests", l.Baseline.Name, m.Errors, m.Requests)
		}
	}
	return res
}

// logRound logs one run of l (go test -v shows it), for telling a noisy
// round from a real difference.
func logRound(b *testing.B, round int, l wrkLoad, r wrkResult) {
	b.Helper()
	others := "-"
	if l.PGID != 0 && l.FrontPGID != 0 {
		others = othersCell(r.Others)
	}
	b.Logf("round %d %-40s %7.0f req/s  p99 %8v  cpu/req %6v  allocs/req %6s  others %s",
		round+1, l.Name, r.RPS, r.LatencyP99.Round(10*time.Microsecond), r.CPUPerReq.Round(time.Microsecond), allocsCell(r), others)
}

// pairOrder is the order in which a path runs on junction (0) and on the
// baseline (1) in a round (counted from 0): junction first in even
// rounds, the baseline in odd ones, so that whatever the previous run leaves behind (its scripts
// still exiting, a cold cache) does not always fall on the same binary.
func pairOrder(round int) [2]int {
	if round%2 == 1 {
		return [2]int{1, 0}
	}
	return [2]int{0, 1}
}

// sides is the load itself and, if it has one, its baseline twin.
func (l wrkLoad) sides() []wrkLoad {
	if l.Baseline == nil {
		return []wrkLoad{l}
	}
	return []wrkLoad{l, *l.Baseline}
}

// medianWrk combines runs: the median of each rate, latency and CPU
// figure on its own, and the sums of requests, errors and the gateway's
// counts (sumHeap).
func medianWrk(runs []wrkResult) wrkResult {
	var out wrkResult
	if len(runs) == 0 {
		return out
	}
	rps := make([]float64, len(runs))
	others := make([]float64, len(runs))
	var avg, p99, cpu, front, wrk []time.Duration
	heap := make([]heapCount, len(runs))
	for i, r := range runs {
		heap[i] = r.Heap
		rps[i] = r.RPS
		others[i] = r.Others
		avg = append(avg, r.LatencyAvg)
		p99 = append(p99, r.LatencyP99)
		cpu = append(cpu, r.CPUPerReq)
		front = append(front, r.FrontCPUPerReq)
		wrk = append(wrk, r.WrkCPUPerReq)
		out.Requests += r.Requests
		out.Errors += r.Errors
	}
	out.RPS = medianFloat(rps)
	out.Others = medianFloat(others)
	out.LatencyAvg = medianDuration(avg)
	out.LatencyP99 = medianDuration(p99)
	out.CPUPerReq = medianDuration(cpu)
	out.FrontCPUPerReq = medianDuration(front)
	out.WrkCPUPerReq = medianDuration(wrk)
	out.Heap = sumHeap(heap...)
	return out
}

func medianFloat(fs []float64) float64 {
	slices.Sort(fs)
	n := len(fs)
	if n%2 == 1 {
		return fs[n/2]
	}
	return (fs[n/2-1] + fs[n/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

func TestMedianWrk(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		runs []wrkResult
		want wrkResult
	}{
		{"none", nil, wrkResult{}},
		{"odd", []wrkResult{
			{RPS: 300, LatencyAvg: 3 * ms, LatencyP99: 9 * ms, Requests: 10, Errors: 1, CPUPerReq: 30, FrontCPUPerReq: 7, WrkCPUPerReq: 1, Others: 0.5, Heap: heapCount{Mallocs: 1000, Served: 11}},
			{RPS: 100, LatencyAvg: 1 * ms, LatencyP99: 7 * ms, Requests: 20, CPUPerReq: 10, FrontCPUPerReq: 9, WrkCPUPerReq: 3, Others: 0, Heap: heapCount{Mallocs: 2000, Served: 21}},
			{RPS: 200, LatencyAvg: 2 * ms, LatencyP99: 8 * ms, Requests: 30, Errors: 2, CPUPerReq: 20, FrontCPUPerReq: 8, WrkCPUPerReq: 2, Others: 0.25, Heap: heapCount{Mallocs: 3000, Served: 31}},
		}, wrkResult{RPS: 200, LatencyAvg: 2 * ms, LatencyP99: 8 * ms, Requests: 60, Errors: 3, CPUPerReq: 20, FrontCPUPerReq: 8, WrkCPUPerReq: 2, Others: 0.25, Heap: heapCount{Mallocs: 6000, Served: 63}}},
		{"uncounted allocations", []wrkResult{
			{RPS: 100, Requests: 10, Heap: heapCount{Mallocs: 1000, Served: 10}},
			{RPS: 100, Requests: 10, Heap: heapCount{Mallocs: -1, Served: 10}},
		}, wrkResult{RPS: 100, Requests: 20, Heap: heapCount{Mallocs: -1, Served: 20}}},
		{"even", []wrkResult{
			{RPS: 100, LatencyAvg: 4 * ms, LatencyP99: 10 * ms, Requests: 1},
			{RPS: 200, LatencyAvg: 2 * ms, LatencyP99: 20 * ms, Requests: 1},
		}, wrkResult{RPS: 150, LatencyAvg: 3 * ms, LatencyP99: 15 * ms, Requests: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := medianWrk(tt.runs); got != tt.want {
				t.Errorf("medianWrk = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// abRow compares a path through junction (J) with a reference path (Ref)
// serving the same thing.
type abRow struct {
	Name   string
	J, Ref wrkResult
	// Target is the wanted J/Ref request-rate ratio; 0 for none.
	Target float64
}

// Ratio is J's request rate over Ref's.
func (r abRow) Ratio() float64 {
	if r.Ref.RPS == 0 {
		return 0
	}
	return r.J.RPS / r.Ref.RPS
}

// verdict says whether the row met its target ("-" without one).
func (r abRow) verdict() string {
	switch {
	case r.Target == 0:
		return "-"
	case r.Ratio() >= r.Target:
		return "met"
	default:
		return "MISSED"
	}
}

// report sends the row's figures to the benchmark framework; metric names
// carry the row name and jName/refName ("fastcgi", "fcgiwrap").
func (r abRow) report(b *testing.B, jName, refName string) {
	b.Helper()
	// Metric units must not contain white space.
	name := strings.Join(strings.Fields(r.Name), "-")
	b.ReportMetric(r.J.RPS, name+"-"+jName+"-req/s")
	b.ReportMetric(r.Ref.RPS, name+"-"+refName+"-req/s")
	b.ReportMetric(float64(r.J.LatencyP99)/float64(time.Millisecond), name+"-"+jName+"-p99-ms")
	b.ReportMetric(float64(r.Ref.LatencyP99)/float64(time.Millisecond), name+"-"+refName+"-p99-ms")
	b.ReportMetric(r.Ratio(), name+"-"+jName+"/"+refName)
}

// abTable formats rows under title, measured in rounds interleaved runs;
// jName and refName head the two sides.
func abTable(title string, rounds int, jName, refName string, rows []abRow, notes ...string) string {
	var t strings.Builder
	fmt.Fprintf(&t, "\n%s (GOMAXPROCS %d, medians of %d interleaved runs)\n", title, runtime.GOMAXPROCS(0), rounds)
	fmt.Fprintf(&t, "%-14s %11s %9s %9s %7s %11s %9s %9s %8s %7s %7s\n",
		"case", jName+"/s", "p99", "cpu/req", "allocs", refName+"/s", "p99", "cpu/req", "ratio", "target", "")
	us := 10 * time.Microsecond
	for _, r := range rows {
		target := "-"
		if r.Target > 0 {
			target = fmt.Sprintf("≥%.2fx", r.Target)
		}
		fmt.Fprintf(&t, "%-14s %11.0f %9v %9s %7s %11.0f %9v %9s %7.2fx %7s %7s\n", r.Name,
			r.J.RPS, r.J.LatencyP99.Round(us), cpuCell(r.J), allocsCell(r.J), r.Ref.RPS, r.Ref.LatencyP99.Round(us), cpuCell(r.Ref),
			r.Ratio(), target, r.verdict())
	}
	t.WriteString("allocs: the junction side's Go heap allocations per request (all rounds pooled)\n")
	for _, n := range notes {
		t.WriteString(n)
		t.WriteByte('\n')
	}
	return t.String()
}

// cpuCell is r's CPU per request, or "-" when nobody was charged.
func cpuCell(r wrkResult) string {
	if r.CPUPerReq == 0 {
		return "-"
	}
	return r.CPUPerReq.Round(time.Microsecond).String()
}

// allocsCell is r's heap allocations per request, or "-" when they were
// not counted.
func allocsCell(r wrkResult) string {
	if a := r.allocsPerReq(); a >= 0 {
		return fmt.Sprintf("%.1f", a)
	}
	return "-"
}

// buildHelloC compiles the static C hello (helloC) into dir/hello-c.
func buildHelloC(b *testing.B, dir string) {
	b.Helper()
	src := writeFile(b, b.TempDir(), "hello.c", helloC)
	if out, err := exec.Command(gccBin, "-static", "-O2", "-o", filepath.Join(dir, "hello-c"), src).CombinedOutput(); err != nil {
		b.Fatalf("gcc -static: %v\n%s", err, out)
	}
}

// BenchmarkEndToEndFastCGI compares, on the same nginx config and scripts,
//
//	nginx → fastcgi_pass → junction (fastcgi listener, cgi backend) → script
//	nginx → fastcgi_pass → fcgiwrap                                 → script
//
// plus junction with nginx's FastCGI keep-alive (fastcgi_keep_conn), which
// fcgiwrap does not support, as an extra row. With a baseline binary, both
// junction paths also run on it (bench_baseline_test.go).
func BenchmarkEndToEndFastCGI(b *testing.B) {
	cfg := benchSettings(b)
	needBin(b, wrkBin, "wrk")
	needBin(b, gccBin, "gcc")
	needBin(b, nginxBin, "nginx-light")
	needBin(b, fcgiwrapBin, "fcgiwrap")
	needBin(b, spawnFCGIBin, "spawn-fcgi")
	needJunction(b)

	s := newSite(b)
	buildHelloC(b, s.Root)

	// nginx reaches both runners on unix sockets, as Debian's
	// fcgiwrap.socket and the README's recommended one-host setup do.
	sock := b.TempDir()
	fSock := filepath.Join(sock, "fcgiwrap.sock")
	gs := startGateways(b, cfg, sock, func(listen string) string {
		return fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: fastcgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
`, listen, s.Root)
	})
	// Each fcgiwrap process serves one request at a time (it waits for
	// its script), so it gets as many processes as wrk keeps requests in
	// flight: fewer would queue requests in the listen backlog.
	// spawn-fcgi -n binds the socket (0666, for an nginx whose workers run
	// as another user) and execs fcgiwrap on it, so fcgiwrap and its
	// preforked children stay in the process group started here.
	fw := startProcess(b, spawnFCGIBin, []string{"-n", "-s", fSock, "-M", "0666", "--",
		fcgiwrapBin, "-c", fmt.Sprint(wrkConns)})
	waitListening(b, fw, 10*time.Second, "unix:"+fSock)

	// One location shape for every runner: the Debian fastcgi_params plus
	// SCRIPT_FILENAME, which fcgiwrap needs and junction checks against its
	// root.
	loc := func(pass string) string {
		return fmt.Sprintf(`root %q;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            %s
        }`, s.Dir, pass)
	}
	fHTTP := freeAddr(b)
	servers := fmt.Sprintf("    server { listen %s; %s }\n", fHTTP, loc("fastcgi_pass unix:"+fSock+";"))
	// Each gateway gets a server per connection style: jHTTP a connection
	// per request, kHTTP kept connections.
	jHTTP, kHTTP := make([]string, len(gs)), make([]string, len(gs))
	for i, g := range gs {
		jHTTP[i], kHTTP[i] = freeAddr(b), freeAddr(b)
		servers += fmt.Sprintf(`    upstream keep_%[1]s { server %[2]s; keepalive %[3]d; }
    server { listen %[4]s; %[5]s }
    server { listen %[6]s; %[7]s }
`, g.Label, g.Listen, wrkConns, jHTTP[i], loc("fastcgi_pass "+g.Listen+";"),
			kHTTP[i], loc("fastcgi_pass keep_"+g.Label+";\n            fastcgi_keep_conn on;"))
	}
	ngx := startNginx(b, "\n    access_log off;\n"+servers)

	scripts := []struct {
		name, file string
		target     float64
	}{
		{"hello.sh", "hello.sh", 1.2},
		{"static-C", "hello-c", 1.5},
	}
	var rows []abRow
	var bounds []string
	var vsBase []baselineScenario
	front := ngx.cmd.Process.Pid
	for _, sc := range scripts {
		path := "/cgi-bin/" + sc.file
		for _, addr := range slices.Concat([]string{fHTTP}, jHTTP, kHTTP) {
			if r := httpGet(b, "http://"+addr+path); r.Status != 200 || !strings.HasPrefix(r.Body, "Hello from") {
				b.Fatalf("GET %s via %s = %d %q", path, addr, r.Status, r.Body)
			}
		}
		res := compareLoads(b, cfg,
			gs.load(wrkLoad{Name: sc.name + " junction", FrontPGID: front}, func(i int) string { return "http://" + jHTTP[i] + path }),
			wrkLoad{Name: sc.name + " fcgiwrap", URL: "http://" + fHTTP + path, PGID: fw.cmd.Process.Pid, FrontPGID: front},
			gs.load(wrkLoad{Name: sc.name + " junction keepalive", FrontPGID: front}, func(i int) string { return "http://" + kHTTP[i] + path }),
		)
		// The fork+exec ceiling, as BenchmarkEndToEnd measures it.
		ceiling := forkExecRate(b, filepath.Join(s.Root, sc.file), wrkConns, cfg.Duration/2)
		b.ReportMetric(ceiling.Rate, sc.name+"-forkexec/s")
		row := abRow{Name: sc.name, J: res[0].Median, Ref: res[1].Median, Target: sc.target}
		keep := abRow{Name: sc.name + "+keep", J: res[2].Median, Ref: res[1].Median}
		row.report(b, "junction", "fcgiwrap")
		keep.report(b, "junction", "fcgiwrap")
		rows = append(rows, row, keep)
		bounds = append(bounds,
			fmt.Sprintf("%s fork+exec ceiling %.0f/s: junction %.0f%% of it, junction+keep %.0f%%",
				sc.name, ceiling.Rate, 100*row.J.RPS/ceiling.Rate, 100*keep.J.RPS/ceiling.Rate),
			strings.TrimSuffix(boundLine(sc.name, runtime.NumCPU(), ceiling, row.J, "fcgiwrap", row.Ref), "\n"),
			strings.TrimSuffix(boundLine(sc.name+"+keep", runtime.NumCPU(), ceiling, keep.J, "fcgiwrap", keep.Ref), "\n"))
		if gs.hasBaseline() {
			vsBase = append(vsBase, wrkScenario(row.Name, res[0]), wrkScenario(keep.Name, res[2]))
		}
	}
	for _, sc := range vsBase {
		sc.report(b)
	}
	appendBenchSummary(b, abTable(
		fmt.Sprintf("FastCGI: wrk -t2 -c%d, %v per path, nginx fastcgi_pass (unix sockets) → junction vs → fcgiwrap -c %d", wrkConns, cfg.Duration, wrkConns),
		cfg.Rounds, "junction", "fcgiwrap", rows,
		append([]string{
			"+keep: junction behind an upstream with keepalive and fastcgi_keep_conn on (fcgiwrap cannot keep connections);",
			"cpu/req: the runner's own process group per request, the scripts' CPU excluded on both sides",
		}, bounds...)...,
	)+baselineTable(cfg, "FastCGI", vsBase))
}
