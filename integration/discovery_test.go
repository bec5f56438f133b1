package integration

// Pools whose instances come from DNS (discovery: {dns|srv}), against a
// real DNS server: dnsmasq (Debian's dnsmasq-base) started by the test on
// a loopback port, A records from an --addn-hosts file (re-read on
// SIGHUP), SRV records from its command line (restarted on the same port
// to change them). Instances are small Go servers in the test on
// 127.0.0.2, 127.0.0.3, ..., so each A record is a distinct instance.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const dnsmasqBin = "/usr/sbin/dnsmasq"

// discoveryDNS is a running dnsmasq serving the .test domain.
type discoveryDNS struct {
	t     *testing.T
	Addr  string // 127.0.0.1:PORT
	port  int
	hosts string // the --addn-hosts file
	srv   []string
	p     *proc
}

// discoveryStartDNS serves hosts (/etc/hosts lines) and srv records
// (dnsmasq --srv-host values: name,target,port,priority,weight).
func discoveryStartDNS(t *testing.T, hosts string, srv ...string) *discoveryDNS {
	t.Helper()
	needBin(t, dnsmasqBin, "dnsmasq-base")
	d := &discoveryDNS{t: t, port: freePort(t), hosts: filepath.Join(t.TempDir(), "hosts")}
	d.Addr = fmt.Sprintf("127.0.0.1:%d", d.port)
	writeFile(t, filepath.Dir(d.hosts), "hosts", hosts)
	d.start(srv)
	return d
}

func (d *discoveryDNS) start(srv []string) {
	d.t.Helper()
	d.srv = srv
	args := []string{"--no-daemon", fmt.Sprintf("--port=%d", d.port), "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts=" + d.hosts,
		// Names under .test that dnsmasq does not know are NXDOMAIN, as in
		// Consul, rather than REFUSED for want of an upstream server.
		"--local=/test/", "--pid-file=", "--log-queries", "--log-facility=-"}
	for _, s := range srv {
		args = append(args, "--srv-host="+s)
	}
	d.p = startCmd(d.t, "dnsmasq", exec.Command(dnsmasqBin, args...), 3*time.Second, false)
	waitListening(d.t, d.p, 10*time.Second, d.Addr)
}

// setHosts rewrites the A records and has dnsmasq re-read them.
func (d *discoveryDNS) setHosts(hosts string) {
	d.t.Helper()
	writeFile(d.t, filepath.Dir(d.hosts), "hosts", hosts)
	if err := d.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
}

// stop ends dnsmasq: lookups fail until restart.
func (d *discoveryDNS) stop() {
	d.t.Helper()
	if err := d.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	<-d.p.done
}

// restart starts dnsmasq again on the same port with new SRV records.
func (d *discoveryDNS) restart(srv ...string) {
	d.t.Helper()
	if !d.p.Exited() {
		d.stop()
	}
	d.start(srv)
}

// discoveryInstance is an application instance in the test: every
// answer's body starts with its name ("IP:port"); /health answers 200 or
// 503 as told; /slow waits 1.5 s first. It counts its open connections.
type discoveryInstance struct {
	Name    string
	healthy atomic.Bool
	served  atomic.Int64 // requests other than /health
	slow    atomic.Int64 // /slow requests in progress
	open    atomic.Int64
	srv     *http.Server
}

func (in *discoveryInstance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		if !in.healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
	case "/slow":
		in.slow.Add(1)
		time.Sleep(1500 * time.Millisecond)
		in.slow.Add(-1)
	}
	if r.URL.Path != "/health" {
		in.served.Add(1)
	}
	fmt.Fprintf(w, "%s %s\n", in.Name, r.URL.Path)
}

// discoveryServeHTTP starts an HTTP instance on l.
func discoveryServeHTTP(t *testing.T, l net.Listener) *discoveryInstance {
	in := &discoveryInstance{Name: l.Addr().String()}
	in.healthy.Store(true)
	in.srv = &http.Server{Handler: in, ConnState: func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			in.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			in.open.Add(-1)
		}
	}}
	go in.srv.Serve(l)
	t.Cleanup(func() { in.srv.Close() })
	return in
}

