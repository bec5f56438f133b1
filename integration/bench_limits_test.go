package integration

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// limitsBenchLimits are the limits of the limited path: every one that a
// root-run benchmark can set (processes needs scripts running as another
// user).
const limitsBenchLimits = "{cpu: 10s, memory: 512MiB, open_files: 256, file_size: 10MiB, nice: 5}"

// BenchmarkEndToEndLimits measures what per-script limits cost: the same
// scripts through the same nginx scgi_pass and the same junction, once on
// a cgi backend without limits (started directly, the fast path) and once
// on one with limits (stopped after its exec while junction sets them),
// in interleaved rounds. Besides wrk's figures it reports the scripts' own
// CPU per request (what junction reaped), where the cost of the helper
// fallback (a Go runtime start in the script's process) would land.
func BenchmarkEndToEndLimits(b *testing.B) {
	cfg := benchSettings(b)
	needBin(b, wrkBin, "wrk")
	needBin(b, gccBin, "gcc")
	needBin(b, nginxBin, "nginx-light")
	needJunction(b)

	s := newSite(b)
	buildHelloC(b, s.Root)
	sock := b.TempDir()
	gs := startGateways(b, cfg, sock, func(listen string) string {
		return fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: scgi, address: %q}
routes:
  - {prefix: /cgi-bin/, backend: plain}
  - {prefix: /limited/, backend: limited}
backends:
  plain: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64}
  limited: {type: cgi, allow_root: true, root: %q, url_prefix: /limited/, timeout: 30s, max_concurrent: 64, limits: %s}
`, listen, s.Root, s.Root, limitsBenchLimits)
	})
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
	ngx := startNginx(b, "    access_log off;\n"+servers.String())
	front := ngx.cmd.Process.Pid

	type row struct {
		name                 string
		plain, limited       wrkResult
		plainCPU, limitedCPU time.Duration // the scripts' own, per request
	}
	var rows []row
	var vsBase []baselineScenario
	for _, sc := range []struct{ name, file string }{{"hello.sh", "hello.sh"}, {"static-C", "hello-c"}} {
		plainURL := func(i int) string { return "http://" + jHTTP[i] + "/cgi-bin/" + sc.file }
		limitedURL := func(i int) string { return "http://" + jHTTP[i] + "/limited/" + sc.file }
		for _, u := range []string{plainURL(0), limitedURL(0)} {
			if r := httpGet(b, u); r.Status != 200 || !strings.HasPrefix(r.Body, "Hello from") {
				b.Fatalf("GET %s = %d %q", u, r.Status, r.Body)
			}
		}
		res := compareLoads(b, cfg,
			gs.load(wrkLoad{Name: sc.name + " no limits", FrontPGID: front}, plainURL),
			gs.load(wrkLoad{Name: sc.name + " limits", FrontPGID: front}, limitedURL),
		)
		rw := row{name: sc.name, plain: res[0].Median, limited: res[1].Median}
		rw.plainCPU = limitsScriptCPU(b, plainURL(0), gs[0].PGID())
		rw.limitedCPU = limitsScriptCPU(b, limitedURL(0), gs[0].PGID())
		rows = append(rows, rw)
		b.ReportMetric(rw.plain.RPS, sc.name+"-nolimits-req/s")
		b.ReportMetric(rw.limited.RPS, sc.name+"-limits-req/s")
		b.ReportMetric(rw.limited.RPS/rw.plain.RPS, sc.name+"-limits/nolimits")
		if gs.hasBaseline() {
			for i, label := range []string{" no limits", " limits"} {
				vs := wrkScenario(sc.name+label, res[i])
				vs.report(b)
				vsBase = append(vsBase, vs)
			}
		}
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\nper-script limits %s: wrk -t2 -c%d, %v per path, nginx scgi_pass → junction on a unix socket (GOMAXPROCS %d, medians of %d interleaved runs)\n",
		limitsBenchLimits, wrkConns, cfg.Duration, runtime.GOMAXPROCS(0), cfg.Rounds)
	fmt.Fprintf(&t, "%-10s %11s %9s %9s %9s %11s %11s %9s %9s %9s %11s %9s\n",
		"script", "no limits/s", "avg", "p99", "cpu/req", "script cpu", "limits/s", "avg", "p99", "cpu/req", "script cpu", "limits/no")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-10s %11.0f %9v %9v %9v %11v %11.0f %9v %9v %9v %11v %8.2fx\n", r.name,
			r.plain.RPS, r.plain.LatencyAvg.Round(10*time.Microsecond), r.plain.LatencyP99.Round(10*time.Microsecond),
			r.plain.CPUPerReq.Round(time.Microsecond), r.plainCPU.Round(10*time.Microsecond),
			r.limited.RPS, r.limited.LatencyAvg.Round(10*time.Microsecond), r.limited.LatencyP99.Round(10*time.Microsecond),
			r.limited.CPUPerReq.Round(time.Microsecond), r.limitedCPU.Round(10*time.Microsecond),
			r.limited.RPS/r.plain.RPS)
	}
	t.WriteString("cpu/req: junction's own CPU per request (the limits' handshake runs there); script cpu: the scripts' CPU\n" +
		"per request (where the helper fallback's Go start would land), from 200 sequential requests on the same path\n")
	t.WriteString(baselineTable(cfg, "limits", vsBase))
	appendBenchSummary(b, t.String())
}

// limitsScriptCPU sends n sequential GETs to url and returns the CPU time
// per request of the scripts that junction (process group pgid) reaped
// meanwhile.
func limitsScriptCPU(b *testing.B, url string, pgid int) time.Duration {
	b.Helper()
	const n = 200
	_, kids0 := groupCPUs(pgid)
	for range n {
		if r := httpGet(b, url); r.Status != 200 {
			b.Fatalf("GET %s = %d", url, r.Status)
		}
	}
	_, kids1 := groupCPUs(pgid)
	return (kids1 - kids0) / n
}
