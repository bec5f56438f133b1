package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
)

// The test binary doubles as the supervised app when SPAWN_TEST_APP is
// set: an HTTP server on the address in os.Args[1] ("fd0" for stdin).
func TestMain(m *testing.M) {
	switch os.Getenv("SPAWN_TEST_APP") {
	case "":
		os.Exit(m.Run())
	case "serve":
		serveApp()
	case "crash":
		f, err := os.OpenFile(os.Getenv("SPAWN_TEST_LOG"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		if err == nil {
			fmt.Fprintln(f, time.Now().UnixNano())
			f.Close()
		}
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		os.Exit(3)
	case "sleep":
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

func serveApp() {
	var l net.Listener
	var err error
	switch addr := os.Args[1]; {
	case addr == "fd0":
		l, err = net.FileListener(os.Stdin)
	case strings.HasPrefix(addr, "/"):
		l, err = net.Listen("unix", addr)
	default:
		l, err = net.Listen("tcp", "127.0.0.1:"+addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("SPAWN_TEST_FORK") != "" {
		// A worker in the same process group, which must die with the app.
		c := exec.Command(os.Args[0])
		c.Env = append(os.Environ(), "SPAWN_TEST_APP=sleep")
		if err := c.Start(); err != nil {
			os.Exit(1)
		}
		fmt.Println("worker", c.Process.Pid)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d", os.Getenv("SPAWN_TEST_VERSION"), os.Getpid())
	})}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Println("listening")
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		os.Exit(1)
	}
}

var testLogOut io.Writer = io.Discard

// addrs records OnChange calls.
type addrs struct {
	mu      sync.Mutex
	current []string
	changed chan []string
}

func newAddrs() *addrs { return &addrs{changed: make(chan []string, 100)} }

func (a *addrs) set(v []string) {
	a.mu.Lock()
	a.current = v
	a.mu.Unlock()
	a.changed <- v
}

// waitFor waits for an OnChange with n addresses.
func (a *addrs) waitFor(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case v := <-a.changed:
			if len(v) == n {
				return v
			}
		case <-timeout:
			t.Fatalf("never got %d ready instances", n)
		}
	}
}

func testOptions(t *testing.T, mode string, count int, env ...string) Options {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	arg := map[string]string{ModePort: "{port}", ModeSocket: "{socket}", ModeFD0: "fd0"}[mode]
	return Options{
		Command:      []string{exe, arg},
		Count:        count,
		Mode:         mode,
		Env:          append([]string{"SPAWN_TEST_APP=serve"}, env...),
		RestartBase:  50 * time.Millisecond,
		RestartMax:   time.Second,
		StartTimeout: 10 * time.Second,
		StopTimeout:  5 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(testLogOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func fetch(addr string) (string, error) {
	network, address := SplitAddr(addr)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://app/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// run starts s and returns a stop func that cancels it and checks that no
// process group it ever reported is left.
func run(t *testing.T, s *Supervisor, pids *[]int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
		}
		for _, pid := range *pids {
			if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process group %d still alive after Run: %v", pid, err)
			}
		}
	}
}

func TestModes(t *testing.T) {
	for _, mode := range []string{ModePort, ModeSocket, ModeFD0} {
		t.Run(mode, func(t *testing.T) {
			a := newAddrs()
			o := testOptions(t, mode, 2, "SPAWN_TEST_VERSION=v1", "SPAWN_TEST_FORK=1")
			o.OnChange = a.set
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			var pids []int
			stop := run(t, s, &pids)
			defer stop()
			got := a.waitFor(t, 2)
			for _, st := range s.Snapshot() {
				pids = append(pids, st.PID)
			}
			seen := map[string]bool{}
			for _, addr := range got {
				body, err := fetch(addr)
				if err != nil || !strings.HasPrefix(body, "v1 ") {
					t.Fatalf("%s: %q %v", addr, body, err)
				}
				seen[body] = true
			}
			if len(seen) != 2 {
				t.Errorf("instances not distinct: %v", seen)
			}
		})
	}
}

func TestCrashBackoff(t *testing.T) {
	log := t.TempDir() + "/starts"
	o := testOptions(t, ModePort, 1, "SPAWN_TEST_LOG="+log)
	o.Env[0] = "SPAWN_TEST_APP=crash"
	o.RestartBase, o.RestartMax = 100*time.Millisecond, 400*time.Millisecond
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	stop := run(t, s, &pids)
	deadline := time.Now().Add(20 * time.Second)
	var starts []int64
	for len(starts) < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling real processes
		b, _ := os.ReadFile(log)
		starts = nil
		for _, f := range strings.Fields(string(b)) {
			var n int64
			fmt.Sscan(f, &n)
			starts = append(starts, n)
		}
	}
	stop()
	if len(starts) < 5 {
		t.Fatalf("only %d starts", len(starts))
	}
	// Back-off 100, 200, 400, 400 ms between starts (plus start-up time).
	for i, min := range []time.Duration{100, 200, 400, 400} {
		gap := time.Duration(starts[i+1] - starts[i])
		if gap < min*time.Millisecond {
			t.Errorf("restart %d after %v, want at least %v", i+1, gap, min*time.Millisecond)
		}
		if gap > min*time.Millisecond+3*time.Second {
			t.Errorf("restart %d after %v: too slow", i+1, gap)
		}
	}
	if st := s.Snapshot(); len(st) != 1 || st[0].Restarts < 4 {
		t.Errorf("status %+v", st)
	}
}

// proxy is a minimal HTTP instance backend for the rolling test.
type proxy struct{ addr string }

func (p proxy) Serve(w http.ResponseWriter, r *http.Request) error {
	body, err := fetch(p.addr)
	if err != nil {
		return &backends.DialError{Addr: p.addr, Err: err}
	}
	io.WriteString(w, body)
	return nil
}

func TestRollingUnderLoad(t *testing.T) {
	pool, err := balancer.NewPool("app", nil, balancer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAddrs()
	onChange := func(v []string) {
		insts := make([]balancer.Instance, len(v))
		for i, addr := range v {
			insts[i] = balancer.Instance{Name: addr, Backend: proxy{addr}}
		}
		if err := pool.Replace(insts); err != nil {
			t.Error(err)
		}
		a.set(v)
	}
	o := testOptions(t, ModePort, 2, "SPAWN_TEST_VERSION=v1")
	o.OnChange, o.WaitIdle = onChange, pool.WaitIdle
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	stop := run(t, s, &pids)
	defer stop()
	a.waitFor(t, 2)
	for _, st := range s.Snapshot() {
		pids = append(pids, st.PID)
	}

	var ok, failed atomic.Int64
	var versions sync.Map
	loadCtx, endLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				w := httptest.NewRecorder()
				if err := pool.Serve(w, httptest.NewRequest(http.MethodGet, "/", nil)); err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				ok.Add(1)
				v, _, _ := strings.Cut(w.Body.String(), " ")
				versions.Store(v, true)
			}
		})
	}
	o2 := o
	o2.Env = []string{"SPAWN_TEST_APP=serve", "SPAWN_TEST_VERSION=v2"}
	if err := s.Rolling(context.Background(), o2); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Snapshot() {
		pids = append(pids, st.PID)
	}
	time.Sleep(100 * time.Millisecond) // some load on the new set
	endLoad()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Errorf("%d requests failed, %d ok", failed.Load(), ok.Load())
	}
	for _, addr := range a.current {
		if body, err := fetch(addr); err != nil || !strings.HasPrefix(body, "v2 ") {
			t.Errorf("after rolling %s: %q %v", addr, body, err)
		}
	}
	if _, ok := versions.Load("v1"); !ok {
		t.Error("no request reached v1")
	}
}

