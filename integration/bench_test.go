package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The end-to-end benchmark compares, in one run and on the same scripts,
//
//	nginx → scgi_pass → junction        → hello.sh / static C hello
//	nginx → scgi_pass → uWSGI cgi plugin → hello.sh / static C hello
//
// under wrk, and the raw fork+exec rate of each script (the ceiling any CGI
// runner can reach on this machine). Run it with
//
//	JUNCTION_BENCH=1 go test ./integration -run '^$' -bench EndToEnd -benchtime=1x -v
//
// bench_fastcgi_test.go, bench_ajp_test.go and bench_pools_test.go add the
// FastCGI (vs fcgiwrap), AJP (vs mod_proxy_http) and pool (vs nginx
// proxy_pass / fastcgi_pass) comparisons. Every benchmark runs its paths
// in interleaved rounds and reads the same settings (benchSettings):
//
//   - JUNCTION_BENCH_DURATION (default 10s) is each path's total measured
//     time, split over the rounds;
//   - JUNCTION_BENCH_ROUNDS (default 3) is how many rounds; the figures
//     are their medians;
//   - JUNCTION_BENCH_BASELINE names another junction binary (an older
//     build) that serves every junction path as well, on the same config
//     and front server, in the same rounds, for before/after figures from
//     the same machine state (bench_baseline_test.go);
//   - JUNCTION_BENCH_SUMMARY names a file every benchmark appends its
//     table to (make bench prints it last).
const (
	wrkBin   = "/usr/bin/wrk"
	uwsgiBin = "/usr/bin/uwsgi"
	gccBin   = "/usr/bin/gcc"
)

// helloC is the static C CGI program: the cheapest possible script, so the
// runner's own overhead dominates.
const helloC = `#include <unistd.h>
int main(void) {
	static const char m[] = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello from C\n";
	return write(1, m, sizeof m - 1) == (long)(sizeof m - 1) ? 0 : 1;
}
`

// wrkResult is what one wrk run measured.
type wrkResult struct {
	RPS        float64
	LatencyAvg time.Duration
	LatencyP99 time.Duration
	Requests   int
	Errors     int // non-2xx/3xx responses plus socket errors
	// CPUPerReq is the gateway's own CPU time per request (see groupCPU).
	CPUPerReq time.Duration
	// FrontCPUPerReq is the front server's CPU time per request (nginx's
	// whole process group: master and workers).
	FrontCPUPerReq time.Duration
	// WrkCPUPerReq is wrk's own CPU time per request.
	WrkCPUPerReq time.Duration
	// Others is the share of the machine (all cores) that processes
	// outside the gateway's group and its scripts, nginx and wrk used
	// during the run; set when both groups are charged, and negative when
	// the gateway's scripts' CPU cannot be counted (groupIgnoresSIGCHLD).
	Others float64
	// Heap is what the gateway's metrics counted during the run: its Go
	// heap allocations and the requests it served (see countHeap).
	Heap heapCount
}

// allocsPerReq is the gateway's heap allocations per request, or -1 when
// they were not counted.
func (r wrkResult) allocsPerReq() float64 { return r.Heap.perRequest(r.Requests) }

