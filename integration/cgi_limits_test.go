package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The limits suite: per-script resource limits (limits on a cgi backend)
// and per-route overrides (a route's timeout, max_concurrent and limits),
// with real scripts (sh, bash, python3) behind nginx scgi_pass, nginx
// fastcgi_pass and Apache mod_proxy_ajp.

// limitsScripts are the scripts of the suite, by path under the root.
var limitsScripts = map[string]string{
	// A CPU loop that never answers.
	"cpu.sh": "#!/bin/sh\nwhile :; do :; done\n",
	// A CPU loop after the head and part of a declared body.
	"cpuhead.sh": "#!/bin/sh\nprintf 'Status: 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 100000\\r\\n\\r\\nstarted\\n'\n" +
		"while :; do :; done\n",
	// Reports, in its response, what its limits let it do.
	"limits.py": `#!/usr/bin/python3
import os, signal, sys
print("Content-Type: text/plain\n", flush=True)
mode = os.environ.get("QUERY_STRING", "")
if mode == "alloc":
    try:
        b = bytearray(256 << 20)
        print("allocated", len(b))
    except MemoryError:
        print("MemoryError: 256 MiB refused")
elif mode == "files":
    fds = []
    try:
        while len(fds) < 10000:
            fds.append(os.open("/dev/null", os.O_RDONLY))
        print("opened", len(fds))
    except OSError as e:
        print("opened", len(fds), "then", e.strerror)
elif mode == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path = os.path.join(os.environ["LIMITS_DATA"], "big-%d" % os.getpid())
    try:
        with open(path, "wb") as f:
            f.write(b"x" * (2 << 20))
        print("wrote 2 MiB")
    except OSError as e:
        print("write failed:", e.strerror)
    finally:
        os.unlink(path)
elif mode == "nice":
    print("nice", os.nice(0))
`,
	// A fork bomb: every copy starts two more; the script itself goes
	// on starting copies until it is killed.
	"bomb.sh": "#!/bin/bash\nb() { b | b & }\nwhile :; do b; sleep 0.05; done\n",
	// Answers at once.
	"hello.sh": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n",
	// Sleeps QUERY_STRING seconds, then answers.
	"sleep.sh": "#!/bin/sh\nsleep \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslept\\n'\n",
	// Marks that it started, then waits for the test's gate file.
	"gate.sh": "#!/bin/sh\ntouch \"$LIMITS_DATA/started\"\nwhile [ ! -e \"$LIMITS_DATA/gate\" ]; do sleep 0.02; done\n" +
		"printf 'Content-Type: text/plain\\r\\n\\r\\nthrough the gate\\n'\n",
}

// limitsSite writes limitsScripts into a root that every user can read,
// also under the subdirectories given (for routes), and returns the root
// and a data directory every user may write.
func limitsSite(t *testing.T, subdirs ...string) (root, data string) {
	t.Helper()
	dir := openTempDir(t)
	root, data = filepath.Join(dir, "cgi-bin"), filepath.Join(dir, "data")
	for _, d := range append([]string{root, data}, subdirs...) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if d == data {
			if err := os.Chmod(d, 0o1777); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for name, body := range limitsScripts {
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root, data
}

// limitsNeedRoot skips what needs root (creating a user, running scripts
// as it).
func limitsNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a user for the scripts")
	}
}

// limitsUser creates a system user for the test's scripts and removes it
// at the end, after killing whatever still runs as it.
func limitsUser(t *testing.T) (name string, uid int) {
	t.Helper()
	needBin(t, "/usr/sbin/useradd", "passwd")
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	name = "jlim" + hex.EncodeToString(rnd[:])
	if out, err := exec.Command("/usr/sbin/useradd", "-M", "-N", "-r", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	t.Cleanup(func() {
		// kill -1 sent as the user reaches exactly the user's processes.
		kill := exec.Command("/bin/kill", "-KILL", "-1")
		kill.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: 65534}}
		_ = kill.Run() // fails with nothing to kill, which is the usual case
		waitFor(10*time.Second, func() bool { return limitsCountUID(uid) == 0 })
		if out, err := exec.Command("/usr/sbin/userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	return name, uid
}

// limitsCountUID counts the live tasks (processes and threads, as
// RLIMIT_NPROC does) whose real user id is uid.
func limitsCountUID(uid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var real, threads int
		var state string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "Uid:":
				real, _ = strconv.Atoi(f[1])
			case len(f) >= 2 && f[0] == "Threads:":
				threads, _ = strconv.Atoi(f[1])
			case len(f) >= 2 && f[0] == "State:":
				state = f[1]
			}
		}
		if real == uid && state != "Z" {
			n += threads
		}
	}
	return n
}

