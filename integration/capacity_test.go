package integration

// max_conns: auto against real FastCGI servers: php-fpm's status page
// with pm = static (the capacity follows a reload that changes
// pm.max_children) and pm = dynamic (unknown: the fallback bounds), and
// php-cgi -b, which answers FCGI_GET_VALUES.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends/fastcgi/fpmtest"
)

// capacityScripts are the PHP scripts of the capacity tests.
var capacityScripts = map[string]string{
	"hello.php": `<?php header("Content-Type: text/plain"); echo "hello\n";`,
	"slow.php":  `<?php usleep(30000); echo "slow\n";`,
}

// capacityInstance is an instance as /status.json shows it.
type capacityInstance struct {
	Name           string `json:"name"`
	State          string `json:"state"`
	InFlight       int    `json:"in_flight"`
	Requests       int64  `json:"requests"`
	Source         string `json:"source"`
	MaxConns       int    `json:"max_conns"`
	Capacity       int    `json:"capacity"`
	CapacitySource string `json:"capacity_source"`
	CapacityStatus string `json:"capacity_status"`
	CapacityError  string `json:"capacity_error"`
	IdleWorkers    *int   `json:"idle_workers"`
}

// capacityStatus reads the first pool's first instance from junction's
// /status.json at ops.
func capacityStatus(t *testing.T, ops string) capacityInstance {
	t.Helper()
	r := httpGet(t, "http://"+ops+"/status.json")
	if r.Status != 200 {
		t.Fatalf("status.json: %d %s", r.Status, r.Body)
	}
	var s struct {
		Pools []struct {
			Instances []capacityInstance `json:"instances"`
		} `json:"pools"`
	}
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil {
		t.Fatalf("status.json: %v\n%s", err, r.Body)
	}
	if len(s.Pools) == 0 || len(s.Pools[0].Instances) == 0 {
		t.Fatalf("status.json has no instance:\n%s", r.Body)
	}
	return s.Pools[0].Instances[0]
}

// capacityWait polls /status.json until cond holds for the instance, and
// fails the test with the last state after timeout.
func capacityWait(t *testing.T, ops, what string, timeout time.Duration, cond func(capacityInstance) bool) capacityInstance {
	t.Helper()
	var last capacityInstance
	if !waitFor(timeout, func() bool {
		last = capacityStatus(t, ops)
		return cond(last)
	}) {
		t.Fatalf("%s: not within %v; the instance is %+v", what, timeout, last)
	}
	return last
}

