package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// connTracker samples /proc/net/tcp and records every established
// connection accepted on one local port, by the peer's port: how many
// connections a front server opened to junction. Sampling misses a
// connection that opens and closes between two looks, so with reuse
// broken the count is a lower bound; with reuse working every connection
// lives for the whole run and is seen.
type connTracker struct {
	port   int
	mu     sync.Mutex
	peers  map[int]bool
	cancel context.CancelFunc
	done   chan struct{}
}

// trackConns starts sampling every 20ms until stop is called.
func trackConns(addr string) (*connTracker, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("track %s: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("track %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ct := &connTracker{port: port, peers: map[int]bool{}, cancel: cancel, done: make(chan struct{})}
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
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return
	}
	defer f.Close()
	peers := established(bufio.NewScanner(f), ct.port)
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for _, p := range peers {
		ct.peers[p] = true
	}
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
// with persistent connections on every hop, and counts the AJP
// connections Apache opened to junction.
func BenchmarkEndToEndAJP(b *testing.B) {
	d := benchDuration(b)
	needBin(b, wrkBin, "wrk")
	needBin(b, apacheBin, "apache2")
	needJunction(b)

	appAddr, appProc := startAppInstance(b, "app")
	jAddr := freeAddr(b)
	j := startJunction(b, fmt.Sprintf(`log: {level: warn, format: text}
listeners:
  - {protocol: ajp, address: %q, backend: app}
backends:
  app: {type: http, instances: [%q]}
`, jAddr, appAddr), jAddr)
	fAddr := freeAddr(b)
	floor := startFloor(b, "ajp13", fAddr)

	direct, via, fHTTP := freeAddr(b), freeAddr(b), freeAddr(b)
	// Both workers reuse their backend connections (mod_proxy's default,
	// disablereuse=Off); ttl only closes connections idle for a minute.
	// wrk's own connections stay open for the whole run on both sides
	// (MaxKeepAliveRequests 0: no limit).
	startApache(b, []string{"proxy", "proxy_http", "proxy_ajp"}, fmt.Sprintf(`Listen %[1]s
Listen %[2]s
Listen %[5]s
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
<VirtualHost %[1]s>
    ProxyPass / http://%[3]s/ ttl=60
</VirtualHost>
<VirtualHost %[2]s>
    ProxyPass / ajp://%[4]s/ ttl=60
</VirtualHost>
<VirtualHost %[5]s>
    ProxyPass / ajp://%[6]s/ ttl=60
</VirtualHost>
`, direct, via, appAddr, jAddr, fHTTP, fAddr))

	const path = "/bench"
	for _, addr := range []string{direct, via} {
		if r := httpGet(b, "http://"+addr+path); r.Status != 200 || r.Body != "app "+path+"\n" {
			b.Fatalf("GET %s via %s = %d %q", path, addr, r.Status, r.Body)
		}
	}
	checkFloorAnswer(b, "http://"+fHTTP+path)

	track, err := trackConns(jAddr)
	if err != nil {
		b.Fatal(err)
	}
	res := compareLoads(b, d,
		wrkLoad{Name: "mod_proxy_ajp+junction", URL: "http://" + via + path, PGID: j.cmd.Process.Pid},
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
	appendBenchSummary(b, abTable(
		fmt.Sprintf("AJP: wrk -t2 -c%d, %v per path, Apache mpm_event mod_proxy_ajp → junction → app vs mod_proxy_http → app", wrkConns, d),
		"ajp", "http", []abRow{row, floorRow},
		fmt.Sprintf("AJP connections Apache opened to junction: %d for %d requests (%.0f requests per connection; sampled every 20ms)", conns, res[0].AllRequests, perConn),
		"cpu/req: ajp = junction's own CPU per request; http = the app's (for scale: junction's cost is on top of the app's)",
		"ajp-floor (reference, timed in the same interleaved rounds; its rate is in the ajp column, ratio = to mod_proxy_http):",
		"  Apache mod_proxy_ajp (same ProxyPass ttl=60, reused connections) → protocols/ajp13 with a constant handler, no backend hop",
		"  (GOMAXPROCS as junction); cpu/req: that process",
		fmt.Sprintf("  junction's app GET is %.2fx of the floor; target %.2fx of mod_proxy_http would need %.0f req/s = %.2fx of the floor",
			ofFloor, row.Target, row.Target*row.Ref.RPS, row.Target*row.Ref.RPS/floorRow.J.RPS),
	))
}
