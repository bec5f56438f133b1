package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The test application (testdata/app), built once per run.
var (
	appOnce sync.Once
	appBin  string
	appErr  error
)

func needApp(t testing.TB) string {
	t.Helper()
	appOnce.Do(func() {
		dir, err := os.MkdirTemp("", "junction-app-")
		if err != nil {
			appErr = err
			return
		}
		appBin = filepath.Join(dir, "app")
		out, err := exec.Command(goTool(), "build", "-o", appBin, "./testdata/app").CombinedOutput()
		if err != nil {
			appErr = fmt.Errorf("go build testdata/app: %w\n%s", err, out)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	return appBin
}

// startAppInstance runs one app instance named name on a free port.
func startAppInstance(t testing.TB, name string) (addr string, p *proc) {
	t.Helper()
	bin := needApp(t)
	addr = freeAddr(t)
	p = startCmd(t, "app-"+name, exec.Command(bin, "-addr", addr, "-name", name), 3*time.Second, false)
	waitListening(t, p, 10*time.Second, addr)
	return addr, p
}

// nginxSCGI puts nginx (scgi_pass to junction at scgi) in front and
// returns its HTTP address.
func nginxSCGI(t testing.TB, scgi string) string {
	t.Helper()
	front := freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        client_max_body_size 20m;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass %s;
        }
    }
`, front, scgi))
	return front
}

// loader sends GETs from several goroutines until stopped, counting
// answers by instance name and failures.
type loader struct {
	stop   atomic.Bool
	wg     sync.WaitGroup
	failed atomic.Int64
	mu     sync.Mutex
	seen   map[string]int
	errs   []string
}

func startLoad(t testing.TB, url string, workers int) *loader {
	l := &loader{seen: map[string]int{}}
	client := newHTTPClient(10 * time.Second)
	for range workers {
		l.wg.Go(func() {
			for !l.stop.Load() {
				resp, err := client.Get(url)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
					}
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.seen[strings.Fields(string(body))[0]]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// finish stops the load and returns the answers by name.
func (l *loader) finish(t testing.TB) map[string]int {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed, e.g. %v", n, l.errs)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

// answerer returns who answers a GET of url ("" on failure).
func answerer(url string) string {
	resp, err := newHTTPClient(5 * time.Second).Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func TestPoolRoundRobinThroughNginx(t *testing.T) {
	a1, p1 := startAppInstance(t, "a1")
	a2, _ := startAppInstance(t, "a2")
	scgi := freeAddr(t)
	startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %q, backend: app}
backends:
  app: {type: http, instances: [%q, %q], balance: round_robin}
`, scgi, a1, a2), scgi)
	url := "http://" + nginxSCGI(t, scgi)

	t.Run("spread", func(t *testing.T) {
		seen := map[string]int{}
		for range 40 {
			r := httpGet(t, url+"/hello")
			if r.Status != 200 {
				t.Fatalf("GET = %d %s", r.Status, r.Body)
			}
			seen[strings.Fields(r.Body)[0]]++
		}
		if seen["a1"] != 20 || seen["a2"] != 20 {
			t.Errorf("round robin = %v, want 20 each", seen)
		}
	})
	t.Run("post sha256", func(t *testing.T) {
		for _, n := range []int{0, 1, 70000, 3 << 20} {
			body := bytes.Repeat([]byte("junction-pool!"), n/14+1)[:n]
			sum := sha256.Sum256(body)
			req, err := http.NewRequest(http.MethodPost, url+"/upload", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r := httpDo(t, req)
			want := fmt.Sprintf("%d %s", n, hex.EncodeToString(sum[:]))
			if r.Status != 200 || !strings.Contains(r.Body, want) {
				t.Errorf("POST %d bytes = %d %q, want %q", n, r.Status, r.Body, want)
			}
		}
	})
	t.Run("kill one under load", func(t *testing.T) {
		l := startLoad(t, url+"/load", 6)
		time.Sleep(300 * time.Millisecond)
		if err := syscall.Kill(-p1.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		seen := l.finish(t)
		if seen["a1"] == 0 || seen["a2"] == 0 {
			t.Errorf("answers = %v, want both before the kill", seen)
		}
		t.Logf("answers: %v", seen)
	})
}

// appPids returns the pids of running test-app processes named name.
func appPids(name string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && args[0] == appBin && strings.Contains(string(b), "\x00-name\x00"+name+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestSpawnedPoolRestartsKilledInstance(t *testing.T) {
	bin := needApp(t)
	scgi, httpAddr := freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %q, backend: app}
  - {protocol: http, address: %q, backend: app}
backends:
  app:
    type: http
    spawn: {command: [%q, -addr, "127.0.0.1:{port}", -name, "sp{index}"], count: 2, restart_base: 50ms}
`, scgi, httpAddr, bin), scgi, httpAddr)
	url := "http://" + httpAddr + "/x"
	if !waitFor(10*time.Second, func() bool { return answerer(url) == "sp0" || answerer(url) == "sp1" }) {
		t.Fatalf("spawned pool does not answer; junction log:\n%s", j.Output())
	}
	pids := appPids("sp0")
	if len(pids) != 1 {
		t.Fatalf("sp0 processes: %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ok := waitFor(10*time.Second, func() bool {
		p := appPids("sp0")
		return len(p) == 1 && p[0] != pids[0] && strings.Contains(j.Output(), "instance ended, restarting")
	})
	if !ok {
		t.Fatalf("sp0 not restarted; junction log:\n%s", j.Output())
	}
	seen := map[string]bool{}
	waitFor(10*time.Second, func() bool {
		seen[answerer(url)] = true
		return seen["sp0"] && seen["sp1"]
	})
	if !seen["sp0"] || !seen["sp1"] {
		t.Errorf("answers after restart = %v, want sp0 and sp1", seen)
	}
}