// capacityFPM runs php-fpm with pm (static or dynamic) and
// pm.max_children children, its status page at /fpm-status, serving
// capacityScripts. It returns the pool (to rewrite), the process, the
// instance address and the document root.
func capacityFPM(t *testing.T, pm string, children int) (pool fpmtest.Pool, p *proc, addr, root string) {
	t.Helper()
	needBin(t, phpFPMBin, "php8.2-fpm")
	dir := t.TempDir()
	root = filepath.Join(dir, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range capacityScripts {
		writeFile(t, root, name, src)
	}
	extra := "pm.status_path = /fpm-status\n"
	if pm == "dynamic" {
		// Later keys win in php-fpm's pool section.
		extra += "pm = dynamic\npm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 2\n"
	}
	pool = fpmtest.Pool{Dir: dir, Name: "capacity", Children: children, Extra: extra}
	args, err := pool.Write()
	if err != nil {
		t.Fatal(err)
	}
	p = startProcess(t, phpFPMBin, args, pool.Log(), pool.Config())
	if !waitFor(10*time.Second, func() bool {
		_, err := os.Stat(pool.Socket())
		return err == nil || p.Exited()
	}) || p.Exited() {
		p.dump(t)
		t.Fatalf("php-fpm did not create %s", pool.Socket())
	}
	return pool, p, "unix:" + pool.Socket(), root
}

// capacityLoad sends GETs of target from workers clients until stop is
// closed, and returns the count of requests and the failures (at most
// ten kept).
type capacityLoad struct {
	wg       sync.WaitGroup
	stop     chan struct{}
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func capacityStartLoad(url string, workers int) *capacityLoad {
	l := &capacityLoad{stop: make(chan struct{})}
	client := newHTTPClient(15 * time.Second)
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(url)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
					}
				}
				if err != nil {
					l.fail.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *capacityLoad) end() (ok, fail int64, errs []string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.fail.Load(), l.errs
}

// TestCapacityPHPFPMStatic: max_conns: auto with keepalive: auto on a
// php-fpm with pm = static and 3 children, behind nginx, under load from
// 8 clients of a slow script. The capacity (3, from the status page)
// replaces the fallback (1) and bounds the connections: every request
// succeeds (more connections than workers would leave some waiting in
// php-fpm's accept queue behind kept ones). Mid-run, pm.max_children
// becomes 5 and php-fpm reloads (SIGUSR2): /status.json follows, and the
// load goes on.
func TestCapacityPHPFPMStatic(t *testing.T) {
	t.Parallel()
	pool, fpm, addr, root := capacityFPM(t, "static", 3)
	scgi, ops := freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q, backend: php}
backends:
  php:
    type: fastcgi
    instances: [%q]
    root: %q
    max_conns: auto
    max_conns_fallback: 1
    keepalive: auto
    queue_size: 64
    health: {status_path: /fpm-status, interval: 200ms, timeout: 2s}
`, ops, scgi, addr, root), scgi, ops)
	front := nginxSCGI(t, scgi)

	in := capacityWait(t, ops, "capacity 3 learned", 15*time.Second, func(in capacityInstance) bool {
		return in.Capacity == 3 && in.MaxConns == 3
	})
	if in.CapacitySource != "status page" || in.Source != "static" || in.IdleWorkers == nil || !strings.Contains(in.CapacityStatus, "3 from status page") {
		t.Errorf("instance = %+v", in)
	}

	load := capacityStartLoad("http://"+front+"/slow.php", 8)
	// Traffic flows with the learned bound before the reload.
	if !waitFor(10*time.Second, func() bool { return load.ok.Load() >= 40 }) {
		ok, fail, errs := load.end()
		t.Fatalf("under load before the reload: %d ok, %d failed: %v", ok, fail, errs)
	}
	// Under keep-alive load php-fpm's own worker counters drift far past
	// pm.max_children between its once-a-second corrections: the capacity
	// must stay 3 all the same.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if in := capacityStatus(t, ops); in.Capacity != 3 || in.MaxConns != 3 || in.InFlight > 3 {
			t.Errorf("under load: capacity %d, max_conns %d, in flight %d; want 3, 3, at most 3", in.Capacity, in.MaxConns, in.InFlight)
		}
	}
	if n := load.fail.Load(); n != 0 {
		ok, fail, errs := load.end()
		t.Fatalf("with capacity 3 and 8 clients: %d ok, %d failed: %v", ok, fail, errs)
	}
	before := load.ok.Load()

	pool.Children = 5
	if _, err := pool.Write(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(fpm.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	capacityWait(t, ops, "capacity 5 after the reload", 20*time.Second, func(in capacityInstance) bool {
		return in.Capacity == 5 && in.MaxConns == 5
	})
	after := load.ok.Load()
	if !waitFor(10*time.Second, func() bool { return load.ok.Load() >= after+40 }) {
		t.Errorf("the load did not go on after the reload")
	}
	ok, fail, errs := load.end()
	// php-fpm ends its old workers on reload: the requests they were
	// running may fail, nothing else.
	t.Logf("load: %d ok (%d before the reload), %d failed during the reload: %v", ok, before, fail, errs)
	if fail > 8 {
		t.Errorf("%d requests failed, more than were in flight at the reload: %v", fail, errs)
	}
	if out := j.Output(); !strings.Contains(out, "instance capacity") {
		t.Errorf("junction did not log the capacity change:\n%s", tail(out, 4096))
	}
}

// TestCapacityPHPFPMDynamic: with pm = dynamic the status page does not
// tell the capacity: the fallback bounds, and the status page says so.
func TestCapacityPHPFPMDynamic(t *testing.T) {
	t.Parallel()
	_, _, addr, root := capacityFPM(t, "dynamic", 4)
	direct, ops := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: http, address: %q, backend: php}
backends:
  php:
    type: fastcgi
    instances: [%q]
    root: %q
    max_conns: auto
    max_conns_fallback: 2
    health: {status_path: /fpm-status, interval: 200ms}
`, ops, direct, addr, root), direct, ops)
	in := capacityWait(t, ops, "capacity reported unknown", 15*time.Second, func(in capacityInstance) bool {
		return strings.HasPrefix(in.CapacityStatus, "unknown")
	})
	if in.Capacity != 0 || in.MaxConns != 2 || in.CapacitySource != "status page" ||
		!strings.Contains(in.CapacityStatus, "pm = dynamic") || !strings.Contains(in.CapacityStatus, "fallback 2") {
		t.Errorf("instance = %+v", in)
	}
	if r := httpGet(t, "http://"+direct+"/hello.php"); r.Status != 200 || r.Body != "hello\n" {
		t.Errorf("GET hello.php = %d %q", r.Status, r.Body)
	}
	page := httpGet(t, "http://"+ops+"/status")
	if text := visibleText(page.Body); !strings.Contains(text, "unknown (pm = dynamic: php-fpm reports the workers running, not pm.max_children); fallback 2") {
		t.Errorf("the status page does not say the capacity is unknown:\n%s", text)
	}
}

