// Package integration drives the junction binary through real front servers
// (nginx, Apache httpd, lighttpd) and real CGI scripts (sh, perl, python3,
// php-cgi). Every peer runs with its own configuration written to
// t.TempDir(), on free loopback ports, and is stopped in t.Cleanup.
//
// The harness in this file and peers_test.go is shared by every protocol's
// suite (scgi_test.go, fastcgi_test.go, ajp_test.go):
//
//   - TestMain builds cmd/junction once (junctionBin).
//   - freePort / freeAddr pick a free 127.0.0.1 port.
//   - startJunction writes a config, runs `junction serve -c FILE`, waits
//     for the given addresses and stops it (SIGTERM, then SIGKILL) at the
//     end, failing the test if it did not exit cleanly.
//   - startNginx, startApache, startLighttpd, startProcess start peers in
//     their own process group (peers_test.go).
//   - newSite copies testdata/cgi-bin into a temp directory and adds the
//     pieces that cannot live in git (a symlink that leaves the root).
//   - httpGet / httpDo / rawHTTP / newHTTPClient and scgiDo (with
//     scgiRequest, encodeSCGI) are clients with deadlines; envOf parses the
//     env.sh script's output.
//   - fatalRecorder lets those helpers run on another goroutine.
//
// Each process's output and error logs are logged when its test fails, or
// always with JUNCTION_TEST_LOGS=1 (go test -v to see them).
//
// A test that needs a peer calls needBin, which skips only when the peer is
// not installed and names the Debian package to install.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/freeport"
	"github.com/junction-gw/junction/internal/syncbuf"
)

// junctionBin is the path of the junction binary built by TestMain; empty
// when the build failed (buildErr then says why).
var (
	junctionBin string
	buildErr    error
)

// TestMain builds the junction binary once for the whole package.
func TestMain(m *testing.M) {
	if spec := os.Getenv(floorEnv); spec != "" {
		os.Exit(runFloor(spec)) // a floor server for the benchmarks (floor_test.go)
	}
	dir, err := os.MkdirTemp("", "junction-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		os.Exit(2)
	}
	junctionBin, buildErr = buildJunction(dir)
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "integration: removing", dir, err)
	}
	os.Exit(code)
}

// goTool finds the go command the tests were started with.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func buildJunction(dir string) (string, error) {
	bin := filepath.Join(dir, "junction")
	cmd := exec.Command(goTool(), "build", "-o", bin, "github.com/junction-gw/junction/cmd/junction")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("integration: go build ./cmd/junction: %w\n%s", err, out)
	}
	return bin, nil
}

// needJunction fails the test when the binary did not build.
func needJunction(t testing.TB) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("junction binary not available: %v", buildErr)
	}
}

// needBin skips the test when the peer at path is not installed. pkg names
// the Debian package that provides it. The CI installs every peer, so a
// skip here means the machine is missing a package, not that the test is
// optional.
func needBin(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed (apt-get install %s): %v", path, pkg, err)
	}
}

// freePort returns a port on 127.0.0.1 for a peer to bind: outside the
// kernel's ephemeral range, so no client socket of a test running beside
// this one takes it before the peer binds (see internal/freeport).
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.Port(t)
}

// freeAddr returns "127.0.0.1:PORT" for a free port.
func freeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

// proc is a child process started by the harness in its own process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	output *syncbuf.Buffer // stdout+stderr
	done   chan struct{}   // closed when Wait returned
	err    error           // Wait's result, valid after done
	logs   []string        // files dumped on failure (error logs)
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *proc) Output() string { return p.output.String() }

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startCmd starts cmd in a new process group with its output captured and
// registers the cleanup that stops the group: SIGTERM, then SIGKILL after
// grace. wantClean makes the cleanup fail the test when the process did not
// exit by itself with status 0 after SIGTERM.
func startCmd(t testing.TB, name string, cmd *exec.Cmd, grace time.Duration, wantClean bool, logs ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, output: &syncbuf.Buffer{}, done: make(chan struct{}), logs: logs}
	if cmd.Stdout == nil {
		cmd.Stdout = p.output
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.output
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		if !p.Exited() {
			if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("%s: SIGTERM: %v", name, err)
			}
		} else if wantClean {
			t.Errorf("%s exited before the test ended: %v", name, p.err)
		}
		killed := false
		select {
		case <-p.done:
		case <-time.After(grace):
			killed = true
			// The whole group: a peer's workers or junction's CGI children.
			if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("%s: SIGKILL: %v", name, err)
			}
			<-p.done
		}
		// Anything left in the group (a worker that ignored SIGTERM).
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil && wantClean {
			t.Errorf("%s left processes behind in its group after exiting", name)
		}
		if wantClean {
			if killed {
				t.Errorf("%s did not exit within %v of SIGTERM", name, grace)
			} else if p.err != nil {
				t.Errorf("%s exited with %v after SIGTERM, want status 0", name, p.err)
			}
		}
		if t.Failed() || os.Getenv("JUNCTION_TEST_LOGS") != "" {
			p.dump(t)
		}
	})
	return p
}

