package integration

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// echoSize is the body of the full-duplex benchmark, echoed back whole.
const echoSize = 1 << 20

// echoLua makes wrk POST echoSize bytes (16 × 65536).
const echoLua = `wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
`

// BenchmarkEndToEndDuplex measures full-duplex uploads: 1 MiB POSTs that
// the backend echoes while it reads them,
//
//	nginx → scgi_pass / fastcgi_pass (unix sockets) → junction → echo-stdin.sh (sh, exec cat)
//	nginx → scgi_pass / fastcgi_pass (unix sockets) → junction → HTTP instance echoing as it reads
//
// with junction's default response_buffering (auto: each response is held,
// 64 KiB in memory and the rest in a temporary file, until the body has
// been read). There is no reference row: nginx cannot carry these
// exchanges to such a backend itself (it stops sending the body once the
// response starts: proxy_pass to the same instance deadlocks), nor can
// fcgiwrap (it writes the whole body to the script before reading any
// output). The table reports the rate, both directions' throughput and
// junction's own CPU, and junction's peak memory after the run.
func BenchmarkEndToEndDuplex(b *testing.B) {
	cfg := benchSettings(b)
	d := cfg.Duration
	needBin(b, wrkBin, "wrk")
	needBin(b, nginxBin, "nginx-light")
	needJunction(b)

	s := newSite(b)
	dir := b.TempDir()
	app := startEchoInstance(b, filepath.Join(dir, "app.sock"))
	scgiSock, fcgiSock := filepath.Join(dir, "scgi.sock"), filepath.Join(dir, "fcgi.sock")
	j := startJunction(b, fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: scgi, address: "unix:%[1]s", backend: scripts}
  - {protocol: fastcgi, address: "unix:%[2]s", backend: scripts}
routes:
  - {prefix: /app/, backend: app}
backends:
  scripts: {type: cgi, allow_root: true, root: %[3]q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
  app: {type: http, instances: [%[4]q]}
`, scgiSock, fcgiSock, s.Root, app), "unix:"+scgiSock, "unix:"+fcgiSock)
	sHTTP, fHTTP := freeAddr(b), freeAddr(b)
	ngx := startNginx(b, fmt.Sprintf(`
    access_log off;
    server {
        listen %[1]s;
        client_max_body_size 2m;
        location / { include /etc/nginx/scgi_params; scgi_pass unix:%[2]s; }
    }
    server {
        listen %[3]s;
        client_max_body_size 2m;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:%[4]s; }
    }
`, sHTTP, scgiSock, fHTTP, fcgiSock))

	type path struct{ name, url string }
	var paths []path
	for _, front := range []struct{ name, addr string }{{"scgi", sHTTP}, {"fastcgi", fHTTP}} {
		paths = append(paths,
			path{front.name + " → CGI cat", "http://" + front.addr + "/cgi-bin/echo-stdin.sh"},
			path{front.name + " → http echo", "http://" + front.addr + "/app/echo"})
	}
	// Every path must echo correctly before it is timed.
	for _, p := range paths {
		checkEcho(b, p.url, echoSize)
	}
	script := writeFile(b, b.TempDir(), "echo.lua", echoLua)
	jpid, front := j.cmd.Process.Pid, ngx.cmd.Process.Pid
	loads := make([]wrkLoad, len(paths))
	for i, p := range paths {
		loads[i] = wrkLoad{Name: p.name, URL: p.url, Script: script, PGID: jpid, FrontPGID: front}
	}
	res := compareLoads(b, cfg, loads...)
	hwm, _, err := procMemKiB(jpid)
	if err != nil {
		b.Fatal(err)
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\nFull duplex: wrk -t2 -c%d, %v per path, 1 MiB POSTs echoed while read; nginx (unix sockets) → junction,\n"+
		"response_buffering auto (GOMAXPROCS %d, medians of %d interleaved runs)\n", wrkConns, d, runtime.GOMAXPROCS(0), cfg.Rounds)
	fmt.Fprintf(&t, "%-20s %9s %12s %9s %9s %9s\n", "case", "req/s", "MiB/s each", "avg", "p99", "cpu/req")
	us := 10 * time.Microsecond
	for i, p := range paths {
		m := res[i].Median
		fmt.Fprintf(&t, "%-20s %9.0f %12.1f %9v %9v %9s\n", p.name, m.RPS, m.RPS*echoSize/(1<<20),
			m.LatencyAvg.Round(us), m.LatencyP99.Round(us), cpuCell(m))
		name := strings.Join(strings.Fields(strings.ReplaceAll(p.name, "→", "to")), "-")
		b.ReportMetric(m.RPS, name+"-req/s")
		b.ReportMetric(float64(m.LatencyP99)/float64(time.Millisecond), name+"-p99-ms")
	}
	fmt.Fprintf(&t, "junction VmHWM after the run: %.1f MiB (each held response: 64 KiB in memory, the rest in a temporary file)\n",
		float64(hwm)/1024)
	t.WriteString("cpu/req: junction's own process group per request, the scripts' CPU excluded\n")
	b.ReportMetric(float64(hwm)/1024, "junction-VmHWM-MiB")
	appendBenchSummary(b, t.String())
}
