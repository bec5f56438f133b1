package integration

// App pools behind real peers other than nginx's scgi_pass to an HTTP pool
// (pools_test.go): Apache mod_proxy_ajp in front of an HTTP pool, and a
// FastCGI pool of a real php-fpm, through nginx scgi_pass and junction's
// own http listener.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/backends/fastcgi/fpmtest"
)

// TestPoolBehindApacheAJP is Apache (mod_proxy_ajp) → junction (AJP
// listener) → an HTTP pool of two test-app instances.
func TestPoolBehindApacheAJP(t *testing.T) {
	a1, _ := startAppInstance(t, "a1")
	a2, _ := startAppInstance(t, "a2")
	ajp, front := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: ajp, address: %q, backend: app}
backends:
  app: {type: http, instances: [%q, %q], balance: round_robin}
`, ajp, a1, a2), ajp)
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf(`Listen %s
LimitRequestBody 0
ProxyPass / ajp://%s/
`, front, ajp), front)
	url := func(target string) string { return "http://" + front + target }

	t.Run("round robin", func(t *testing.T) {
		seen := map[string]int{}
		for i := range 20 {
			r := httpGet(t, url(fmt.Sprintf("/hello/%d", i)))
			want := fmt.Sprintf(" /hello/%d\n", i)
			if r.Status != 200 || !strings.HasSuffix(r.Body, want) {
				t.Fatalf("GET /hello/%d = %d %q, want a name then %q", i, r.Status, r.Body, want)
			}
			seen[strings.Fields(r.Body)[0]]++
		}
		if seen["a1"] != 10 || seen["a2"] != 10 {
			t.Errorf("answers = %v, want 10 from each of a1 and a2", seen)
		}
	})

	t.Run("post sha256", func(t *testing.T) {
		for _, n := range []int{1 << 20, 3<<20 - 17} {
			body := make([]byte, n)
			rand.Read(body)
			sum := sha256.Sum256(body)
			req, err := http.NewRequest(http.MethodPost, url("/upload"), bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r := httpDo(t, req)
			want := fmt.Sprintf(" %d %s\n", n, hex.EncodeToString(sum[:]))
			if r.Status != 200 || !strings.HasSuffix(r.Body, want) {
				t.Errorf("POST %d bytes = %d %q, want a name then %q", n, r.Status, r.Body, want)
			}
		}
	})

	t.Run("request headers", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, url("/headers"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Junction-Test", "value with spaces, commas; and=signs")
		// A client may not choose the scheme the application sees.
		req.Header.Set("X-Forwarded-Proto", "https")
		r := httpDo(t, req)
		if r.Status != 200 {
			t.Fatalf("GET /headers = %d %q", r.Status, r.Body)
		}
		got := headerLines(r.Body)
		want := map[string]string{
			"X-Junction-Test":   "value with spaces, commas; and=signs",
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  front,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q\n%s", k, got[k], v, r.Body)
			}
		}
	})

	t.Run("ajp connection reuse", func(t *testing.T) {
		port := ajp[strings.LastIndexByte(ajp, ':')+1:]
		before := ajpConnections(t, port)
		c := newHTTPClient(10 * time.Second)
		defer c.CloseIdleConnections()
		for i := range 100 {
			resp, err := c.Get(url(fmt.Sprintf("/reuse?i=%d", i)))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
		after := ajpConnections(t, port)
		t.Logf("AJP socket entries: %d before, %d after 100 requests", before, after)
		// A new AJP connection per request would leave 100 entries
		// (ESTABLISHED or TIME_WAIT) behind.
		if after-before > 10 {
			t.Errorf("%d → %d AJP socket entries after 100 requests: Apache does not reuse its AJP connections", before, after)
		}
	})
}

// headerLines parses the test app's /headers answer ("Name: value" lines
// after the first).
func headerLines(body string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n")[1:] {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}

// phpFPMBin is php-fpm as Debian's php8.2-fpm installs it.
const phpFPMBin = fpmtest.Bin

// phpPoolScripts are the scripts of the php-fpm pool tests.
var phpPoolScripts = map[string]string{
	"hello.php":    `<?php header("Content-Type: text/plain; charset=utf-8"); echo "Hello from php-fpm\n";`,
	"post.php":     `<?php echo hash('sha256', file_get_contents('php://input'));`,
	"nostatus.php": `<?php echo "no status here\n";`,
	"server.php": `<?php header("Content-Type: text/plain");
