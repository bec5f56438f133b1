package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends/fastcgi/fpmtest"
)

// benchPostSize is the request body of the upload comparison.
const benchPostSize = 1 << 20

// postLua makes wrk POST benchPostSize bytes (16 × 65536).
const postLua = `wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
`

// startBenchFPM runs php-fpm with its own pool (pm static, children
// workers, opcache on, as a tuned deployment would have it) on a unix
// socket in dir and returns the socket path.
func startBenchFPM(b *testing.B, dir string, children int) string {
	b.Helper()
	needBin(b, phpFPMBin, "php8.2-fpm")
	pool := fpmtest.Pool{Dir: dir, Name: "bench", Children: children, Opcache: true, Extra: "listen.backlog = 511\n"}
	sock := pool.Socket()
	args, err := pool.Write()
	if err != nil {
		b.Fatal(err)
	}
	p := startCmd(b, "php-fpm", exec.Command(phpFPMBin, args...), 5*time.Second, false, pool.Log())
	ok := waitFor(10*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if !ok || p.Exited() {
		p.dump(b)
		b.Fatalf("php-fpm did not listen on %s", sock)
	}
	return sock
}

// procMemKiB returns VmHWM (peak resident set) and VmRSS of pid in KiB.
func procMemKiB(pid int) (hwm, rss int, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	if hwm == 0 || rss == 0 {
		return 0, 0, fmt.Errorf("memory of %d: no VmHWM/VmRSS in /proc status", pid)
	}
	return hwm, rss, nil
}

// BenchmarkEndToEndPools compares junction's pools with nginx talking to
// the same application instances itself:
//
//	GET          nginx proxy_pass (upstream of 2 app instances, keepalive 16)
//	             vs nginx scgi_pass → junction (type http, same 2 instances)
//	hello.php    nginx fastcgi_pass → php-fpm (pm static, 8 children, unix socket)
//	             vs nginx scgi_pass → junction (type fastcgi, keepalive 4,
//	             max_conns 4) → the same php-fpm
//	POST 1 MiB   the GET paths with a 1 MiB body per request
//
// and junction's peak resident memory over the whole run. Two reference
// paths are timed in the same interleaved rounds as the GET comparison, to
// show what an SCGI hop costs on this machine whoever serves it:
//
//	uwsgi-router nginx scgi_pass → uWSGI's C SCGI→HTTP router → instance a1
//	scgi-floor   nginx scgi_pass → protocols/scgi with a constant handler
//	             (floor_test.go), no backend hop at all
//
// wrk's closed loop runs every path at saturation, where p99 mostly
// follows the request rate (16 connections / req/s). The latency a hop
// adds is measured after it, open loop (openloop_test.go): GET and
// hello.php at a constant 40 % of junction's closed-loop rate for that
// case, junction and nginx interleaved, each request timed from its
// scheduled send. With a baseline binary, every junction path, closed and
// open loop, also runs on it, through a server of its own on the same
// nginx (bench_baseline_test.go).
func BenchmarkEndToEndPools(b *testing.B) {
	cfg := benchSettings(b)
	needBin(b, wrkBin, "wrk")
	needBin(b, nginxBin, "nginx-light")
	needBin(b, phpFPMBin, "php8.2-fpm")
	needBin(b, uwsgiBin, "uwsgi-core")
	needJunction(b)

	a1, _ := startAppInstance(b, "a1")
	a2, _ := startAppInstance(b, "a2")
	dir := openTempDir(b)
	phpRoot := filepath.Join(dir, "www")
	if err := os.MkdirAll(filepath.Join(phpRoot, "php"), 0o755); err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(phpRoot, "php"), "hello.php",
		"<?php header(\"Content-Type: text/plain\"); echo \"Hello from php\\n\";\n")
	// 8 workers: junction keeps 4 connections (FCGI_KEEP_CONN), each
	// holding a worker even while idle, so nginx's rounds find 4 free
	// workers, as many as junction's rounds use. A baseline junction
	// holds 4 more.
	children := 8
	if cfg.Baseline != "" {
		children += 4
	}
	sock := startBenchFPM(b, dir, children)

	// nginx reaches junction on a unix socket, as it reaches php-fpm:
	// the setup the README recommends on one host (a TCP connection per
	// SCGI request costs both sides more).
	gs := startGateways(b, cfg, dir, func(listen string) string {
		return fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: scgi, address: %q, backend: app}
routes:
  - {prefix: /php/, backend: php}
backends:
  app: {type: http, instances: [%q, %q], balance: round_robin}
  php: {type: fastcgi, instances: [%q], root: %q, keepalive: 4, max_conns: 4}
`, listen, a1, a2, "unix:"+sock, phpRoot)
	})

	// The references sit on unix sockets too. uWSGI: 8 processes, enough
	// to keep wrk's 16 connections busy while each waits for the app.
	// nginx's scgi_params send no PATH_INFO, so the route matches
	// REQUEST_URI; the notfound plugin supplies the request handler for
	// modifier 0 that the router runs in front of. The http action takes
	// one address, so every request goes to a1.
	uSock := filepath.Join(dir, "uwsgi.sock")
	u := startProcess(b, uwsgiBin, []string{
		"--plugin", "router_http,notfound", "--scgi-socket", uSock, "--chmod-socket=666",
		"--master", "--die-on-term", "--processes", "8",
		"--route-uri", ".* http:" + a1, "--disable-logging",
	})
	waitListening(b, u, 10*time.Second, "unix:"+uSock)
	fAddr := "unix:" + filepath.Join(dir, "floor.sock")
	floor := startFloor(b, "scgi", fAddr)

	direct, uHTTP, fHTTP := freeAddr(b), freeAddr(b), freeAddr(b)
	via := make([]string, len(gs))
	var servers strings.Builder
	for i, g := range gs {
		via[i] = freeAddr(b)
		fmt.Fprintf(&servers, `    server {
        listen %s;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass %s;
        }
    }
`, via[i], g.Listen)
	}
	// Bodies up to 2 MiB stay in nginx's memory on every path.
	startNginx(b, fmt.Sprintf(`
    access_log off;
    client_max_body_size 4m;
    client_body_buffer_size 2m;
    upstream apps {
        server %[2]s;
        server %[3]s;
        keepalive 16;
    }
    server {
        listen %[1]s;
        location / {
            proxy_pass http://apps;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /php/ {
            root %[4]q;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:%[5]s;
        }
    }
    server {
        listen %[6]s;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass unix:%[7]s;
        }
    }
    server {
        listen %[8]s;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass %[9]s;
        }
    }
