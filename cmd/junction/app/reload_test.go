package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/config"
)

// named answers every request with its name.
func named(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func parse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestPoolRoundRobinAndReload(t *testing.T) {
	a1, a2, b1 := named(t, "a1"), named(t, "a2"), named(t, "b1")
	cfg := parse(t, fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: "127.0.0.1:0", backend: app}
backends:
  app: {type: http, instances: [%q, %q], balance: round_robin}
`, a1, a2))
	a, _, _ := startApp(t, cfg)
	url := "http://" + a.Addrs()[0].String()
	seen := map[string]int{}
	for range 10 {
		code, body := get(t, url+"/x")
		if code != 200 {
			t.Fatalf("GET = %d %q", code, body)
		}
		seen[strings.Fields(body)[0]]++
	}
	if seen["a1"] != 5 || seen["a2"] != 5 {
		t.Errorf("round robin spread = %v, want 5 each", seen)
	}
	if p := a.Pools()["app"]; p == nil || len(p.Snapshot().Instances) != 2 {
		t.Fatalf("Pools() = %v", a.Pools())
	}
	v1 := a.ConfigVersion()

	// Under load, switch the listener to a new pool and add a route.
	var stop atomic.Bool
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := http.Get(url + "/x")
				if err != nil {
					t.Log(err)
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Log(resp.Status)
					failed.Add(1)
				}
			}
		})
	}
	next := parse(t, fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: %q, backend: other}
routes:
  - {prefix: /a/, backend: app}
backends:
  app: {type: http, instances: [%q]}
  other: {type: http, instances: [%q], strip_prefix: /x}
`, a.Addrs()[0].String(), a1, b1))
	if err := a.Reload(next); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed across the reload", n)
	}
	if _, body := get(t, url+"/x"); body != "b1 /" {
		t.Errorf("after reload GET /x = %q, want b1 /", body)
	}
	for range 3 {
		if _, body := get(t, url+"/a/1"); body != "a1 /a/1" {
			t.Errorf("after reload GET /a/1 = %q, want a1 only", body)
		}
	}
	if a.ConfigVersion() == v1 {
		t.Error("config version did not change")
	}
}

func TestReloadBadConfigKeepsServing(t *testing.T) {
	a1 := named(t, "a1")
	cfg := parse(t, fmt.Sprintf(`
listeners:
  - {protocol: http, address: "127.0.0.1:0", backend: app}
backends:
  app: {type: http, instances: [%q]}
`, a1))
	a, _, _ := startApp(t, cfg)
	url := "http://" + a.Addrs()[0].String()
	get(t, url+"/") // Run is serving
	// Valid as a file, but the second listener cannot bind: the address
	// is taken by the first.
	bad := parse(t, fmt.Sprintf(`
listeners:
  - {protocol: http, address: %q, backend: app}
  - {protocol: scgi, address: %q, backend: gone}
backends:
  app: {type: http, instances: [%q]}
  gone: {type: cgi, root: /nonexistent-junction-dir}
`, a.Addrs()[0].String(), a1, a1))
	if err := a.Reload(bad); err == nil {
		t.Fatal("Reload succeeded; want an error")
	}
	if code, body := get(t, url+"/y"); code != 200 || body != "a1 /y" {
		t.Errorf("after failed reload GET = %d %q", code, body)
	}
	if a.ConfigVersion() != cfg.Version {
		t.Error("failed reload changed the config version")
	}
}

func TestReloadRestartsChangedListenerOnSameSocket(t *testing.T) {
	a1 := named(t, "a1")
	cfg := parse(t, fmt.Sprintf(`
listeners:
  - {protocol: http, address: "127.0.0.1:0", backend: app}
backends:
  app: {type: http, instances: [%q]}
`, a1))
	a, _, _ := startApp(t, cfg)
	addr := a.Addrs()[0].String()
	if code, _ := get(t, "http://"+addr+"/"); code != 200 { // Run is serving
		t.Fatalf("GET = %d", code)
	}
	next := parse(t, fmt.Sprintf(`
listeners:
  - {protocol: http, address: %q, backend: app, idle_timeout: 5s}
  - {protocol: http, address: "127.0.0.1:0", backend: app}
backends:
  app: {type: http, instances: [%q]}
`, addr, a1))
	if err := a.Reload(next); err != nil {
		t.Fatal(err)
	}
	addrs := a.Addrs()
	if len(addrs) != 2 || addrs[0].String() != addr {
		t.Fatalf("Addrs after reload = %v, want %s first", addrs, addr)
	}
	for _, ad := range addrs {
		if code, body := get(t, "http://"+ad.String()+"/z"); code != 200 || body != "a1 /z" {
			t.Errorf("GET on %s = %d %q", ad, code, body)
		}
	}
	// Dropping the second listener closes its socket.
	if err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if !waitClosed(addrs[1].String()) {
		t.Errorf("removed listener %s still accepts", addrs[1])
	}
}

func waitClosed(addr string) bool {
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