// limitsGet GETs url and returns the status and body, or the error that
// cut the body short.
func limitsGet(url string) (int, string, error) {
	c := newHTTPClient(30 * time.Second)
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestLimitsCPU: a CPU loop under cpu: 1s is killed by SIGXCPU, through
// SCGI (nginx), FastCGI (nginx) and AJP (Apache), answered 502, logged
// with the signal and counted in junction_cgi_signals_total; a loop that
// had started its response is cut short, and logged so.
func TestLimitsCPU(t *testing.T) {
	t.Parallel()
	root, _ := limitsSite(t)
	scgiAddr, fcgiAddr, ajpAddr, ops := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q, backend: scripts}
  - {protocol: fastcgi, address: %q, backend: scripts}
  - {protocol: ajp, address: %q, backend: scripts}
metrics: {address: %q}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s, limits: {cpu: 1s}}
`, scgiAddr, fcgiAddr, ajpAddr, ops, root), scgiAddr, fcgiAddr, ajpAddr, ops)
	viaSCGI, viaFCGI, viaAJP := freeAddr(t), freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        location / { include /etc/nginx/scgi_params; scgi_pass %s; }
    }
    server {
        listen %s;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass %s; }
    }
`, viaSCGI, scgiAddr, viaFCGI, fcgiAddr))
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf("Listen %s\nProxyPass /cgi-bin/ ajp://%s/cgi-bin/\n", viaAJP, ajpAddr))

	fronts := map[string]string{"nginx scgi_pass": viaSCGI, "nginx fastcgi_pass": viaFCGI, "Apache mod_proxy_ajp": viaAJP}
	var wg sync.WaitGroup
	for name, addr := range fronts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := limitsGet("http://" + addr + "/cgi-bin/cpu.sh")
			if err != nil || status != http.StatusBadGateway {
				t.Errorf("%s: cpu.sh = %d %q, %v; want 502", name, status, body, err)
			}
		}()
	}
	wg.Wait()

	// The head went out: the client sees the declared length cut short.
	status, body, err := limitsGet("http://" + viaSCGI + "/cgi-bin/cpuhead.sh")
	if status != http.StatusOK || !strings.HasPrefix(body, "started\n") || err == nil {
		t.Errorf("cpuhead.sh = %d %q, %v; want 200, the start of the body, then an unexpected EOF", status, body, err)
	}

	// A script without a CPU-heavy life is unaffected.
	if status, body, err := limitsGet("http://" + viaSCGI + "/cgi-bin/hello.sh"); err != nil || status != 200 || body != "hello\n" {
		t.Errorf("hello.sh = %d %q, %v", status, body, err)
	}

	want := len(fronts) + 1
	var got float64
	if !waitFor(10*time.Second, func() bool {
		got = scrape(t, ops).sum("junction_cgi_signals_total", `backend="scripts"`, `signal="SIGXCPU"`)
		return got >= float64(want)
	}) {
		t.Errorf("junction_cgi_signals_total{signal=SIGXCPU} = %v, want %d", got, want)
	}
	logs := j.Output()
	if n := strings.Count(logs, "cgi: script killed by its limit before any output"); n != len(fronts) {
		t.Errorf("%d log lines of scripts killed before output, want %d:\n%s", n, len(fronts), logs)
	}
	if !strings.Contains(logs, "limit=cpu") || !strings.Contains(logs, "signal: SIGXCPU") {
		t.Errorf("log does not name the limit and the signal:\n%s", logs)
	}
	if !strings.Contains(logs, "killed by its limit after its response started; the response is cut short") {
		t.Errorf("no log of the cut response:\n%s", logs)
	}
}