// discoveryListeners binds the same free port on each of ips.
func discoveryListeners(t *testing.T, ips ...string) (int, []net.Listener) {
	t.Helper()
	for range 50 {
		port := freePort(t)
		var ls []net.Listener
		for _, ip := range ips {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) == len(ips) {
			return port, ls
		}
		for _, l := range ls {
			l.Close()
		}
	}
	t.Fatal("no port free on every address")
	return 0, nil
}

// discoveryStatus is the part of /status.json these tests read.
type discoveryStatus struct {
	Pools []struct {
		Name      string `json:"name"`
		Source    string `json:"source"`
		Discovery *struct {
			Name        string            `json:"name"`
			LastRefresh time.Time         `json:"last_refresh"`
			Instances   int               `json:"instances"`
			Failing     bool              `json:"failing"`
			LastError   string            `json:"last_error"`
			Pending     map[string]string `json:"pending"`
		} `json:"discovery"`
		Instances []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"instances"`
	} `json:"pools"`
}

func discoveryGetStatus(t *testing.T, admin string) discoveryStatus {
	t.Helper()
	r := httpGet(t, "http://"+admin+"/status.json")
	var st discoveryStatus
	if err := json.Unmarshal([]byte(r.Body), &st); err != nil {
		t.Fatalf("/status.json: %v\n%s", err, r.Body)
	}
	return st
}

// discoveryWait polls cond for up to 15 s (a few refreshes on a loaded
// machine) and fails the test with what when it does not hold.
func discoveryWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !waitFor(15*time.Second, cond) {
		t.Fatalf("timed out waiting until %s", what)
	}
}

// discoveryFollows waits until 20 GETs of url in a row are answered by
// the instances in want only, each of them at least once.
func discoveryFollows(t *testing.T, url string, want ...string) {
	t.Helper()
	ok := func(name string) bool {
		for _, w := range want {
			if name == w {
				return true
			}
		}
		return false
	}
	discoveryWait(t, fmt.Sprintf("only %v answer", want), func() bool {
		seen := map[string]bool{}
		for range 20 {
			name := answerer(url)
			if !ok(name) {
				return false
			}
			seen[name] = true
		}
		return len(seen) == len(want)
	})
}

// TestDiscoveryDNSFollowsRecords: an http pool whose instances are the A
// records of a name follows them under load with no failed request: a
// removed instance finishes its requests in flight and its kept
// connections are closed, a new instance that fails its health check
// waits (shown as pending) until it passes, and while the DNS server is
// down the pool keeps its instances, counts the errors and shows them.
func TestDiscoveryDNSFollowsRecords(t *testing.T) {
	t.Parallel()
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	port, ls := discoveryListeners(t, ips...)
	inst := map[string]*discoveryInstance{}
	for _, l := range ls {
		in := discoveryServeHTTP(t, l)
		inst[in.Name] = in
	}
	name := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
	hosts := func(ips ...string) string {
		var b strings.Builder
		for _, ip := range ips {
			fmt.Fprintf(&b, "%s app.test\n", ip)
		}
		return b.String()
	}
	dns := discoveryStartDNS(t, hosts("127.0.0.2", "127.0.0.3"))
	front, admin := freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`
metrics: {address: %q}
listeners:
  - {protocol: http, address: %q, backend: app}
backends:
  app:
    type: http
    discovery: {dns: "app.test:%d", resolver: %q, refresh: 200ms}
    health: {path: /health, interval: 200ms, timeout: 1s}
`, admin, front, port, dns.Addr), front, admin)
	url := "http://" + front

	discoveryFollows(t, url+"/", name("127.0.0.2"), name("127.0.0.3"))
	load := startLoad(t, url+"/load", 4)
	defer load.finish(t)

	// .2 leaves and .4 arrives while slow requests are in flight.
	slow := make(chan string, 4)
	for range 4 {
		go func() { slow <- answerer(url + "/slow") }()
	}
	discoveryWait(t, "slow requests reach 127.0.0.2", func() bool { return inst[name("127.0.0.2")].slow.Load() > 0 })
	dns.setHosts(hosts("127.0.0.3", "127.0.0.4"))
	discoveryFollows(t, url+"/", name("127.0.0.3"), name("127.0.0.4"))
	onRemoved := 0
	for range 4 {
		switch who := <-slow; who {
		case "":
			t.Error("a slow request in flight failed")
		case name("127.0.0.2"):
			onRemoved++
		}
	}
	if onRemoved == 0 {
		t.Error("no slow request was in flight on the removed instance")
	}
	discoveryWait(t, "the removed instance's connections are closed", func() bool {
		return inst[name("127.0.0.2")].open.Load() == 0
	})
	served := inst[name("127.0.0.2")].served.Load()

	// .5 appears failing its health check: pending, no requests.
	inst[name("127.0.0.5")].healthy.Store(false)
	dns.setHosts(hosts("127.0.0.3", "127.0.0.4", "127.0.0.5"))
	discoveryWait(t, "127.0.0.5 is pending", func() bool {
		d := discoveryGetStatus(t, admin).Pools[0].Discovery
		return d != nil && d.Instances == 3 && d.Pending[name("127.0.0.5")] != ""
	})
	t.Run("status page in a browser", func(t *testing.T) {
		needBin(t, chromium, "chromium")
		text := visibleText(runChromium(t, "--dump-dom", "http://"+admin+"/status"))
		for _, want := range []string{
			"source dns", fmt.Sprintf("app.test:%d via %s every 0.2s · 3 found", port, dns.Addr), "last refresh 20",
			"pending " + name("127.0.0.5") + ": ", name("127.0.0.3") + " up ", name("127.0.0.4") + " up ",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("rendered page lacks %q", want)
			}
		}
		if t.Failed() {
			t.Logf("page text:\n%s", text)
		}
	})
	time.Sleep(time.Second) // five refreshes
	if n := inst[name("127.0.0.5")].served.Load(); n != 0 {
		t.Errorf("pending instance served %d requests", n)
	}
	inst[name("127.0.0.5")].healthy.Store(true)
	discoveryWait(t, "127.0.0.5 serves once healthy", func() bool { return inst[name("127.0.0.5")].served.Load() > 0 })

	// The DNS server goes away: the pool keeps its three instances.
	dns.stop()
	discoveryWait(t, "the status page shows the failing lookup", func() bool {
		p := discoveryGetStatus(t, admin).Pools[0]
		return p.Source == "dns" && p.Discovery.Failing && p.Discovery.LastError != "" && len(p.Instances) == 3
	})
	before := map[string]int64{}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		before[ip] = inst[name(ip)].served.Load()
	}
	discoveryWait(t, "every kept instance serves while DNS is down", func() bool {
		for ip, n := range before {
			if inst[name(ip)].served.Load() <= n {
				return false
			}
		}
		return true
	})
	discoveryWait(t, "three failed lookups are counted", func() bool {
		return scrape(t, admin).sum("junction_discovery_errors_total", `backend="app"`) >= 3
	})
	if n := strings.Count(j.Output(), "discovery lookup failed"); n != 1 {
		t.Errorf("failed lookups logged %d times, want once", n)
	}
	dns.setHostsFile(hosts("127.0.0.3"))
	dns.restart()
	discoveryFollows(t, url+"/", name("127.0.0.3"))
	if n := strings.Count(j.Output(), "discovery lookup works again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	st := discoveryGetStatus(t, admin).Pools[0].Discovery
	if st.Failing || st.LastRefresh.IsZero() || st.Name != fmt.Sprintf("app.test:%d", port) {
		t.Errorf("status after recovery: %+v", st)
	}
	if n := inst[name("127.0.0.2")].served.Load(); n != served {
		t.Errorf("removed instance served %d more requests", n-served)
	}
	seen := load.finish(t)
	t.Logf("answers under load: %v", seen)
}

// setHostsFile rewrites the A records without signalling (dnsmasq is
// down; it reads them when it starts).
func (d *discoveryDNS) setHostsFile(hosts string) {
	d.t.Helper()
	writeFile(d.t, filepath.Dir(d.hosts), "hosts", hosts)
}

// discoveryServeFCGI starts a FastCGI responder on l answering its name.
func discoveryServeFCGI(t *testing.T, l net.Listener) *discoveryInstance {
	in := &discoveryInstance{Name: l.Addr().String()}
	in.healthy.Store(true)
	go fcgi.Serve(l, in) //nolint:errcheck // ends when the listener closes
	t.Cleanup(func() { l.Close() })
	return in
}

// TestDiscoverySRVFastCGI: a fastcgi pool whose instances are SRV
// records: the lowest priority is the primary set, weighted by the
// records' weights, the others are backups; when the records change
// (dnsmasq restarted with others) traffic follows with no failed request.
func TestDiscoverySRVFastCGI(t *testing.T) {
	t.Parallel()
	var ports [3]int
	names := map[string]string{} // instance name (target:port) → its answer
	for i, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		in := discoveryServeFCGI(t, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
		names[fmt.Sprintf("n%d.test:%d", i+1, ports[i])] = in.Name
	}
	rec := func(n, prio, weight int) string {
		return fmt.Sprintf("_app._tcp.svc.test,n%d.test,%d,%d,%d", n, ports[n-1], prio, weight)
	}
	dns := discoveryStartDNS(t, "127.0.0.2 n1.test\n127.0.0.3 n2.test\n127.0.0.4 n3.test\n",
		rec(1, 10, 3), rec(2, 10, 1), rec(3, 20, 1))
	front, admin := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`
metrics: {address: %q}
listeners:
  - {protocol: http, address: %q, backend: app}
backends:
  app:
    type: fastcgi
    root: /srv
    balance: weighted_round_robin
    discovery: {srv: _app._tcp.svc.test, resolver: %q, refresh: 200ms}
`, admin, front, dns.Addr), front, admin)
	url := "http://" + front + "/index.php"
	n := func(i int) string { return names[fmt.Sprintf("n%d.test:%d", i, ports[i-1])] }

	discoveryWait(t, "the pool has its three instances", func() bool {
		st := discoveryGetStatus(t, admin)
		return len(st.Pools) == 1 && len(st.Pools[0].Instances) == 3
	})
	got := map[string]int{}
	for range 40 {
		got[answerer(url)]++
	}
	if got[n(1)] != 30 || got[n(2)] != 10 || len(got) != 2 {
		t.Errorf("answers %v, want 30 from %s (weight 3) and 10 from %s (weight 1), none from the backup", got, n(1), n(2))
	}
	p := discoveryGetStatus(t, admin).Pools[0]
	states := map[string]string{}
	for _, in := range p.Instances {
		states[in.Name] = in.State
	}
	if p.Source != "srv" || states[fmt.Sprintf("n3.test:%d", ports[2])] != "backup" || states[fmt.Sprintf("n1.test:%d", ports[0])] != "up" {
		t.Errorf("status: source %q, states %v", p.Source, states)
	}

	load := startLoad(t, url, 4)
	dns.restart(rec(2, 10, 1), rec(3, 20, 1))
	discoveryFollows(t, url, n(2))
	dns.restart(rec(3, 20, 1))
	discoveryFollows(t, url, n(3))
	t.Logf("answers under load: %v", load.finish(t))
}

// discoveryStartJunction starts a junction the test may stop itself (the
// harness's startJunction fails a test whose junction exits early).
func discoveryStartJunction(t *testing.T, name, yaml string, addrs ...string) *proc {
	t.Helper()
	cfg := writeFile(t, t.TempDir(), "junction.yaml", yaml)
	p := startCmd(t, name, junctionCommand(t, "serve", "-c", cfg), 5*time.Second, false)
	waitListening(t, p, 10*time.Second, addrs...)
	return p
}

// TestDiscoverySeveralJunctions: two junctions discover the same
// instances behind one nginx upstream of their SCGI sockets. A hash key
// and a sticky cookie land on the same instance through either, and
// stopping one junction under load loses no request (nginx retries the
// other: scgi_next_upstream error timeout).
func TestDiscoverySeveralJunctions(t *testing.T) {
	t.Parallel()
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, ls := discoveryListeners(t, ips...)
	var hosts strings.Builder
	for i, l := range ls {
		discoveryServeHTTP(t, l)
		fmt.Fprintf(&hosts, "%s app.test\n", ips[i])
	}
	dns := discoveryStartDNS(t, hosts.String())
	config := func(scgi string) string {
		return fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %q, backend: app}
routes:
  - {prefix: /sticky/, backend: sticky}
backends:
  app:
    type: http
    discovery: {dns: "app.test:%[2]d", resolver: %[3]q, refresh: 200ms}
    balance: hash
    hash_key: "header:X-User"
  sticky:
    type: http
    discovery: {dns: "app.test:%[2]d", resolver: %[3]q, refresh: 200ms}
    sticky_cookie: jsrv
`, scgi, port, dns.Addr)
	}
	scgiA, scgiB := freeAddr(t), freeAddr(t)
	ja := discoveryStartJunction(t, "junction-a", config(scgiA), scgiA)
	discoveryStartJunction(t, "junction-b", config(scgiB), scgiB)
	front := freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    upstream junctions {
        server %s;
        server %s;
    }
    server {
        listen %s;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass junctions;
            scgi_next_upstream error timeout;
        }
    }
