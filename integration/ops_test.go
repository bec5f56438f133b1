package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metricsSample is one scrape of /metrics: series ("name{labels}") to
// value.
type metricsSample map[string]float64

// scrape reads junction's /metrics in the Prometheus text format.
func scrape(t testing.TB, addr string) metricsSample {
	t.Helper()
	r := httpGet(t, "http://"+addr+"/metrics")
	if r.Status != 200 {
		t.Fatalf("/metrics: %d %s", r.Status, r.Body)
	}
	m := metricsSample{}
	sc := bufio.NewScanner(strings.NewReader(r.Body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds the series of name whose labels contain every one of labels
// (written as in the exposition: `protocol="scgi"`).
func (m metricsSample) sum(name string, labels ...string) float64 {
	total := 0.0
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// statusJSON reads /status.json into a generic map.
func statusJSON(t testing.TB, addr string) map[string]any {
	t.Helper()
	r := httpGet(t, "http://"+addr+"/status.json")
	var s map[string]any
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &s) != nil {
		t.Fatalf("/status.json: %d %s", r.Status, r.Body)
	}
	return s
}

// TestOpsMetricsThroughFrontServers sends real requests through nginx
// (scgi_pass, fastcgi_pass) and Apache (mod_proxy_ajp with ping= and a
// wrong secret) and checks that each protocol's counters moved between two
// scrapes, and that the access log has one line per request.
func TestOpsMetricsThroughFrontServers(t *testing.T) {
	s := newSite(t)
	scgiAddr, fcgiAddr, ajpAddr, ops := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	access := filepath.Join(s.Dir, "access.log")
	j := startJunction(t, fmt.Sprintf(`log: {level: info, access: combined, access_file: %[6]q}
metrics: {address: %[5]q}
listeners:
  - {protocol: scgi, address: %[1]q, backend: scripts}
  - {protocol: fastcgi, address: %[2]q, backend: scripts}
  - {protocol: ajp, address: %[3]q, backend: scripts, secret: %[7]q}
backends:
  scripts: {type: cgi, allow_root: true, root: %[4]q, url_prefix: /cgi-bin/}
`, scgiAddr, fcgiAddr, ajpAddr, s.Root, ops, access, ajpSecret), scgiAddr, fcgiAddr, ajpAddr, ops)
	nginx := freeAddr(t)
	nginxF := freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        location / { include /etc/nginx/scgi_params; scgi_pass %s; }
    }
    server {
        listen %s;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass %s; }
    }
`, nginx, scgiAddr, nginxF, fcgiAddr))
	apache := freeAddr(t)
	startApache(t, ajpModules, fmt.Sprintf(`Listen %[1]s
ProxyPass /cgi-bin/ ajp://%[2]s/cgi-bin/ secret=%[3]s ping=3
ProxyPass /badsecret/ ajp://%[2]s/badsecret/ secret=not-the-secret
`, apache, ajpAddr, ajpSecret), apache)

	before := scrape(t, ops)
	fronts := []struct{ proto, url string }{
		{"scgi", "http://" + nginx},
		{"fastcgi", "http://" + nginxF},
		{"ajp13", "http://" + apache},
	}
	const n = 3
	for _, f := range fronts {
		for range n {
			if r := httpGet(t, f.url+"/cgi-bin/hello.sh"); r.Status != 200 || !strings.HasPrefix(r.Body, "Hello from sh") {
				t.Fatalf("%s: %d %q", f.proto, r.Status, r.Body)
			}
		}
	}
	if r := httpGet(t, "http://"+apache+"/badsecret/hello.sh"); r.Status == 200 {
		t.Errorf("wrong AJP secret answered 200")
	}
	// A front server that is not SCGI: one decode error.
	c, err := net.Dial("tcp", scgiAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET / HTTP/1.0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1)) // until junction closes it
	c.Close()
	var after metricsSample
	// The access log and counters are written as each response ends;
	// nginx may have its answer a moment earlier.
	waitFor(5*time.Second, func() bool {
		after = scrape(t, ops)
		return after.sum("junction_decode_errors_total", `protocol="scgi"`) > before.sum("junction_decode_errors_total", `protocol="scgi"`)
	})
	delta := func(name string, labels ...string) float64 {
		return after.sum(name, labels...) - before.sum(name, labels...)
	}

	for _, f := range fronts {
		p := `protocol="` + f.proto + `"`
		if d := delta("junction_requests_total", p, `backend="scripts"`, `code_class="2xx"`); d != n {
			t.Errorf("%s: junction_requests_total 2xx moved by %v, want %d", f.proto, d, n)
		}
		if d := delta("junction_request_duration_seconds_count", p); d < n {
			t.Errorf("%s: request durations moved by %v, want ≥ %d", f.proto, d, n)
		}
		if d := delta("junction_response_bytes_total", p); d <= 0 {
			t.Errorf("%s: response bytes did not move", f.proto)
		}
		if _, ok := after[`junction_requests_in_flight{listener="`+map[string]string{"scgi": scgiAddr, "fastcgi": fcgiAddr, "ajp13": ajpAddr}[f.proto]+`",`+p+`}`]; !ok {
			t.Errorf("%s: no in-flight gauge", f.proto)
		}
	}
	checks := []struct {
		what string
		d    float64
		min  float64
	}{
		{"FastCGI END_REQUEST request_complete", delta("junction_protocol_events_total", `event="fastcgi_end_request_request_complete"`), n},
		{"AJP CPINGs (ping=)", delta("junction_protocol_events_total", `event="ajp_cping"`), 1},
		{"AJP secret refusals", delta("junction_protocol_events_total", `event="ajp_secret_refused"`), 1},
		{"SCGI decode errors", delta("junction_decode_errors_total", `protocol="scgi"`), 1},
		{"CGI spawns", delta("junction_cgi_spawns_total", `backend="scripts"`), 3 * n},
		{"CGI exit code 0", delta("junction_cgi_exits_total", `backend="scripts"`, `code="0"`), 3 * n},
		{"CGI spawn latency", delta("junction_cgi_spawn_seconds_count", `backend="scripts"`), 3 * n},
	}
	for _, c := range checks {
		if c.d < c.min {
			t.Errorf("%s moved by %v, want ≥ %v", c.what, c.d, c.min)
		}
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := after[series]; !ok {
			t.Errorf("%s missing (runtime/process collectors)", series)
		}
	}

	b, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fronts {
		lines := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `protocol="`+f.proto+`"`) && strings.Contains(l, `"GET /cgi-bin/hello.sh `) &&
				strings.Contains(l, `" 200 `) && strings.Contains(l, `backend="scripts"`) && upstreamTime.MatchString(l) {
				lines++
			}
		}
		if lines != n {
			t.Errorf("%s: %d matching access log lines, want %d:\n%s", f.proto, lines, n, b)
		}
	}
	_ = j
}