// dump logs the process output and its log files.
func (p *proc) dump(t testing.TB) {
	t.Helper()
	if out := p.Output(); out != "" {
		t.Logf("---- %s output ----\n%s", p.name, tail(out, 64<<10))
	}
	for _, f := range p.logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 0 {
			t.Logf("---- %s %s ----\n%s", p.name, filepath.Base(f), tail(string(b), 64<<10))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// waitListening waits until each TCP address accepts a connection, failing the
// test when p exits first or the timeout passes.
func waitListening(t testing.TB, p *proc, timeout time.Duration, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			network, address := "tcp", addr
			if path, ok := strings.CutPrefix(addr, "unix:"); ok {
				network, address = "unix", path
			}
			c, err := net.DialTimeout(network, address, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if p != nil && p.Exited() {
				p.dump(t)
				t.Fatalf("%s exited (%v) before %s accepted connections", p.name, p.err, addr)
			}
			if time.Now().After(deadline) {
				if p != nil {
					p.dump(t)
				}
				t.Fatalf("%s: %s not accepting after %v: %v", nameOf(p), addr, timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func nameOf(p *proc) string {
	if p == nil {
		return "peer"
	}
	return p.name
}

// junctionProc is a running `junction serve`.
type junctionProc struct {
	*proc
	// Config is the path of the config file it was started with.
	Config string
}

// openTempDir returns t.TempDir() made reachable by every user (it and its
// parent 0755), for peers that drop privileges (Apache's workers run as
// nobody) and scripts that may run as another user.
func openTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// startJunction writes yaml to a config file, starts `junction serve -c`
// on it and waits until every address in waitAddrs accepts. At the end of
// the test it sends SIGTERM and fails the test unless junction exits with
// status 0 within a few seconds (SIGKILL follows). junction's stderr is
// logged when the test fails.
func startJunction(t testing.TB, yaml string, addrs ...string) *junctionProc {
	t.Helper()
	needJunction(t)
	cfg := writeFile(t, t.TempDir(), "junction.yaml", yaml)
	cmd := exec.Command(junctionBin, "serve", "-c", cfg)
	p := startCmd(t, "junction", cmd, 5*time.Second, true)
	waitListening(t, p, 10*time.Second, addrs...)
	return &junctionProc{proc: p, Config: cfg}
}

// junctionCommand returns an unstarted command running the junction binary
// with args, for tests of other subcommands (inetd, check).
func junctionCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	needJunction(t)
	return exec.Command(junctionBin, args...)
}

// startProcess starts any other peer (uwsgi, php-fpm, spawn-fcgi) in its own
// process group and stops the group in t.Cleanup. logs are files dumped on
// failure. It does not wait for anything: call waitListening.
func startProcess(t testing.TB, name string, args []string, logs ...string) *proc {
	t.Helper()
	needBin(t, name, filepath.Base(name))
	cmd := exec.Command(name, args...)
	return startCmd(t, filepath.Base(name), cmd, 5*time.Second, false, logs...)
}

// pidAlive reports whether pid names a live (non-zombie) process.
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPIDFile waits for path to hold a pid and returns it.
func readPIDFile(t testing.TB, path string, timeout time.Duration) int {
	t.Helper()
	var pid int
	ok := waitFor(timeout, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n <= 0 {
			return false
		}
		pid = n
		return true
	})
	if !ok {
		t.Fatalf("no pid in %s after %v", path, timeout)
	}
	return pid
}

// contextFor returns a context cancelled at the end of the test or after d.
func contextFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readAllLimit reads r to EOF or up to limit bytes.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, limit))
}

// site is a copy of testdata/cgi-bin in a temp dir, laid out as
//
//	Dir/cgi-bin/     the scripts (Root), plus link-evil -> Dir/outside/evil
//	Dir/outside/evil a script outside the root that must never run
//	Dir/run/         where scripts leave pid files and markers
//
// Scripts find run/ as "$(dirname "$0")/../run".
type site struct {
	Dir, Root, Outside, Run string
}

// newSite lays out a fresh site for one test.
func newSite(t testing.TB) *site {
	t.Helper()
	dir := openTempDir(t)
	s := &site{
		Dir:     dir,
		Root:    filepath.Join(dir, "cgi-bin"),
		Outside: filepath.Join(dir, "outside"),
		Run:     filepath.Join(dir, "run"),
	}
	copyDir(t, filepath.Join("testdata", "cgi-bin"), s.Root)
	copyDir(t, filepath.Join("testdata", "outside"), s.Outside)
	if err := os.MkdirAll(s.Run, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.Outside, "evil"), filepath.Join(s.Root, "link-evil")); err != nil {
		t.Fatal(err)
	}
	return s
}

