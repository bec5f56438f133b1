package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// connTracker samples /proc/net/tcp (or /proc/net/unix) and records every
// established connection accepted on one local port (or unix socket path),
// by the peer's port (or the socket's inode): how many connections a
// front server opened to junction. Sampling misses a connection that opens
// and closes between two looks, so with reuse broken the count is a lower
// bound; with reuse working every connection lives for the whole run and
// is seen.
type connTracker struct {
	file   string                           // /proc/net/tcp or /proc/net/unix
	match  func(sc *bufio.Scanner) []string // the connections of one sample
	mu     sync.Mutex
	peers  map[string]bool
	cancel context.CancelFunc
	done   chan struct{}
}

// trackConns starts sampling every 20ms until stop is called. addr is
// host:port or unix:/path.
func trackConns(addr string) (*connTracker, error) {
	ct := &connTracker{peers: map[string]bool{}, done: make(chan struct{})}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		ct.file = "/proc/net/unix"
		ct.match = func(sc *bufio.Scanner) []string { return connectedUnix(sc, path) }
	} else {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("track %s: %w", addr, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("track %s: %w", addr, err)
		}
		ct.file = "/proc/net/tcp"
		ct.match = func(sc *bufio.Scanner) []string {
			var out []string
			for _, p := range established(sc, port) {
				out = append(out, strconv.Itoa(p))
			}
			return out
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ct.cancel = cancel
	go func() {
		defer close(ct.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			ct.sample()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return ct, nil
}

func (ct *connTracker) sample() {
	f, err := os.Open(ct.file)
	if err != nil {
		return
	}
	defer f.Close()
	peers := ct.match(bufio.NewScanner(f))
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for _, p := range peers {
		ct.peers[p] = true
	}
}

// connectedUnix returns the inodes of the connected sockets bound to path
// (a listener's accepted connections carry its path), from /proc/net/unix
// text.
func connectedUnix(sc *bufio.Scanner, path string) []string {
	var out []string
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(sc.Text())
		if len(f) == 8 && f[5] == "03" && f[7] == path {
			out = append(out, f[6])
		}
	}
	return out
}

// established returns the peer ports of the ESTABLISHED connections whose
// local port is port, from /proc/net/tcp text.
func established(sc *bufio.Scanner, port int) []int {
	var out []int
	for sc.Scan() {
		// sl local_address rem_address st ...
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "01" {
			continue
		}
		_, lp, ok1 := strings.Cut(f[1], ":")
		_, rp, ok2 := strings.Cut(f[2], ":")
		if !ok1 || !ok2 {
			continue
		}
		l, err1 := strconv.ParseUint(lp, 16, 16)
		r, err2 := strconv.ParseUint(rp, 16, 16)
		if err1 != nil || err2 != nil || int(l) != port {
			continue
		}
		out = append(out, int(r))
	}
	return out
}

func TestConnectedUnix(t *testing.T) {
	const table = `Num       RefCount Protocol Flags    Type St Inode Path
00000000ad86be7b: 00000003 00000000 00000000 0001 03 151257329
00000000ce708eb2: 00000003 00000000 00000000 0001 03 151256819 /run/j.sock
0000000090fc5f6e: 00000002 00000000 00010000 0001 01 151254896 /run/j.sock
0000000039b807ea: 00000003 00000000 00000000 0001 03 151256823 /run/j.sock
0000000039b807eb: 00000003 00000000 00000000 0001 03 151256999 /run/other.sock
`
	got := connectedUnix(bufio.NewScanner(strings.NewReader(table)), "/run/j.sock")
	if fmt.Sprint(got) != "[151256819 151256823]" {
		t.Errorf("connectedUnix = %v, want the two connected sockets of /run/j.sock (not the listener, not the peer end)", got)
	}
}

func TestEstablished(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F49 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F49 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:A000 0100007F:1F49 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F49 0100007F:A001 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
   4: 0100007F:1F49 0100007F:A002 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
`
	tests := []struct {
		port int
		want []int
	}{
		{8009, []int{0xA000, 0xA002}}, // 0x1F49: listening and TIME_WAIT lines skipped
		{0xA000, []int{8009}},
		{1, nil},
	}
	for _, tt := range tests {
		got := established(bufio.NewScanner(strings.NewReader(table)), tt.port)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("established(port %d) = %v, want %v", tt.port, got, tt.want)
		}
	}
}

// stop ends sampling and returns how many connections were seen.
func (ct *connTracker) stop() int {
	ct.cancel()
	<-ct.done
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return len(ct.peers)
}

// BenchmarkEndToEndAJP compares, on one Apache (mpm_event) and one
// instance of the test app (testdata/app),
//
//	Apache mod_proxy_http                              → app
//	Apache mod_proxy_ajp → junction (ajp, http backend) → app
//	Apache mod_proxy_ajp → protocols/ajp13 with a constant handler (the
//	                       "AJP floor", floor_test.go: no backend hop)
//
// with persistent connections on every hop (Apache to junction and to the
// floor on unix sockets, to the app on loopback TCP), and counts the AJP
// connections Apache opened to junction. With a baseline binary, the
// junction path also runs on it, through a virtual host of its own on the
// same Apache (bench_baseline_test.go).
func BenchmarkEndToEndAJP(b *testing.B) {
	cfg := benchSettings(b)
	needBin(b, wrkBin, "wrk")
	needBin(b, apacheBin, "apache2")
	needJunction(b)

	appAddr, appProc := startAppInstance(b, "app")
	// Apache reaches junction (and the floor) on a unix socket, as nginx
	// reaches its gateways in the other benchmarks: the setup the README
	// recommends on one host. The app is on loopback TCP for both paths.
	dir := openTempDir(b)
	gs := startGateways(b, cfg, dir, func(listen string) string {
		return fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: ajp, address: %q, socket_mode: "0666", backend: app}
backends:
  app: {type: http, instances: [%q]}
`, listen, appAddr)
	})
	fSock := filepath.Join(dir, "floor.sock")
	floor := startFloor(b, "ajp13", "unix:"+fSock)

	direct, fHTTP := freeAddr(b), freeAddr(b)
	// Both workers reuse their backend connections (mod_proxy's default,
	// disablereuse=Off); ttl only closes connections idle for a minute.
	// wrk's own connections stay open for the whole run on both sides
	// (MaxKeepAliveRequests 0: no limit).
	var conf strings.Builder
	fmt.Fprintf(&conf, `Listen %[1]s
Listen %[2]s
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
<VirtualHost %[1]s>
    ProxyPass / http://%[3]s/ ttl=60
</VirtualHost>
<VirtualHost %[2]s>
    ProxyPass / "unix:%[4]s|ajp://localhost/" ttl=60
</VirtualHost>
`, direct, fHTTP, appAddr, fSock)
	via := make([]string, len(gs))
	for i, g := range gs {
		via[i] = freeAddr(b)
		fmt.Fprintf(&conf, `Listen %[1]s
<VirtualHost %[1]s>
    ProxyPass / "%[2]s|ajp://localhost/" ttl=60
</VirtualHost>
`, via[i], g.Listen)
	}
	startApache(b, []string{"proxy", "proxy_http", "proxy_ajp"}, conf.String())

	const path = "/bench"
	for _, addr := range append([]string{direct}, via...) {
		if r := httpGet(b, "http://"+addr+path); r.Status != 200 || r.Body != "app "+path+"\n" {
			b.Fatalf("GET %s via %s = %d %q", path, addr, r.Status, r.Body)
		}
	}
	checkFloorAnswer(b, "http://"+fHTTP+path)

	track, err := trackConns(gs[0].Listen)
	if err != nil {
		b.Fatal(err)
	}
	res := compareLoads(b, cfg,
		gs.load(wrkLoad{Name: "mod_proxy_ajp+junction"}, func(i int) string { return "http://" + via[i] + path }),
		wrkLoad{Name: "mod_proxy_http", URL: "http://" + direct + path, PGID: appProc.cmd.Process.Pid},
		wrkLoad{Name: "mod_proxy_ajp floor", URL: "http://" + fHTTP + path, PGID: floor.cmd.Process.Pid},
	)
	conns := track.stop()
	row := abRow{Name: "app GET", J: res[0].Median, Ref: res[1].Median, Target: 0.6}
	row.report(b, "ajp", "http")
	// A reference: its rate is in the ajp column, and it is not junction.
	floorRow := abRow{Name: "ajp-floor", J: res[2].Median, Ref: res[1].Median}
	floorRow.report(b, "ref", "http")
	ofFloor := row.J.RPS / floorRow.J.RPS
	b.ReportMetric(ofFloor, "ajp-junction/ajp-floor")
	perConn := float64(res[0].AllRequests) / float64(max(conns, 1))
	b.ReportMetric(float64(conns), "ajp-connections")
	b.ReportMetric(perConn, "ajp-requests/conn")
	var vsBase []baselineScenario
	if gs.hasBaseline() {
		vs := wrkScenario(row.Name, res[0])
		vs.report(b)
		vsBase = append(vsBase, vs)
	}
	appendBenchSummary(b, abTable(
		fmt.Sprintf("AJP: wrk -t2 -c%d, %v per path, Apache mpm_event mod_proxy_ajp (unix socket) → junction → app vs mod_proxy_http → app (loopback TCP)", wrkConns, cfg.Duration),
		cfg.Rounds, "ajp", "http", []abRow{row, floorRow},
		fmt.Sprintf("AJP connections Apache opened to junction: %d for %d requests (%.0f requests per connection; sampled every 20ms)", conns, res[0].AllRequests, perConn),
		"cpu/req: ajp = junction's own CPU per request; http = the app's (for scale: junction's cost is on top of the app's)",
		"ajp-floor (reference, timed in the same interleaved rounds; its rate is in the ajp column, ratio = to mod_proxy_http):",
		"  Apache mod_proxy_ajp (same ProxyPass ttl=60, reused connections) → protocols/ajp13 with a constant handler, no backend hop",
		"  (GOMAXPROCS as junction); cpu/req: that process",
		fmt.Sprintf("  junction's app GET is %.2fx of the floor; target %.2fx of mod_proxy_http would need %.0f req/s = %.2fx of the floor",
			ofFloor, row.Target, row.Target*row.Ref.RPS, row.Target*row.Ref.RPS/floorRow.J.RPS),
	)+baselineTable(cfg, "AJP", vsBase))
}