// upstreamTime matches an access log line's upstream time in seconds, however long
// the request took on a busy machine.
var upstreamTime = regexp.MustCompile(` upstream_time=[0-9]+\.[0-9]{3} `)

// TestOpsSIGTERMDuringSlowRequest stops junction while nginx waits for a
// slow script: the request finishes, readiness drops at once, and junction
// exits 0.
func TestOpsSIGTERMDuringSlowRequest(t *testing.T) {
	s := newSite(t)
	writeFile(t, s.Root, "slowok.sh", "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/../run/slowok.pid\"\nsleep 2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow and done\\n'\n")
	if err := os.Chmod(filepath.Join(s.Root, "slowok.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	scgiAddr, ops := freeAddr(t), freeAddr(t)
	needJunction(t)
	cfg := writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`shutdown_timeout: 20s
metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/}
`, ops, scgiAddr, s.Root))
	j := startCmd(t, "junction", exec.Command(junctionBin, "serve", "-c", cfg), 25*time.Second, false)
	waitListening(t, j, 10*time.Second, scgiAddr, ops)
	front := nginxSCGI(t, scgiAddr)

	got := make(chan httpResult, 1)
	go func() {
		r, err := newHTTPClient(30 * time.Second).Get("http://" + front + "/cgi-bin/slowok.sh")
		if err != nil {
			got <- httpResult{Body: err.Error()}
			return
		}
		defer r.Body.Close()
		b, _ := readAllLimit(r.Body, 1<<20)
		got <- httpResult{Status: r.StatusCode, Body: string(b)}
	}()
	if readPIDFile(t, filepath.Join(s.Run, "slowok.pid"), 10*time.Second) <= 0 {
		t.Fatal("script did not start")
	}
	if r := httpGet(t, "http://"+ops+"/readyz"); r.Status != 200 {
		t.Fatalf("/readyz before SIGTERM: %d", r.Status)
	}
	start := time.Now()
	if err := j.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// While the request drains, the operations listener says not ready
	// (or is already gone once everything stopped).
	if !waitFor(2*time.Second, func() bool {
		r, err := newHTTPClient(time.Second).Get("http://" + ops + "/readyz")
		if err != nil {
			return true
		}
		r.Body.Close()
		return r.StatusCode == 503
	}) {
		t.Error("/readyz still 200 after SIGTERM")
	}
	r := <-got
	if r.Status != 200 || r.Body != "slow and done\n" {
		t.Errorf("slow request during shutdown: %d %q", r.Status, r.Body)
	}
	select {
	case <-j.done:
	case <-time.After(10 * time.Second):
		t.Fatal("junction did not exit after the slow request finished")
	}
	if j.err != nil {
		t.Errorf("junction exited with %v, want status 0", j.err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	if !strings.Contains(j.Output(), "STOPPING") && !strings.Contains(j.Output(), "shutting down") {
		t.Errorf("no shutdown line in the log:\n%s", j.Output())
	}
}

// TestOpsReloadMetrics adds a backend with SIGHUP under steady load from
// nginx (no request may fail), then sends a broken file: junction keeps
// serving the previous configuration and logs why. The metrics and the
// status page follow.
func TestOpsReloadMetrics(t *testing.T) {
	a1, _ := startAppInstance(t, "one")
	b1, _ := startAppInstance(t, "two")
	scgiAddr, ops := freeAddr(t), freeAddr(t)
	conf := func(routes string) string {
		return fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q, backend: a}
%s
backends:
  a: {type: http, instances: [%q]}
  b: {type: http, instances: [%q]}
`, ops, scgiAddr, routes, a1, b1)
	}
	j := startJunction(t, conf(""), scgiAddr, ops)
	front := "http://" + nginxSCGI(t, scgiAddr)
	v1 := statusJSON(t, ops)["config_version"]

	la := startLoad(t, front+"/a", 4)
	lb := startLoad(t, front+"/b", 2)
	time.Sleep(300 * time.Millisecond)
	hup(t, j, conf("routes:\n  - {prefix: /b, backend: b}"), "msg=reloaded")
	time.Sleep(300 * time.Millisecond)
	seenA, seenB := la.finish(t), lb.finish(t)
	if seenA["one"] == 0 || seenB["two"] == 0 {
		t.Errorf("answers: /a %v, /b %v; want one, then two on /b", seenA, seenB)
	}
	m := scrape(t, ops)
	if n := m.sum("junction_requests_total", `backend="b"`, `code_class="2xx"`); n == 0 {
		t.Error("no requests counted for the new backend b")
	}
	if n := m.sum("junction_requests_total", `code_class="5xx"`); n != 0 {
		t.Errorf("%v requests failed (5xx) across the reload", n)
	}
	if n := m.sum("junction_instance_requests_total", `backend="b"`); n == 0 {
		t.Error("pool b's instance served nothing")
	}
	v2 := statusJSON(t, ops)["config_version"]
	if v2 == v1 {
		t.Errorf("config_version still %v after the reload", v2)
	}

	hup(t, j, "listeners: [{protocol: gopher}]\n", "reload failed")
	if got := answerer(front + "/b"); got != "two" {
		t.Errorf("after a broken reload /b answered by %q", got)
	}
	if v := statusJSON(t, ops)["config_version"]; v != v2 {
		t.Errorf("config_version %v after a failed reload, want %v", v, v2)
	}
	if !strings.Contains(j.Output(), "listeners[0].protocol") {
		t.Errorf("the failed reload's log does not name the key:\n%s", j.Output())
	}
}

// TestOpsPrivilegeDrop starts junction as root with user: nobody. It binds,
// then every thread runs as nobody, and scripts still run. A CGI backend
// asking for another user is refused by junction check, naming its key.
func TestOpsPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s := newSite(t)
	scgiAddr, ops := freeAddr(t), freeAddr(t)
	conf := func(scriptUser string) string {
		return fmt.Sprintf(`user: nobody
metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/%s}
`, ops, scgiAddr, s.Root, scriptUser)
	}
	j := startJunction(t, conf(""), scgiAddr, ops)
	pid := j.cmd.Process.Pid
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // a thread that ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
				if f[1] != "65534" || f[2] != "65534" || f[3] != "65534" || f[4] != "65534" {
					t.Errorf("%s: %s, want all 65534", st, line)
				}
			}
		}
	}
	if r := scgiDo(t, scgiAddr, scgiRequest("GET", "/cgi-bin/hello.sh", 0), nil); r.Status != 200 {
		t.Errorf("script after the drop: %d %s", r.Status, r.Body)
	}
	if r := httpGet(t, "http://"+ops+"/readyz"); r.Status != 200 {
		t.Errorf("/readyz after the drop: %d", r.Status)
	}
	if !strings.Contains(j.Output(), `msg="running as" user=nobody uid=65534`) {
		t.Errorf("no privilege drop in the log:\n%s", j.Output())
	}

	bad := writeFile(t, t.TempDir(), "bad.yaml", conf(", user: root"))
	out, err := exec.Command(junctionBin, "check", "-c", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "backends.scripts") || !strings.Contains(string(out), "drops to nobody") {
		t.Errorf("check of a script user junction cannot switch to: %v\n%s", err, out)
	}
}