%[10]s`, direct, a1, a2, phpRoot, sock, uHTTP, uSock, fHTTP, fAddr, servers.String()))

	// Every path answers correctly before it is timed.
	for _, addr := range append([]string{direct}, via...) {
		if r := httpGet(b, "http://"+addr+"/hello"); r.Status != 200 || (r.Body != "a1 /hello\n" && r.Body != "a2 /hello\n") {
			b.Fatalf("GET /hello via %s = %d %q", addr, r.Status, r.Body)
		}
		if r := httpGet(b, "http://"+addr+"/php/hello.php"); r.Status != 200 || r.Body != "Hello from php\n" {
			b.Fatalf("GET /php/hello.php via %s = %d %q", addr, r.Status, r.Body)
		}
		body := bytes.Repeat([]byte("0123456789abcdef"), benchPostSize/16)
		sum := sha256.Sum256(body)
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/upload", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		want := fmt.Sprintf(" %d %s\n", benchPostSize, hex.EncodeToString(sum[:]))
		if r := httpDo(b, req); r.Status != 200 || !strings.HasSuffix(r.Body, want) {
			b.Fatalf("POST 1 MiB via %s = %d %q, want …%q", addr, r.Status, r.Body, want)
		}
	}
	if r := httpGet(b, "http://"+uHTTP+"/hello"); r.Status != 200 || r.Body != "a1 /hello\n" {
		b.Fatalf("GET /hello via uWSGI's router = %d %q", r.Status, r.Body)
	}
	checkFloorAnswer(b, "http://"+fHTTP+"/hello")
	script := writeFile(b, b.TempDir(), "post.lua", postLua)
	viaURL := func(path string) func(int) string {
		return func(i int) string { return "http://" + via[i] + path }
	}

	get := compareLoads(b, cfg,
		gs.load(wrkLoad{Name: "pool GET junction"}, viaURL("/hello")),
		wrkLoad{Name: "pool GET proxy_pass", URL: "http://" + direct + "/hello"},
		wrkLoad{Name: "uWSGI router", URL: "http://" + uHTTP + "/hello", PGID: u.cmd.Process.Pid},
		wrkLoad{Name: "SCGI floor", URL: "http://" + fHTTP + "/hello", PGID: floor.cmd.Process.Pid},
	)
	php := compareLoads(b, cfg,
		gs.load(wrkLoad{Name: "php junction"}, viaURL("/php/hello.php")),
		wrkLoad{Name: "php fastcgi_pass", URL: "http://" + direct + "/php/hello.php"},
	)
	post := compareLoads(b, cfg,
		gs.load(wrkLoad{Name: "POST junction", Script: script}, viaURL("/upload")),
		wrkLoad{Name: "POST proxy_pass", URL: "http://" + direct + "/upload", Script: script},
	)
	// Open loop, at a rate every path sustains with room to spare.
	openGET := compareOpenLoops(b, openShare*get[0].Median.RPS, cfg.Rounds,
		gs.openPath("pool GET junction", viaURL("/hello")),
		openPath{Name: "pool GET proxy_pass", URL: "http://" + direct + "/hello"})
	openPHP := compareOpenLoops(b, openShare*php[0].Median.RPS, cfg.Rounds,
		gs.openPath("php junction", viaURL("/php/hello.php")),
		openPath{Name: "php fastcgi_pass", URL: "http://" + direct + "/php/hello.php"})
	hwm, rss, err := procMemKiB(gs[0].PGID())
	if err != nil {
		b.Fatal(err)
	}

	rows := []abRow{
		{Name: "http pool GET", J: get[0].Median, Ref: get[1].Median, Target: 0.6},
		{Name: "php-fpm GET", J: php[0].Median, Ref: php[1].Median, Target: 0.6},
		{Name: "POST 1MiB", J: post[0].Median, Ref: post[1].Median, Target: 0.7},
	}
	for _, r := range rows {
		r.report(b, "junction", "nginx")
	}
	// References: the left column is the reference path, not junction.
	refs := []abRow{
		{Name: "uwsgi-router", J: get[2].Median, Ref: get[1].Median},
		{Name: "scgi-floor", J: get[3].Median, Ref: get[1].Median},
	}
	for _, r := range refs {
		r.report(b, "ref", "nginx")
	}
	ofFloor := rows[0].J.RPS / refs[1].J.RPS
	b.ReportMetric(ofFloor, "pool-GET-junction/scgi-floor")
	mib := float64(benchPostSize) / (1 << 20)
	jMiBs, nMiBs := rows[2].J.RPS*mib, rows[2].Ref.RPS*mib
	b.ReportMetric(jMiBs, "POST-junction-MiB/s")
	b.ReportMetric(nMiBs, "POST-nginx-MiB/s")
	b.ReportMetric(float64(hwm)/1024, "junction-VmHWM-MiB")

	opens := []openRow{
		{Name: rows[0].Name, J: openGET[0].Median, Ref: openGET[1].Median},
		{Name: rows[1].Name, J: openPHP[0].Median, Ref: openPHP[1].Median},
	}
	for _, o := range opens {
		o.report(b)
	}

	var notes []string
	for _, r := range rows[:2] {
		delta := r.J.LatencyP99 - r.Ref.LatencyP99
		notes = append(notes, fmt.Sprintf("%s: p99 at saturation (closed loop, wrk -c%d) junction − nginx = %v (target ≤ +1ms: %s)",
			r.Name, wrkConns, delta.Round(10*time.Microsecond), p99Verdict(delta)))
	}
	for _, o := range opens {
		notes = append(notes, o.line())
	}
	notes = append(notes, fmt.Sprintf("  open loop: Go generator in the test process, keep-alive HTTP/1.1, ≤ %d in flight, latency from each request's scheduled send "+
		"(the generator's send lag is in it); junction and nginx interleaved, %d rounds of %v after a %v warm-up each, medians; "+
		"wrk's CPU per request in the closed loop, for scale: %v",
		openMaxInFlight, cfg.Rounds, openRound, openWarmup, get[0].Median.WrkCPUPerReq.Round(time.Microsecond)))
	memVerdict := "met"
	if hwm > 30<<10 {
		memVerdict = "MISSED"
	}
	notes = append(notes,
		fmt.Sprintf("POST 1MiB: junction %.1f MiB/s, nginx proxy_pass %.1f MiB/s (wrk -c%d, body in nginx memory on both)", jMiBs, nMiBs, wrkConns),
		fmt.Sprintf("junction memory after the run: VmHWM (peak) %.1f MiB, VmRSS %.1f MiB (target peak ≤ 30 MiB: %s)", float64(hwm)/1024, float64(rss)/1024, memVerdict),
		"nginx side: upstream keepalive 16 to the 2 app instances; fastcgi_pass and scgi_pass on unix sockets; cpu/req: junction only",
		fmt.Sprintf("php-fpm: %d workers; junction keeps 4 connections to it (keepalive 4, max_conns 4), nginx's fastcgi_pass opens one per request (its default)", children),
		"references, GET /hello timed in the same interleaved rounds as http pool GET; their rate is in the junction column, ratio = to nginx proxy_pass:",
		"  uwsgi-router: nginx scgi_pass (unix) → uWSGI 8 processes, router_http → a1 only (its http action takes one address); cpu/req: uWSGI's group",
		"  scgi-floor: nginx scgi_pass (unix) → protocols/scgi with a constant handler, no backend hop (GOMAXPROCS as junction); cpu/req: that process",
		fmt.Sprintf("  junction's pool GET is %.2fx of the floor; target %.2fx of proxy_pass would need %.0f req/s = %.2fx of the floor",
			ofFloor, rows[0].Target, rows[0].Target*rows[0].Ref.RPS, rows[0].Target*rows[0].Ref.RPS/refs[1].J.RPS))

	var vsBase []baselineScenario
	var baseNotes []string
	if gs.hasBaseline() {
		vsBase = []baselineScenario{
			wrkScenario(rows[0].Name, get[0]),
			wrkScenario(rows[1].Name, php[0]),
			wrkScenario(rows[2].Name, post[0]),
			openScenario(rows[0].Name, openGET[0]),
			openScenario(rows[1].Name, openPHP[0]),
		}
		for _, vs := range vsBase {
			vs.report(b)
		}
		bhwm, brss, err := procMemKiB(gs[1].PGID())
		if err != nil {
			b.Fatal(err)
		}
		baseNotes = append(baseNotes,
			fmt.Sprintf("open: at the junction's open-loop rate for the case (%.0f and %.0f req/s), both binaries; cpu and allocs per request sent",
				openGET[0].Median.Rate, openPHP[0].Median.Rate),
			fmt.Sprintf("memory after the run: VmHWM (peak) junction %.1f MiB, baseline %.1f MiB; VmRSS %.1f MiB, %.1f MiB",
				float64(hwm)/1024, float64(bhwm)/1024, float64(rss)/1024, float64(brss)/1024))
	}
	appendBenchSummary(b, abTable(
		fmt.Sprintf("Pools: closed loop at saturation, wrk -t2 -c%d, %v per path, nginx scgi_pass → junction pool vs nginx straight to the same instances", wrkConns, cfg.Duration),
		cfg.Rounds, "junction", "nginx", append(rows, refs...), notes...)+
		baselineTable(cfg, "Pools", vsBase, baseNotes...))
}

// openShare is the open-loop rate as a share of junction's closed-loop
// rate: far enough below saturation that neither path queues for long.
const openShare = 0.4

// openRow is one case's open-loop medians on junction's path (J) and
// nginx's (Ref), measured at the same rate.
type openRow struct {
	Name   string
	J, Ref openResult
}

// p99Verdict checks a p99 difference against the +1 ms target.
func p99Verdict(delta time.Duration) string {
	if delta > time.Millisecond {
		return "MISSED"
	}
	return "met"
}

// line is the row's summary line.
func (o openRow) line() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	delta := o.J.P99 - o.Ref.P99
	return fmt.Sprintf("open loop at %.0f req/s (%.0f %% of junction's closed-loop rate): %s p50/p99/p99.9 junction %s/%s/%s ms, nginx %s/%s/%s ms, "+
		"p99 difference %+.2f ms (target ≤ +1 ms: %s); generator send lag p99 %v/%v, CPU %v/%v per request",
		o.J.Rate, openShare*100, o.Name, ms(o.J.P50), ms(o.J.P99), ms(o.J.P999), ms(o.Ref.P50), ms(o.Ref.P99), ms(o.Ref.P999),
		float64(delta)/float64(time.Millisecond), p99Verdict(delta),
		o.J.SendLagP99.Round(time.Microsecond), o.Ref.SendLagP99.Round(time.Microsecond),
		o.J.CPUPerReq.Round(time.Microsecond), o.Ref.CPUPerReq.Round(time.Microsecond))
}

// report sends the row's figures to the benchmark framework, named like
// abRow's with "open" in them.
func (o openRow) report(b *testing.B) {
	b.Helper()
	name := strings.Join(strings.Fields(o.Name), "-") + "-open"
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(o.J.Rate, name+"-req/s")
	for _, side := range []struct {
		who string
		r   openResult
	}{{"junction", o.J}, {"nginx", o.Ref}} {
		b.ReportMetric(ms(side.r.P50), name+"-"+side.who+"-p50-ms")
		b.ReportMetric(ms(side.r.P99), name+"-"+side.who+"-p99-ms")
		b.ReportMetric(ms(side.r.P999), name+"-"+side.who+"-p99.9-ms")
	}
	b.ReportMetric(ms(o.J.P99-o.Ref.P99), name+"-p99-junction-nginx-ms")
}