foreach (["PATH_INFO", "QUERY_STRING", "SCRIPT_NAME", "SCRIPT_FILENAME", "REQUEST_METHOD", "REQUEST_URI", "DOCUMENT_ROOT"] as $k) {
	echo $k, "=", $_SERVER[$k] ?? "(unset)", "\n";
}
echo "GET_x=", $_GET["x"] ?? "(unset)", "\n";`,
}

// startPHPFPM runs php-fpm with a pool of two workers listening on a Unix
// socket in a temp dir, serving scripts from a fresh document root. It
// returns the instance address ("unix:/…") and the root. maxRequests is
// pm.max_requests (0: workers never exit).
func startPHPFPM(t *testing.T, maxRequests int) (addr, root string) {
	t.Helper()
	needBin(t, phpFPMBin, "php8.2-fpm")
	dir := t.TempDir()
	root = filepath.Join(dir, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range phpPoolScripts {
		writeFile(t, root, name, src)
	}
	pool := fpmtest.Pool{Dir: dir, Name: "junction", Children: 2, MaxRequests: maxRequests}
	sock := pool.Socket()
	args, err := pool.Write()
	if err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, phpFPMBin, args, pool.Log(), pool.Config())
	if !waitFor(10*time.Second, func() bool {
		_, err := os.Stat(sock)
		return err == nil || p.Exited()
	}) || p.Exited() {
		p.dump(t)
		t.Fatalf("php-fpm did not create %s (exited: %v)", sock, p.Exited())
	}
	return "unix:" + sock, root
}

// TestPHPFPMPool runs real PHP scripts in php-fpm through a fastcgi pool:
// nginx scgi_pass → junction (SCGI listener) → php-fpm, and junction's
// http listener → php-fpm.
func TestPHPFPMPool(t *testing.T) {
	fpm, root := startPHPFPM(t, 0)
	scgi, direct := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %q, backend: php}
  - {protocol: http, address: %q, backend: php}
routes:
  - {prefix: /php/, backend: php}
backends:
  php: {type: fastcgi, instances: [%q], root: %q, strip_prefix: /php}
`, scgi, direct, fpm, root), scgi, direct)
	front := nginxSCGI(t, scgi)

	for _, f := range []struct{ name, addr string }{{"nginx scgi", front}, {"http listener", direct}} {
		url := func(target string) string { return "http://" + f.addr + target }
		t.Run(f.name+"/hello", func(t *testing.T) {
			r := httpGet(t, url("/php/hello.php"))
			if r.Status != 200 || r.Body != "Hello from php-fpm\n" {
				t.Fatalf("GET hello.php = %d %q", r.Status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}

	url := func(target string) string { return "http://" + front + target }

	t.Run("post sha256", func(t *testing.T) {
		body := make([]byte, 1<<20)
		rand.Read(body)
		sum := sha256.Sum256(body)
		req, err := http.NewRequest(http.MethodPost, url("/php/post.php"), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r := httpDo(t, req)
		if want := hex.EncodeToString(sum[:]); r.Status != 200 || r.Body != want {
			t.Fatalf("POST 1 MiB = %d %q, want %q", r.Status, r.Body, want)
		}
	})

	t.Run("status", func(t *testing.T) {
		for _, tt := range []struct {
			target string
			status int
			body   string
		}{
			{"/php/nostatus.php", 200, "no status here\n"},
			{"/php/missing.php", 404, ""},
			{"/php/sub/missing.php/x", 404, ""},
		} {
			r := httpGet(t, url(tt.target))
			if r.Status != tt.status || tt.body != "" && r.Body != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.target, r.Status, r.Body, tt.status, tt.body)
			}
		}
	})

	t.Run("path info and query", func(t *testing.T) {
		r := httpGet(t, url("/php/server.php/a%20b/c?x=1&y=%2F"))
		if r.Status != 200 {
			t.Fatalf("GET server.php = %d %q", r.Status, r.Body)
		}
		env := envOf(r.Body)
		want := map[string]string{
			"PATH_INFO":       "/a b/c",
			"QUERY_STRING":    "x=1&y=%2F",
			"SCRIPT_NAME":     "/php/server.php",
			"SCRIPT_FILENAME": filepath.Join(root, "server.php"),
			"REQUEST_METHOD":  "GET",
			"REQUEST_URI":     "/php/server.php/a%20b/c?x=1&y=%2F",
			"DOCUMENT_ROOT":   root,
			"GET_x":           "1",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
	})
}

// TestPHPFPMPoolKeepAlive keeps connections to php-fpm (keepalive, as
// nginx's fastcgi_keep_conn does) under load from four clients through
// nginx scgi_pass, with active health checks that fail at once (fall 1):
//   - recycled workers: both workers exit every seven requests
//     (pm.max_requests), closing kept connections under junction's feet;
//   - held workers: no worker ever exits, junction's kept connections
//     hold both, and a health check's new connection needs one of them
//     set free.
//
// Every request succeeds, POST bodies arrive whole, and the instance is
// never taken out of rotation (with the health check's connection left in
// php-fpm's accept queue, it was, in the second case).
func TestPHPFPMPoolKeepAlive(t *testing.T) {
	for _, tt := range []struct {
		name        string
		maxRequests int
		posts       bool
	}{{"recycled workers", 7, true}, {"held workers", 0, false}} {
		t.Run(tt.name, func(t *testing.T) {
			fpm, root := startPHPFPM(t, tt.maxRequests)
			scgi := freeAddr(t)
			j := startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %q, backend: php}
backends:
  php:
    type: fastcgi
    instances: [%q]
    root: %q
    strip_prefix: /php
    keepalive: 2
    max_conns: 2
    health: {interval: 50ms, timeout: 500ms, fall: 1}
`, scgi, fpm, root), scgi)
			front := nginxSCGI(t, scgi)
			keepAliveLoad(t, front, 1500*time.Millisecond, tt.posts)
			// With one instance, the pool still tries it while it is down:
			// the log tells.
			if out := j.proc.Output(); strings.Contains(out, "instance down") {
				t.Errorf("the instance was taken out of rotation:\n%s", out)
			}
		})
	}
}

// keepAliveLoad runs four clients against front for d: GETs of hello.php,
// and with posts every tenth request of the first client a 64 KiB POST.
func keepAliveLoad(t *testing.T, front string, d time.Duration, posts bool) {
	t.Helper()
	var g errgroup.Group
	end := time.Now().Add(d)
	for c := range 4 {
		g.Go(func() error {
			for i := 0; time.Now().Before(end); i++ {
				if posts && c == 0 && i%10 == 0 {
					body := bytes.Repeat([]byte{byte(i)}, 64<<10)
					sum := sha256.Sum256(body)
					req, err := http.NewRequest(http.MethodPost, "http://"+front+"/php/post.php", bytes.NewReader(body))
					if err != nil {
						return err
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return err
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if want := hex.EncodeToString(sum[:]); err != nil || resp.StatusCode != 200 || string(got) != want {
						return fmt.Errorf("POST %d: %d %q %v", i, resp.StatusCode, got, err)
					}
					continue
				}
				resp, err := http.Get("http://" + front + "/php/hello.php")
				if err != nil {
					return err
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(got) != "Hello from php-fpm\n" {
					return fmt.Errorf("client %d, GET %d: %d %q %v", c, i, resp.StatusCode, got, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