// TestLimitsInsideScripts: memory, open_files and file_size fail inside
// a python3 script, which reports it, and nice is the script's niceness;
// through nginx scgi_pass.
func TestLimitsInsideScripts(t *testing.T) {
	t.Parallel()
	needBin(t, "/usr/bin/python3", "python3")
	root, data := limitsSite(t)
	addr := freeAddr(t)
	startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts:
    type: cgi
    allow_root: true
    root: %q
    url_prefix: /cgi-bin/
    set_env: {LIMITS_DATA: %q}
    limits: {memory: 128MiB, open_files: 32, file_size: 1MiB, nice: 7}
`, addr, root, data), addr)
	front := nginxSCGI(t, addr)
	for query, want := range map[string]string{
		"alloc": "MemoryError: 256 MiB refused\n",
		"files": "then Too many open files\n",
		"fsize": "write failed: File too large\n",
		"nice":  "nice 7\n",
	} {
		status, body, err := limitsGet("http://" + front + "/cgi-bin/limits.py?" + query)
		if err != nil || status != 200 || !strings.HasSuffix(body, want) {
			t.Errorf("limits.py?%s = %d %q, %v; want it to end %q", query, status, body, err, want)
		}
		if query == "files" {
			// Below 32, less what python3 has open at start.
			var n int
			if _, err := fmt.Sscanf(body, "opened %d", &n); err != nil || n < 10 || n >= 32 {
				t.Errorf("opened %d files (%v), want fewer than 32", n, err)
			}
		}
	}
}

// TestLimitsForkBomb: a fork bomb under processes: 20, running as a user
// the test creates, never has more than 20 tasks; the backend's timeout
// ends it and every process of it is gone afterwards; meanwhile other
// scripts are served.
func TestLimitsForkBomb(t *testing.T) {
	limitsNeedRoot(t)
	needBin(t, "/bin/bash", "bash")
	t.Parallel()
	name, uid := limitsUser(t)
	root, _ := limitsSite(t)
	addr := freeAddr(t)
	startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q}
routes:
  - {prefix: /bomb/, backend: bomb}
  - {prefix: /cgi-bin/, backend: scripts}
backends:
  bomb: {type: cgi, user: %q, root: %q, url_prefix: /bomb/, timeout: 3s, limits: {processes: 20}}
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/}
`, addr, name, root, root), addr)
	front := nginxSCGI(t, addr)

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, _, err := limitsGet("http://" + front + "/bomb/bomb.sh")
		done <- result{status, err}
	}()
	// The sampler counts the user's tasks while the bomb runs; the test
	// goroutine meanwhile sends requests to other scripts.
	stop := make(chan struct{})
	peakc := make(chan int, 1)
	go func() {
		peak := 0
		for {
			peak = max(peak, limitsCountUID(uid))
			select {
			case <-stop:
				peakc <- peak
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	served := 0
	var res result
	for finished := false; !finished; {
		select {
		case res = <-done:
			finished = true
		case <-time.After(20 * time.Millisecond):
			if served < 3 {
				if status, body, err := limitsGet("http://" + front + "/cgi-bin/hello.sh"); err == nil && status == 200 && body == "hello\n" {
					served++
				}
			}
		}
	}
	close(stop)
	peak := <-peakc
	t.Logf("the bomb's user peaked at %d tasks; %d other requests served meanwhile", peak, served)
	if res.err != nil || res.status != http.StatusGatewayTimeout {
		t.Errorf("bomb.sh = %d, %v; want 504 from the backend's timeout", res.status, res.err)
	}
	if peak < 10 || peak > 20 {
		t.Errorf("the bomb's user had at most %d tasks; want it to multiply up to its limit of 20 and never pass it", peak)
	}
	if served < 3 {
		t.Errorf("only %d other requests served during the bomb", served)
	}
	if !waitFor(10*time.Second, func() bool { return limitsCountUID(uid) == 0 }) {
		t.Errorf("%d tasks of the bomb's user left after its request ended", limitsCountUID(uid))
	}
}

// TestLimitsRouteOverrides: routes with their own timeout and
// max_concurrent on one cgi backend, through nginx scgi_pass.
func TestLimitsRouteOverrides(t *testing.T) {
	t.Parallel()
	root, data := limitsSite(t, "slow", "one")
	addr := freeAddr(t)
	startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q, backend: scripts}
routes:
  - {prefix: /cgi-bin/slow/, backend: scripts, timeout: 1s}
  - {prefix: /cgi-bin/one/, backend: scripts, max_concurrent: 1, limits: {nice: 3}}
backends:
  scripts:
    type: cgi
    allow_root: true
    root: %q
    url_prefix: /cgi-bin/
    timeout: 30s
    max_concurrent: 8
    queue_timeout: 300ms
    set_env: {LIMITS_DATA: %q}
`, addr, root, data), addr)
	front := nginxSCGI(t, addr)
	url := func(p string) string { return "http://" + front + "/cgi-bin/" + p }

	// The route's timeout ends its script; the same script elsewhere
	// has the backend's.
	if status, _, err := limitsGet(url("slow/sleep.sh?3")); err != nil || status != http.StatusGatewayTimeout {
		t.Errorf("slow/sleep.sh?3 = %d, %v; want 504 after the route's 1s", status, err)
	}
	if status, body, err := limitsGet(url("sleep.sh?2")); err != nil || status != 200 || body != "slept\n" {
		t.Errorf("sleep.sh?2 = %d %q, %v; want 200 within the backend's 30s", status, body, err)
	}

	// The route's one slot: a second request waits, then gets 503,
	// while the backend serves the rest.
	first := make(chan string, 1)
	go func() {
		status, body, err := limitsGet(url("one/gate.sh"))
		first <- fmt.Sprint(status, " ", body, err)
	}()
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(filepath.Join(data, "started")); return err == nil }) {
		t.Fatal("one/gate.sh never started")
	}
	if status, _, err := limitsGet(url("one/hello.sh")); err != nil || status != http.StatusServiceUnavailable {
		t.Errorf("second request on the route = %d, %v; want 503", status, err)
	}
	if status, body, err := limitsGet(url("hello.sh")); err != nil || status != 200 || body != "hello\n" {
		t.Errorf("hello.sh outside the route = %d %q, %v", status, body, err)
	}
	writeFile(t, data, "gate", "")
	if got := <-first; got != "200 through the gate\n<nil>" {
		t.Errorf("one/gate.sh = %q", got)
	}
	if status, body, err := limitsGet(url("one/limits.py?nice")); err != nil || status != 200 || body != "nice 3\n" {
		t.Errorf("route limits: one/limits.py?nice = %d %q, %v; want nice 3", status, body, err)
	}
	// nginx resolves "//", "." and ".." for DOCUMENT_URI, which names the
	// script; REQUEST_URI keeps them. The route is the script's all the
	// same.
	for _, p := range []string{"/one/limits.py?nice", "./one/limits.py?nice", "x/../one/limits.py?nice"} {
		if status, body, err := limitsGet(url(p)); err != nil || status != 200 || body != "nice 3\n" {
			t.Errorf("route limits: %s = %d %q, %v; want nice 3", p, status, body, err)
		}
	}
}

// TestLimitsCheck: junction check names the key of each limits problem
// that the file alone does not show.
func TestLimitsCheck(t *testing.T) {
	t.Parallel()
	root, _ := limitsSite(t)
	for _, tt := range []struct {
		backend, want string
	}{
		// Runs as root: RLIMIT_NPROC would not bind.
		{`{type: cgi, allow_root: true, root: %q, limits: {processes: 10}}`, "backends.scripts.limits.processes: needs the backend's user"},
		{`{type: cgi, allow_root: true, root: %q, limits: {memory: 64M}}`, `backends.scripts.limits.memory: "64M" is not a size`},
	} {
		cfg := writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf("listeners:\n  - {protocol: scgi, address: %q, backend: scripts}\nbackends:\n  scripts: "+tt.backend+"\n",
			freeAddr(t), root))
		out, err := junctionCommand(t, "check", "-c", cfg).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("check: %v\n%s\nwant %q", err, out, tt.want)
		}
	}
}

// TestLimitsInetd: `junction inetd` starts scripts with limits too, as
// junction's own user (the ptrace handshake) and as another one (where
// junction lacks CAP_SYS_RESOURCE, as in a default Docker container,
// through the limit helper: the inetd process re-executed).
func TestLimitsInetd(t *testing.T) {
	limitsNeedRoot(t)
	needBin(t, "/usr/bin/python3", "python3")
	t.Parallel()
	name, _ := limitsUser(t)
	root, _ := limitsSite(t)
	for _, tt := range []struct{ who, user string }{{"as junction", "allow_root: true"}, {"as another user", "user: " + name}} {
		cfg := writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, %s, root: %q, url_prefix: /cgi-bin/, limits: {open_files: 40, nice: 4}}
`, freeAddr(t), tt.user, root))
		for query, want := range map[string]string{"nice": "nice 4\n", "files": "then Too many open files\n"} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan scgiResult, 1)
			go func() {
				ft := &fatalRecorder{TB: t}
				defer func() { done <- ft.res }()
				defer ft.recover()
				ft.res = scgiDo(ft, l.Addr().String(), scgiRequest("GET", "/cgi-bin/limits.py?"+query, 0), nil)
			}()
			p := serveInetd(t, l, cfg)
			var r scgiResult
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: no SCGI reply from junction inetd in 20s", tt.who)
			}
			if r.Status != 200 || !strings.HasSuffix(r.Body, want) {
				t.Errorf("%s: limits.py?%s = %d %q, want it to end %q", tt.who, query, r.Status, r.Body, want)
			}
			waitExit(t, p, 10*time.Second)
			l.Close()
		}
	}
}
