package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak sends JUNCTION_SOAK_REQUESTS (default 100,000) mixed requests
// through the three front protocols (nginx scgi_pass and fastcgi_pass,
// Apache mod_proxy_ajp) to a CGI backend and an HTTP pool: GETs and POSTs,
// scripts that echo their body, and clients that give up on a script that
// hangs. It compares junction's open file descriptors, goroutines, child
// processes and resident memory after a warm-up with the same figures at
// the end, once idle: none may grow beyond noise. It runs only with
// JUNCTION_SOAK=1 (make soak): it takes minutes.
func TestSoak(t *testing.T) {
	if os.Getenv("JUNCTION_SOAK") != "1" {
		t.Skip("the soak runs with JUNCTION_SOAK=1 (make soak)")
	}
	total := 100_000
	if v := os.Getenv("JUNCTION_SOAK_REQUESTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("JUNCTION_SOAK_REQUESTS=%q: want a number ≥ 1000", v)
		}
		total = n
	}
	s := newSite(t)
	dir := t.TempDir()
	app := startEchoInstance(t, filepath.Join(dir, "app.sock"))
	scgiAddr, fcgiAddr, ajpAddr, ops := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`log: {level: error, format: text}
metrics: {address: %[5]q}
listeners:
  - {protocol: scgi, address: %[1]q, backend: scripts}
  - {protocol: fastcgi, address: %[2]q, backend: scripts}
  - {protocol: ajp, address: %[3]q, backend: scripts, secret: %[7]q}
routes:
  - {prefix: /app/, backend: app}
backends:
  scripts: {type: cgi, allow_root: true, root: %[4]q, url_prefix: /cgi-bin/, timeout: 30s, max_concurrent: 64, max_queue: 256}
  app: {type: http, instances: [%[6]q]}
`, scgiAddr, fcgiAddr, ajpAddr, s.Root, ops, app, ajpSecret), scgiAddr, fcgiAddr, ajpAddr, ops)
	nginxS, nginxF := freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    access_log off;
    server {
        listen %s;
        location / { include /etc/nginx/scgi_params; scgi_pass %s; }
    }
    server {
        listen %s;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass %s; }
    }
`, nginxS, scgiAddr, nginxF, fcgiAddr), nginxS, nginxF)
	apache := freeAddr(t)
	startApache(t, ajpModules, fmt.Sprintf(`Listen %[1]s
ProxyPass / ajp://%[2]s/ secret=%[3]s
`, apache, ajpAddr, ajpSecret), apache)
	fronts := []string{"http://" + nginxS, "http://" + nginxF, "http://" + apache}

	pid := j.cmd.Process.Pid
	client := newHTTPClient(30 * time.Second)
	body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	var failed atomic.Int64
	var firstErr sync.Once
	// one sends request i: the mix cycles through the fronts and kinds.
	one := func(i int) {
		front := fronts[i%len(fronts)]
		var req *http.Request
		ctx := context.Background()
		var cancel context.CancelFunc = func() {}
		switch k := (i / len(fronts)) % 20; {
		case k < 8:
			req, _ = http.NewRequest("GET", front+"/cgi-bin/hello.sh?i="+strconv.Itoa(i), nil)
		case k < 10:
			req, _ = http.NewRequest("POST", front+"/cgi-bin/echo-stdin.sh", bytes.NewReader(body))
		case k < 15:
			req, _ = http.NewRequest("GET", front+"/app/get", nil)
		case k < 19:
			req, _ = http.NewRequest("POST", front+"/app/post", bytes.NewReader(body))
		default:
			if i%400 != 0 {
				req, _ = http.NewRequest("GET", front+"/cgi-bin/hello.sh", nil)
				break
			}
			// A client that gives up on a script that hangs: junction
			// must kill it and free everything it held.
			ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
			req, _ = http.NewRequestWithContext(ctx, "GET", front+"/cgi-bin/sleep.sh?soak", nil)
		}
		defer cancel()
		req = req.WithContext(ctx)
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			if err == nil {
				resp.Body.Close()
			}
			return // the abandoned request: no answer expected
		}
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
			case resp.StatusCode != 200:
				err = fmt.Errorf("status %d: %.80q", resp.StatusCode, b)
			case req.Method == "POST" && !bytes.Equal(b, body):
				err = fmt.Errorf("echo of %d bytes came back as %d", len(body), len(b))
			}
		}
		if err != nil {
			failed.Add(1)
			firstErr.Do(func() { t.Errorf("%s %s: %v", req.Method, req.URL, err) })
		}
	}
	run := func(from, to int) {
		const workers = 16
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= to {
						return
					}
					one(i)
				}
			})
		}
		wg.Wait()
	}
	settle := func() soakSample {
		client.CloseIdleConnections()
		// Idle front and instance connections are closed by their idle
		// timeouts; scripts killed for abandoned requests are reaped.
		var smp soakSample
		waitFor(15*time.Second, func() bool {
			smp = takeSoakSample(t, pid, ops)
			return smp.children == 0
		})
		return smp
	}

	warm := total / 10
	start := time.Now()
	run(0, warm)
	before := settle()
	run(warm, total)
	took := time.Since(start)
	after := settle()

	t.Logf("%d requests in %v (%.0f/s), %d failed", total, took.Round(time.Second), float64(total)/took.Seconds(), failed.Load())
	t.Logf("%-22s %10s %10s", "", "after warm-up", "at the end")
	t.Logf("%-22s %10d %10d", "open fds", before.fds, after.fds)
	t.Logf("%-22s %10.0f %10.0f", "goroutines", before.goroutines, after.goroutines)
	t.Logf("%-22s %10d %10d", "threads", before.threads, after.threads)
	t.Logf("%-22s %10d %10d", "child processes", before.children, after.children)
	t.Logf("%-22s %9.1fM %9.1fM", "resident memory", float64(before.rssKiB)/1024, float64(after.rssKiB)/1024)
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed", f, total)
	}
	// Noise: idle connections still open (per listener and pool), the
	// goroutines that serve them, and the heap's high-water mark.
	if after.fds > before.fds+16 {
		t.Errorf("open fds grew from %d to %d", before.fds, after.fds)
	}
	if after.goroutines > before.goroutines+32 {
		t.Errorf("goroutines grew from %.0f to %.0f", before.goroutines, after.goroutines)
	}
	if after.children != 0 {
		t.Errorf("%d child processes left after the run", after.children)
	}
	if after.rssKiB > before.rssKiB*3/2+16<<10 {
		t.Errorf("resident memory grew from %d KiB to %d KiB", before.rssKiB, after.rssKiB)
	}
}

type soakSample struct {
	fds, threads, children int
	rssKiB                 int64
	goroutines             float64
}

// takeSoakSample reads junction's figures: its /proc entries, and the
// goroutine count from its metrics.
func takeSoakSample(t *testing.T, pid int, ops string) soakSample {
	t.Helper()
	var smp soakSample
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	smp.fds = len(fds)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			smp.rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			smp.threads, _ = strconv.Atoi(f[1])
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(st[bytes.LastIndexByte(st, ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			smp.children++
		}
	}
	smp.goroutines = scrape(t, ops).sum("go_goroutines")
	return smp
}