// TestCapacityPHPCGI: php-cgi -b with PHP_FCGI_CHILDREN=4 answers
// FCGI_GET_VALUES with FCGI_MAX_CONNS and FCGI_MAX_REQS 4: without a
// status path that is the capacity.
func TestCapacityPHPCGI(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	root := capacityPHPCGI(t, addr)
	direct, ops := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: http, address: %q, backend: php}
backends:
  php:
    type: fastcgi
    instances: [%q]
    root: %q
    max_conns: auto
    max_conns_fallback: 1
    keepalive: auto
    health: {interval: 200ms}
`, ops, direct, addr, root), direct, ops)
	in := capacityWait(t, ops, "capacity 4 learned", 15*time.Second, func(in capacityInstance) bool {
		return in.Capacity == 4
	})
	if in.MaxConns != 4 || in.CapacitySource != "FCGI_GET_VALUES" || in.IdleWorkers != nil {
		t.Errorf("instance = %+v", in)
	}
	load := capacityStartLoad("http://"+direct+"/slow.php", 6)
	waitFor(10*time.Second, func() bool { return load.ok.Load() >= 30 })
	if ok, fail, errs := load.end(); ok < 30 || fail != 0 {
		t.Errorf("php-cgi under 6 clients with capacity 4: %d ok, %d failed: %v", ok, fail, errs)
	}
}

// capacityPHPCGI starts php-cgi -b addr with PHP_FCGI_CHILDREN=4 (so it
// answers FCGI_GET_VALUES with 4) over a root holding capacityScripts,
// and returns the root.
func capacityPHPCGI(t *testing.T, addr string) string {
	t.Helper()
	const phpCGI = "/usr/bin/php-cgi"
	needBin(t, phpCGI, "php-cgi")
	root := t.TempDir()
	for name, src := range capacityScripts {
		writeFile(t, root, name, src)
	}
	cmd := exec.Command(phpCGI, "-b", addr)
	cmd.Env = []string{"PHP_FCGI_CHILDREN=4", "PHP_FCGI_MAX_REQUESTS=0", "PATH=/usr/bin:/bin"}
	p := startCmd(t, "php-cgi", cmd, 5*time.Second, false)
	waitListening(t, p, 10*time.Second, addr)
	return root
}