func TestRollingFailureKeepsOld(t *testing.T) {
	a := newAddrs()
	o := testOptions(t, ModePort, 1, "SPAWN_TEST_VERSION=v1")
	o.OnChange = a.set
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	stop := run(t, s, &pids)
	defer stop()
	before := a.waitFor(t, 1)
	pids = append(pids, s.Snapshot()[0].PID)
	bad := o
	bad.Env = []string{"SPAWN_TEST_APP=crash", "SPAWN_TEST_LOG=" + t.TempDir() + "/x"}
	if err := s.Rolling(context.Background(), bad); err == nil {
		t.Fatal("rolling to a crashing app succeeded")
	}
	if body, err := fetch(before[0]); err != nil || !strings.HasPrefix(body, "v1 ") {
		t.Errorf("old instance after failed rolling: %q %v", body, err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []Options{
		{Count: 1},
		{Command: []string{"x"}},
		{Command: []string{"x"}, Count: 1, Mode: "pipe"},
		{Command: []string{"x"}, Count: 1, StopTimeout: -1},
	}
	for _, o := range tests {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestExpand(t *testing.T) {
	tests := []struct{ arg, addr, want string }{
		{"--port={port}", "127.0.0.1:8001", "--port=8001"},
		{"-s{socket}", "unix:/tmp/a.sock", "-s/tmp/a.sock"},
		{"{addr}#{index}", "127.0.0.1:9", "127.0.0.1:9#3"},
	}
	for _, tt := range tests {
		if got := expand(tt.arg, tt.addr, 3); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.arg, got, tt.want)
		}
	}
}

func init() {
	if os.Getenv("SPAWN_TEST_VERBOSE") != "" {
		testLogOut = os.Stderr
	}
}
