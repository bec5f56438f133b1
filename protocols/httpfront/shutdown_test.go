package httpfront

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/keepopen"
)

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func answer(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
}

// TestShutdownServesAcceptedConn: a connection accepted before Shutdown
// that sends its request only afterwards is answered (net/http on its own
// would close it unanswered).
func TestShutdownServesAcceptedConn(t *testing.T) {
	ln := listenTCP(t)
	accepted := make(chan struct{}, 1)
	s := &Server{Handler: answer("ok"), Logger: slog.New(slog.DiscardHandler),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				accepted <- struct{}{}
			}
		}}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request sent after Shutdown began on an accepted connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "ok" {
		t.Errorf("body %q", body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// TestHandOverUnderLoad passes one socket along a chain of servers, each
// Serve on a keepopen listener, as junction's reload does: no request
// fails.
func TestHandOverUnderLoad(t *testing.T) {
	ln := listenTCP(t)
	var stop atomic.Bool
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := client.Get("http://" + ln.Addr().String() + "/")
				if err != nil {
					t.Log(err)
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
			}
		})
	}
	start := func(i int) (*Server, chan error) {
		s := &Server{Handler: answer(fmt.Sprint(i)), Logger: slog.New(slog.DiscardHandler)}
		served := make(chan error, 1)
		go func() { served <- s.Serve(keepopen.Wrap(ln)) }()
		return s, served
	}
	const handOvers = 10
	s, served := start(0)
	var shutdowns sync.WaitGroup
	for i := range handOvers {
		time.Sleep(20 * time.Millisecond)
		old := s
		shutdowns.Go(func() {
			if err := old.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		})
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		s, served = start(i + 1)
	}
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	shutdowns.Wait()
	s.Shutdown(context.Background())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across %d hand-overs", failed.Load(), failed.Load()+ok.Load(), handOvers)
	}
	if ok.Load() == 0 {
		t.Error("no request was served")
	}
}