// Marker is the file evil scripts create: its presence proves one ran.
func (s *site) Marker() string { return filepath.Join(s.Run, "evil-ran") }

// copyDir copies the regular files of src into dst, keeping their modes.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// git may lose the exec bit on some checkouts; scripts need it.
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, info.Mode().Perm()|0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// newHTTPClient returns a client with an overall timeout that never follows
// redirects, so tests see exactly what the front server sent.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		},
	}
}

// httpResult is a fully read HTTP response.
type httpResult struct {
	Status int
	Header http.Header
	Body   string
}

// httpDo sends req with a 30s timeout and reads the whole response.
func httpDo(t testing.TB, req *http.Request) httpResult {
	t.Helper()
	c := newHTTPClient(30 * time.Second)
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := readAllLimit(resp.Body, 64<<20)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// httpGet GETs url (an already-escaped URL) and reads the whole response.
func httpGet(t testing.TB, url string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return httpDo(t, req)
}

// rawHTTP sends a hand-written HTTP/1.1 request (for targets the Go client
// would clean up, such as "/a/../b") and returns the status and body.
func rawHTTP(t testing.TB, addr, target string) httpResult {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, err := readAllLimit(resp.Body, 1<<20)
	if err != nil {
		t.Fatalf("GET %s: body: %v", target, err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// envOf parses "NAME=value" lines (the env script's output).
func envOf(body string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// scgiVar is one SCGI header pair, in order.
type scgiVar struct{ Name, Value string }

// scgiRequest returns the SCGI variables nginx would send for a request
// with the given method and target (path with optional query), with
// CONTENT_LENGTH first as the spec requires, followed by extra.
func scgiRequest(method, target string, bodyLen int, extra ...scgiVar) []scgiVar {
	path, query, _ := strings.Cut(target, "?")
	vs := []scgiVar{
		{"CONTENT_LENGTH", strconv.Itoa(bodyLen)},
		{"SCGI", "1"},
		{"REQUEST_METHOD", method},
		{"REQUEST_URI", target},
		{"QUERY_STRING", query},
		{"DOCUMENT_URI", path},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"REQUEST_SCHEME", "http"},
		{"REMOTE_ADDR", "127.0.0.1"},
		{"REMOTE_PORT", "40000"},
		{"SERVER_PORT", "80"},
		{"SERVER_NAME", "localhost"},
		{"HTTP_HOST", "localhost"},
	}
	return append(vs, extra...)
}

// encodeSCGI frames vars as an SCGI netstring followed by body.
func encodeSCGI(vs []scgiVar, body []byte) []byte {
	var h bytes.Buffer
	for _, v := range vs {
		h.WriteString(v.Name)
		h.WriteByte(0)
		h.WriteString(v.Value)
		h.WriteByte(0)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%d:", h.Len())
	out.Write(h.Bytes())
	out.WriteByte(',')
	out.Write(body)
	return out.Bytes()
}

// scgiResult is a CGI-style response read from an SCGI server.
type scgiResult struct {
	// Status is from the Status header (or an HTTP/1.x first line); 0 when
	// the server sent neither.
	Status int
	Header http.Header
	Body   string
	// Raw is every byte the server sent.
	Raw []byte
}

// scgiDo sends one SCGI request to addr directly (bypassing any front
// server), reads until the server closes, and parses the response.
func scgiDo(t testing.TB, addr string, vs []scgiVar, body []byte) scgiResult {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("scgi dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(encodeSCGI(vs, body)); err != nil {
		t.Fatalf("scgi write: %v", err)
	}
	raw, err := readAllLimit(c, 64<<20)
	if err != nil {
		t.Fatalf("scgi read from %s: %v (got %q)", addr, err, raw)
	}
	res, err := parseCGIResponse(raw)
	if err != nil {
		t.Fatalf("scgi response from %s: %v\n%q", addr, err, raw)
	}
	return res
}

// parseCGIResponse splits a CGI-style response (header lines, blank line,
// body) as an SCGI server sends it.
func parseCGIResponse(raw []byte) (scgiResult, error) {
	res := scgiResult{Raw: raw, Header: http.Header{}}
	br := bufio.NewReader(bytes.NewReader(raw))
	tp := textproto.NewReader(br)
	first, err := br.Peek(5)
	if err == nil && string(first) == "HTTP/" {
		line, err := tp.ReadLine()
		if err != nil {
			return res, fmt.Errorf("status line: %w", err)
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return res, fmt.Errorf("bad status line %q", line)
		}
		if res.Status, err = strconv.Atoi(f[1]); err != nil {
			return res, fmt.Errorf("bad status line %q", line)
		}
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return res, fmt.Errorf("headers: %w", err)
	}
	res.Header = http.Header(h)
	if s := res.Header.Get("Status"); s != "" && res.Status == 0 {
		code, _, _ := strings.Cut(s, " ")
		if res.Status, err = strconv.Atoi(code); err != nil {
			return res, fmt.Errorf("bad Status %q", s)
		}
	}
	b, err := io.ReadAll(br)
	if err != nil {
		return res, err
	}
	res.Body = string(b)
	return res, nil
}

// fatalRecorder lets harness helpers that call Fatalf run off the test
// goroutine: Fatalf records the failure on the test and panics, and the
// goroutine recovers.
type fatalRecorder struct {
	testing.TB
	res  scgiResult
	http httpResult
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.TB.Errorf(format, args...)
	panic(fatalPanic{})
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.TB.Error(args...)
	panic(fatalPanic{})
}

type fatalPanic struct{}

// recover swallows the panic of Fatalf and re-raises any other. It must be
// deferred directly (defer f.recover()) for recover to see the panic.
func (f *fatalRecorder) recover() {
	if v := recover(); v != nil {
		if _, ok := v.(fatalPanic); !ok {
			panic(v)
		}
	}
}

// checkClientRedirect: redirect302.sh's explicit 302 with a relative
// Location reaches the client as it is, one Location, never followed as
// a local redirect (the mod_scgi bug junction must not have).
func checkClientRedirect(t *testing.T, url func(string) string) {
	t.Helper()
	r := httpGet(t, url("/cgi-bin/redirect302.sh"))
	if r.Status != 302 {
		t.Fatalf("got %d %q, want 302", r.Status, r.Body)
	}
	if loc := r.Header.Values("Location"); len(loc) != 1 || loc[0] != "../elsewhere" {
		t.Errorf("Location %q, want exactly [../elsewhere]", loc)
	}
}

// checkNoStatusLine: nostatus.pl prints no Status line (as AWStats does)
// and still gets a 200 with its own Content-Type.
func checkNoStatusLine(t *testing.T, url func(string) string) {
	t.Helper()
	needBin(t, "/usr/bin/perl", "perl-base")
	r := httpGet(t, url("/cgi-bin/nostatus.pl"))
	if r.Status != 200 || !strings.Contains(r.Body, "no status line") || r.Header.Get("Content-Type") != "text/html" {
		t.Fatalf("got %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
}

// checkPost10MB posts 10 MB of random bytes to post-sha256.py through a
// front server (url maps a path to its URL) and checks the script saw the
// whole body: its sha256, length and CONTENT_LENGTH.
func checkPost10MB(t *testing.T, url func(string) string) {
	t.Helper()
	body := make([]byte, 10<<20)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	req, err := http.NewRequest(http.MethodPost, url("/cgi-bin/post-sha256.py"), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	r := httpDo(t, req)
	want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
	if r.Status != 200 || r.Body != want {
		t.Fatalf("POST 10MB = %d %q, want %q", r.Status, r.Body, want)
	}
}

// checkConcurrentHello sends n GETs of hello.sh at once through a front
// server (url maps a path to its URL) and checks every answer is its own.
func checkConcurrentHello(t *testing.T, n int, url func(string) string) {
	t.Helper()
	client := newHTTPClient(60 * time.Second)
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := client.Get(url(fmt.Sprintf("/cgi-bin/hello.sh?n=%d", i)))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := readAllLimit(resp.Body, 1<<20)
			want := fmt.Sprintf("Hello from sh\nquery=n=%d\n", i)
			if err != nil || resp.StatusCode != 200 || string(b) != want {
				errs <- fmt.Errorf("request %d: %d %q %v, want %q", i, resp.StatusCode, b, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// checkStreams asks httpAddr for /cgi-bin/stream.sh (prints "first", sleeps
// 2s, prints "second") and fails unless the first line arrived while the
// script still slept: the front server and junction passed the flush on.
func checkStreams(t *testing.T, httpAddr string) {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(start.Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET /cgi-bin/stream.sh HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	first, err := lines.ReadString('\n')
	firstAt := time.Since(start)
	if err != nil || first != "first\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	second, err := lines.ReadString('\n')
	doneAt := time.Since(start)
	if err != nil || second != "second\n" {
		t.Fatalf("second line %q, %v", second, err)
	}
	if doneAt < 2*time.Second {
		t.Fatalf("whole reply in %v, the script sleeps 2s: the test cannot tell streaming apart", doneAt)
	}
	if firstAt > 1500*time.Millisecond {
		t.Errorf("first line after %v (whole reply %v): not streamed while the script slept", firstAt, doneAt)
	}
}
