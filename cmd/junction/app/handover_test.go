package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/config"
)

// handOverConfig has an SCGI and an HTTP listener whose idle_timeout
// decides the servers' options: changing it makes a reload start new
// servers on the same sockets.
func handOverConfig(t testing.TB, scgiAddr, httpAddr, idle, instance string) *config.Config {
	return parse(t, fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: scgi, address: %q, backend: app, idle_timeout: %s}
  - {protocol: http, address: %q, backend: app, idle_timeout: %s}
backends:
  app: {type: http, instances: [%q]}
`, scgiAddr, idle, httpAddr, idle, instance))
}

// servers returns the current listeners' servers.
func (a *App) servers() []server {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []server
	for _, f := range a.fronts {
		out = append(out, f.srv)
	}
	return out
}

// TestReloadHandOverUnderLoad reloads many times, each time changing the
// listeners' options (so new servers take the sockets over), while
// clients open a new connection per request as fast as they can. Not one
// connection may be refused, reset or closed unanswered.
func TestReloadHandOverUnderLoad(t *testing.T) {
	a1 := named(t, "a1")
	a, _, _ := startApp(t, handOverConfig(t, "127.0.0.1:0", "127.0.0.1:0", "5s", a1))
	scgiAddr, httpAddr := a.Addrs()[0].String(), a.Addrs()[1].String()

	var stop atomic.Bool
	var ok, failed atomic.Int64
	fail := func(format string, args ...any) {
		t.Logf(format, args...)
		failed.Add(1)
	}
	var clients sync.WaitGroup
	for range 2 {
		clients.Go(func() {
			for !stop.Load() {
				c, err := net.DialTimeout("tcp", scgiAddr, 5*time.Second)
				if err != nil {
					fail("scgi dial: %v", err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write(scgiRequest("GET", "/x"))
				reply, rerr := io.ReadAll(c)
				c.Close()
				if err != nil || rerr != nil || !bytes.HasPrefix(reply, []byte("Status: 200")) {
					fail("scgi: write %v, read %v, reply %q", err, rerr, reply)
					continue
				}
				ok.Add(1)
			}
		})
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range 2 {
		clients.Go(func() {
			for !stop.Load() {
				resp, err := client.Get("http://" + httpAddr + "/x")
				if err != nil {
					fail("http: %v", err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != "a1 /x" {
					fail("http: %s %q %v", resp.Status, body, err)
					continue
				}
				ok.Add(1)
			}
		})
	}

	const reloads = 15
	for i := range reloads {
		time.Sleep(20 * time.Millisecond)
		before := a.servers()
		idle := []string{"6s", "5s"}[i%2]
		if err := a.Reload(handOverConfig(t, scgiAddr, httpAddr, idle, a1)); err != nil {
			t.Fatal(err)
		}
		for j, s := range a.servers() {
			if s == before[j] {
				t.Fatalf("reload %d kept listener %d's server; the test needs a hand-over", i, j)
			}
		}
	}
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	clients.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed across %d reloads", n, n+ok.Load(), reloads)
	}
	if ok.Load() < reloads {
		t.Errorf("only %d requests served; the clients did not load the reloads", ok.Load())
	}
}

// stackListener records the stack of every goroutine that calls Accept on
// the socket.
type stackListener struct {
	*net.TCPListener
	mu     sync.Mutex
	stacks []string
}

func (l *stackListener) Accept() (net.Conn, error) {
	buf := make([]byte, 16<<10)
	buf = buf[:runtime.Stack(buf, false)]
	l.mu.Lock()
	l.stacks = append(l.stacks, string(buf))
	l.mu.Unlock()
	return l.TCPListener.Accept()
}

func (l *stackListener) callers() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.stacks...)
}

// TestAcceptOnServeGoroutine checks that no goroutine stands between a
// listening socket and its server: the codec server's own accept loop
// (connserver's Serve; net/http's for HTTP) accepts on the socket, also
// after a reload handed the socket to a new server.
func TestAcceptOnServeGoroutine(t *testing.T) {
	a1 := named(t, "a1")
	a, err := New(handOverConfig(t, "127.0.0.1:0", "127.0.0.1:0", "5s", a1), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	socks := make([]*stackListener, len(a.fronts))
	for i, f := range a.fronts {
		socks[i] = &stackListener{TCPListener: f.sock.(*net.TCPListener)}
		f.sock = socks[i]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	scgiAddr, httpAddr := a.Addrs()[0].String(), a.Addrs()[1].String()
	request := func() {
		t.Helper()
		if res := scgiDo(t, scgiAddr, "GET", "/y"); res.status != "200 OK" {
			t.Fatalf("SCGI status %q", res.status)
		}
		if code, body := get(t, "http://"+httpAddr+"/y"); code != 200 || body != "a1 /y" {
			t.Fatalf("HTTP GET = %d %q", code, body)
		}
	}
	request()
	if err := a.Reload(handOverConfig(t, scgiAddr, httpAddr, "6s", a1)); err != nil {
		t.Fatal(err)
	}
	request()
	want := []string{"connserver.(*Server).Serve(", "net/http.(*Server).Serve("}
	for i, l := range socks {
		callers := l.callers()
		if len(callers) < 2 {
			t.Errorf("listener %d: Accept called %d times, want one server before and one after the reload", i, len(callers))
		}
		for _, stack := range callers {
			if !strings.Contains(stack, want[i]) {
				t.Errorf("listener %d: Accept not called by the server's accept loop (%s):\n%s", i, want[i], stack)
			}
		}
	}
}
