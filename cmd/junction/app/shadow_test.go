package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/syncbuf"
)

// TestShadowOverHTTPListener: requests from the HTTP front end (no CGI
// variables) are copied and compared, not counted as shadow errors.
func TestShadowOverHTTPListener(t *testing.T) {
	current, candidate := named(t, "app"), named(t, "app")
	a, _, _ := startApp(t, parse(t, fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: "127.0.0.1:0"}
routes:
  - {prefix: /, backend: current, shadow: {backend: candidate}}
backends:
  current: {type: http, instances: [%q]}
  candidate: {type: http, instances: [%q]}
`, current, candidate)))
	url := "http://" + a.Addrs()[0].String()
	for range 3 {
		if code, body := get(t, url+"/x"); code != 200 || body != "app /x" {
			t.Fatalf("GET /x = %d %q", code, body)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sh := a.Status().Routes[0].Shadow
		if sh == nil {
			t.Fatal("the route's shadow is not on the status page")
		}
		if n := sh.Same + sh.Different + sh.Errors + sh.Dropped; n == 3 {
			if sh.Same != 3 {
				t.Errorf("shadow results %+v, want 3 same", sh.Stats)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shadow results %+v, want 3 counted", sh.Stats)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShadowWorkersStopWhenRunFails: an App whose Run fails before
// serving (a socket that cannot be bound) leaves no shadow worker behind.
func TestShadowWorkersStopWhenRunFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	before := runtime.NumGoroutine()
	a, err := New(parse(t, fmt.Sprintf(`
listeners:
  - {protocol: http, address: %q}
routes:
  - {prefix: /, backend: current, shadow: {backend: candidate}}
backends:
  current: {type: http, instances: ["127.0.0.1:1"]}
  candidate: {type: http, instances: ["127.0.0.1:2"]}
`, taken.Addr().String())), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("Run served on a taken address")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShadowLogNamesRouteOnce: a shadow's log lines carry the route once
// (a duplicated key makes JSON logs ambiguous).
func TestShadowLogNamesRouteOnce(t *testing.T) {
	var logs syncbuf.Buffer
	a, err := New(parse(t, fmt.Sprintf(`
shutdown_timeout: 5s
listeners:
  - {protocol: http, address: "127.0.0.1:0"}
routes:
  - {prefix: /, backend: current, shadow: {backend: candidate}}
backends:
  current: {type: http, instances: [%q]}
  candidate: {type: http, instances: ["127.0.0.1:1"]}
`, named(t, "app"))), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	get(t, "http://"+a.Addrs()[0].String()+"/x")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "shadow failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no shadow failure logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "shadow failed") && strings.Count(line, " route=") != 1 {
			t.Errorf("route named %d times: %s", strings.Count(line, " route="), line)
		}
	}
}
