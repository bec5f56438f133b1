package app

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// BenchmarkSCGIPool drives the real request path in-process: SCGI
// clients → scgi.Server → the listener's middleware → balancer.Pool →
// the HTTP backend → two httptest instances. Its CPU profile shows
// junction's per-request cost (the clients and instances share it).
func BenchmarkSCGIPool(b *testing.B) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "a1 "+r.URL.Path+"\n")
	})
	s1, s2 := httptest.NewServer(app), httptest.NewServer(app)
	defer s1.Close()
	defer s2.Close()
	cfg := parse(b, fmt.Sprintf(`
shutdown_timeout: 5s
log: {level: warn}
listeners:
  - {protocol: scgi, address: "127.0.0.1:0", backend: app}
backends:
  app: {type: http, instances: [%q, %q], balance: round_robin}
`, s1.Listener.Addr().String(), s2.Listener.Addr().String()))
	a, _, _ := startApp(b, cfg)
	addr := a.Addrs()[0].String()
	req := scgiRequest("GET", "/hello")
	const clients = 8
	b.ResetTimer()
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := b.N
	for range clients {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				mu.Lock()
				if n == 0 {
					mu.Unlock()
					return
				}
				n--
				mu.Unlock()
				if err := oneShot(addr, req, buf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// oneShot sends req on a new connection to addr and reads the reply to
// its end, as a front server without keep-alive does; an empty reply is
// an error.
func oneShot(addr string, req, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	got := 0
	for {
		k, err := c.Read(buf)
		got += k
		if err != nil {
			break
		}
	}
	if got == 0 {
		return errors.New("empty reply")
	}
	return nil
}