var (
	wrkRPSRE    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatRE    = regexp.MustCompile(`(?m)^\s+Latency\s+([0-9.]+[a-z]+)`)
	wrkP99RE    = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+[a-z]+)`)
	wrkReqRE    = regexp.MustCompile(`(?m)^\s+([0-9]+) requests in`)
	wrkNon2xxRE = regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`)
	wrkSockRE   = regexp.MustCompile(`Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
)

// parseWrk reads wrk --latency output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPSRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	var err error
	if r.RPS, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, fmt.Errorf("wrk Requests/sec %q: %w", m[1], err)
	}
	if m := wrkLatRE.FindStringSubmatch(out); m != nil {
		r.LatencyAvg, _ = parseWrkDuration(m[1])
	}
	if m := wrkP99RE.FindStringSubmatch(out); m != nil {
		r.LatencyP99, _ = parseWrkDuration(m[1])
	}
	if m := wrkReqRE.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
	}
	if m := wrkNon2xxRE.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	if m := wrkSockRE.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.Errors += n
		}
	}
	return r, nil
}

// parseWrkDuration reads wrk's "1.23ms", "850.00us", "2.01s", "1.00m".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk duration %q: %w", s, err)
			}
			return time.Duration(math.Round(f * float64(u.unit))), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:1/cgi-bin/hello.sh
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.04ms    1.10ms  20.31ms   80.12%
    Req/Sec     1.60k   100.00     1.80k    70.00%
  Latency Distribution
     50%    4.90ms
     75%    5.50ms
     90%    6.20ms
     99%    9.80ms
  31880 requests in 10.00s, 4.56MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   3187.64
Transfer/sec:    466.94KB
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{RPS: 3187.64, LatencyAvg: 5040 * time.Microsecond, LatencyP99: 9800 * time.Microsecond, Requests: 31880, Errors: 7}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}
	if _, err := parseWrk("garbage"); err == nil {
		t.Error("parseWrk accepted output without Requests/sec")
	}
	for in, want := range map[string]time.Duration{"850.00us": 850 * time.Microsecond, "2.01s": 2010 * time.Millisecond, "1.00m": time.Minute} {
		if got, err := parseWrkDuration(in); err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
}

// groupCPU returns the CPU time (user+system) used so far by the live
// processes of process group pgid, excluding children they already reaped:
// the gateway's own cost, not the scripts'.
func groupCPU(pgid int) time.Duration {
	own, _ := groupCPUs(pgid)
	return own
}

// groupCPUs returns groupCPU(pgid) and the CPU time of the children the
// group's processes reaped (the scripts a gateway ran).
func groupCPUs(pgid int) (own, reaped time.Duration) {
	var ticks, cticks int64
	forGroup(pgid, func(_ string, f []string) bool {
		// f is the stat fields after "(comm)": state(3) ppid pgrp ...
		// utime(14) stime(15) cutime(16) cstime(17), from index 0.
		if len(f) < 15 {
			return true
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
		cu, _ := strconv.ParseInt(f[13], 10, 64)
		cs, _ := strconv.ParseInt(f[14], 10, 64)
		cticks += cu + cs
		return true
	})
	// USER_HZ is 100 on Linux for every architecture junction targets.
	return time.Duration(ticks) * 10 * time.Millisecond, time.Duration(cticks) * 10 * time.Millisecond
}

// forGroup calls fn with the pid and the /proc stat fields after "(comm)"
// of every live process in group pgid, until fn returns false.
func forGroup(pgid int, fn func(pid string, f []string) bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g != pgid {
			continue
		}
		if !fn(e.Name(), f) {
			return
		}
	}
}

// wrkConns is how many requests wrk keeps in flight; the fork+exec ceiling
// runs as many scripts at once.
const wrkConns = 16

// forkExecRate runs script as fast as workers goroutines can for d and
// returns executions per second, the ceiling of any fork-per-request CGI
// runner on this machine, with the loop's own CPU time per execution.
func forkExecRate(b *testing.B, script string, workers int, d time.Duration) spawnCeiling {
	b.Helper()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	cpu0, err := selfCPU()
	if err != nil {
		b.Fatal(err)
	}
	kids0, err := childrenCPU()
	if err != nil {
		b.Fatal(err)
	}
	busy0, err := machineCPU()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cmd := exec.Command(script)
				cmd.Stdout = devnull
				cmd.Env = []string{"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "PATH=/usr/bin:/bin"}
				if err := cmd.Run(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := selfCPU()
	if err != nil {
		b.Fatal(err)
	}
	kids1, err := childrenCPU()
	if err != nil {
		b.Fatal(err)
	}
	busy1, err := machineCPU()
	if err != nil {
		b.Fatal(err)
	}
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("fork+exec %s: %v", script, err)
	}
	c := spawnCeiling{
		Rate:   float64(n.Load()) / elapsed.Seconds(),
		Others: othersShare(busy1-busy0, cpu1-cpu0+kids1-kids0, elapsed, runtime.NumCPU()),
	}
	if n.Load() > 0 {
		c.LoopCPU = (cpu1 - cpu0) / time.Duration(n.Load())
	}
	return c
}

// BenchmarkEndToEnd compares junction with uWSGI's CGI plugin behind nginx
// and with the fork+exec ceiling. It measures once whatever b.N is: the
// figures come from wrk, not from the benchmark loop.
func BenchmarkEndToEnd(b *testing.B) {
	cfg := benchSettings(b)
	needBin(b, wrkBin, "wrk")
	needBin(b, uwsgiBin, "uwsgi-core")
	needBin(b, gccBin, "gcc")
	needBin(b, nginxBin, "nginx-light")
	needJunction(b)

	s := newSite(b)
	buildHelloC(b, s.Root)

	// nginx reaches every gateway on a unix socket, as Debian's
	// fcgiwrap.socket and the README's recommended one-host setup do.
	sock := b.TempDir()
	uSock := filepath.Join(sock, "uwsgi.sock")
	gs := startGateways(b, cfg, sock, func(listen string) string {
		return fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
`, listen, s.Root)
	})

	// uWSGI: 4 processes × 4 threads = the 16 connections wrk keeps busy.
	// modifier1 9 selects the CGI plugin for requests on the SCGI socket.
	// The socket is made 0666 for an nginx whose workers run as another
	// user.
	u := startProcess(b, uwsgiBin, []string{
		"--plugin", "cgi", "--scgi-socket", uSock, "--chmod-socket=666", "--scgi-modifier1", "9",
		"--cgi", "/cgi-bin=" + s.Root,
		"--master", "--processes", "4", "--threads", "4",
		"--die-on-term", "--disable-logging", "--listen", "128",
	})
	waitListening(b, u, 10*time.Second, "unix:"+uSock)

	uHTTP := freeAddr(b)
	jHTTP := make([]string, len(gs))
	var servers strings.Builder
	for i, g := range gs {
		jHTTP[i] = freeAddr(b)
		fmt.Fprintf(&servers, `    server {
        listen %s;
        location / { include /etc/nginx/scgi_params; scgi_pass %s; }
    }
`, jHTTP[i], g.Listen)
	}
	ngx := startNginx(b, fmt.Sprintf(`
    access_log off;
    server {
        listen %s;
        location / {
            include /etc/nginx/scgi_params;
            # uWSGI's CGI plugin maps SCRIPT_NAME/PATH_INFO to the script.
            scgi_param PATH_INFO $uri;
            scgi_pass %s;
        }
    }
%s`, uHTTP, "unix:"+uSock, servers.String()))

	scripts := []struct{ name, file string }{
		{"hello.sh", "hello.sh"},
		{"static-C", "hello-c"},
	}
	type row struct {
		name               string
		junction, uwsgi    wrkResult
		ceiling            spawnCeiling
		vsUWSGI, vsCeiling float64
	}
	var rows []row
	var vsBase []baselineScenario
	front := ngx.cmd.Process.Pid
	for _, sc := range scripts {
		path := "/cgi-bin/" + sc.file
		// Every path must answer correctly before it is timed.
		for _, addr := range append([]string{uHTTP}, jHTTP...) {
			if r := httpGet(b, "http://"+addr+path); r.Status != 200 || !strings.HasPrefix(r.Body, "Hello from") {
				b.Fatalf("GET %s via %s = %d %q", path, addr, r.Status, r.Body)
			}
		}
		res := compareLoads(b, cfg,
			gs.load(wrkLoad{Name: sc.name + " junction", FrontPGID: front}, func(i int) string { return "http://" + jHTTP[i] + path }),
			wrkLoad{Name: sc.name + " uWSGI", URL: "http://" + uHTTP + path, PGID: u.cmd.Process.Pid, FrontPGID: front},
		)
		rw := row{name: sc.name, junction: res[0].Median, uwsgi: res[1].Median}
		// As many at once as wrk keeps requests in flight.
		rw.ceiling = forkExecRate(b, filepath.Join(s.Root, sc.file), wrkConns, cfg.Duration/2)
		rw.vsUWSGI = rw.junction.RPS / rw.uwsgi.RPS
		rw.vsCeiling = rw.junction.RPS / rw.ceiling.Rate
		rows = append(rows, rw)
		b.ReportMetric(rw.junction.RPS, sc.name+"-junction-req/s")
		b.ReportMetric(rw.uwsgi.RPS, sc.name+"-uwsgi-req/s")
		b.ReportMetric(rw.ceiling.Rate, sc.name+"-forkexec/s")
		b.ReportMetric(rw.vsUWSGI, sc.name+"-junction/uwsgi")
		b.ReportMetric(rw.vsCeiling, sc.name+"-junction/ceiling")
		if gs.hasBaseline() {
			vs := wrkScenario(sc.name, res[0])
			vs.report(b)
			vsBase = append(vsBase, vs)
		}
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\nwrk -t2 -c%d, %v per path, through nginx scgi_pass on unix sockets (GOMAXPROCS %d, medians of %d interleaved runs)\n",
		wrkConns, cfg.Duration, runtime.GOMAXPROCS(0), cfg.Rounds)
	fmt.Fprintf(&t, "%-10s %11s %9s %9s %9s %7s %11s %9s %9s %9s %11s %8s %9s\n",
		"script", "junction/s", "avg", "p99", "cpu/req", "allocs", "uwsgi/s", "avg", "p99", "cpu/req", "forkexec/s", "j/uwsgi", "j/ceiling")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-10s %11.0f %9v %9v %9v %7s %11.0f %9v %9v %9v %11.0f %7.2fx %8.0f%%\n",
			r.name, r.junction.RPS, r.junction.LatencyAvg.Round(10*time.Microsecond), r.junction.LatencyP99.Round(10*time.Microsecond),
			r.junction.CPUPerReq.Round(time.Microsecond), allocsCell(r.junction),
			r.uwsgi.RPS, r.uwsgi.LatencyAvg.Round(10*time.Microsecond), r.uwsgi.LatencyP99.Round(10*time.Microsecond), r.uwsgi.CPUPerReq.Round(time.Microsecond),
			r.ceiling.Rate, r.vsUWSGI, 100*r.vsCeiling)
	}
	for _, r := range rows {
		t.WriteString(boundLine(r.name, runtime.NumCPU(), r.ceiling, r.junction, "uWSGI", r.uwsgi))
	}
	t.WriteString("cpu/req: the gateway process group's own CPU per request (scripts excluded); allocs: junction's Go heap allocations\n" +
		"per request; forkexec/s runs without nginx and wrk sharing the cores, so j/ceiling also carries their cost\n")
	t.WriteString("targets: junction ≥ 1.5× uWSGI on hello.sh, ≥ 1.8× on static C, ≥ 75% of the fork+exec ceiling\n")
	t.WriteString(baselineTable(cfg, "SCGI → CGI", vsBase))
	appendBenchSummary(b, t.String())
}

// appendBenchSummary logs one benchmark's table, prints it, and appends it
// to the JUNCTION_BENCH_SUMMARY file when set. Every end-to-end benchmark
// appends, so the file holds the whole run's tables in the order they ran
// (make bench removes it first).
func appendBenchSummary(b *testing.B, table string) {
	b.Helper()
	b.Log(table)
	fmt.Print(table)
	f := os.Getenv("JUNCTION_BENCH_SUMMARY")
	if f == "" {
		return
	}
	fd, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		b.Errorf("JUNCTION_BENCH_SUMMARY: %v", err)
		return
	}
	if _, err := fd.WriteString(table); err != nil {
		b.Errorf("JUNCTION_BENCH_SUMMARY: %v", err)
	}
	if err := fd.Close(); err != nil {
		b.Errorf("JUNCTION_BENCH_SUMMARY: %v", err)
	}
}