`, scgiA, scgiB, front))
	url := "http://" + front

	via := func(addr, path string, extra ...scgiVar) scgiResult {
		var r scgiResult
		discoveryWait(t, "a junction answers "+path, func() bool {
			r = scgiDo(t, addr, scgiRequest("GET", path, 0, extra...), nil)
			return r.Status == 0 || r.Status == 200
		})
		return r
	}
	who := func(r scgiResult) string {
		f := strings.Fields(r.Body)
		if len(f) == 0 {
			t.Fatalf("empty answer %q", r.Raw)
		}
		return f[0]
	}
	// Both junctions must see all three instances first.
	for _, a := range []string{scgiA, scgiB} {
		discoveryWait(t, "a junction spreads over three instances", func() bool {
			seen := map[string]bool{}
			for range 9 {
				seen[who(via(a, "/sticky/x"))] = true
			}
			return len(seen) == 3
		})
	}
	spread := map[string]int{}
	owner := map[string]string{} // key → instance
	client := newHTTPClient(5 * time.Second)
	for i := range 30 {
		key := scgiVar{"HTTP_X_USER", fmt.Sprint("user-", i)}
		a, b := who(via(scgiA, "/k", key)), who(via(scgiB, "/k", key))
		if a != b {
			t.Errorf("key %s: %s through junction A, %s through B", key.Value, a, b)
		}
		for range 2 { // nginx alternates between the junctions
			req, _ := http.NewRequest(http.MethodGet, url+"/k", nil)
			req.Header.Set("X-User", key.Value)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if f := strings.Fields(string(body)); len(f) == 0 || f[0] != a {
				t.Errorf("key %s through nginx: %q, want %s", key.Value, body, a)
			}
		}
		spread[a]++
		owner[key.Value] = a
	}
	if len(spread) < 2 {
		t.Errorf("30 keys all on %v", spread)
	}

	for range 6 {
		r := via(scgiA, "/sticky/")
		cookie := ""
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			if c.Name == "jsrv" {
				cookie = c.Name + "=" + c.Value
			}
		}
		if cookie == "" {
			t.Fatalf("no jsrv cookie from junction A: %q", r.Raw)
		}
		for range 3 {
			if got := who(via(scgiB, "/sticky/", scgiVar{"HTTP_COOKIE", cookie})); got != who(r) {
				t.Errorf("cookie %s from %s went to %s through junction B", cookie, who(r), got)
			}
		}
	}

	// One of the three instances leaves DNS: through either junction,
	// only the keys it had move.
	gone := net.JoinHostPort(ips[2], strconv.Itoa(port))
	dns.setHosts(fmt.Sprintf("%s app.test\n%s app.test\n", ips[0], ips[1]))
	for _, a := range []string{scgiA, scgiB} {
		discoveryWait(t, "a junction spreads over two instances", func() bool {
			seen := map[string]bool{}
			for range 8 {
				seen[who(via(a, "/sticky/x"))] = true
			}
			return len(seen) == 2 && !seen[gone]
		})
	}
	moved := 0
	for key, was := range owner {
		v := scgiVar{"HTTP_X_USER", key}
		a, b := who(via(scgiA, "/k", v)), who(via(scgiB, "/k", v))
		switch {
		case a != b:
			t.Errorf("key %s after the removal: %s through A, %s through B", key, a, b)
		case was == gone && a == gone:
			t.Errorf("key %s still on the removed instance", key)
		case was != gone && a != was:
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys not on the removed instance %s moved", moved, gone)
	}

	load := startLoad(t, url+"/load", 6)
	time.Sleep(500 * time.Millisecond)
	if err := ja.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ja.done:
	case <-time.After(10 * time.Second):
		t.Fatal("junction A did not stop")
	}
	if ja.err != nil {
		t.Errorf("junction A exited with %v", ja.err)
	}
	time.Sleep(500 * time.Millisecond)
	t.Logf("answers while junction A stopped: %v", load.finish(t))
}
