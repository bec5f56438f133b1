package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer keeps log lines for the test to inspect, and logs them too.
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dialFrom connects to addr from the local address from (Linux routes
// all of 127.0.0.0/8 to the loopback interface).
func dialFrom(from, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", addr)
}

// scgiFrom sends a GET for uri to the SCGI listener at addr from the
// local address from and returns the raw reply (empty when junction
// closed the connection unanswered).
func scgiFrom(t *testing.T, from, addr, uri string) string {
	t.Helper()
	c, err := dialFrom(from, addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// A refused connection may be closed before the request is written.
	c.Write(scgiRequest("GET", uri))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestListenerAllow: a listener with an allow list serves its clients
// and closes anyone else's connection at accept, with one log line and a
// count, without ending its accept loop; a reload that changes the list
// hands the socket to a server with the new list.
func TestListenerAllow(t *testing.T) {
	cfg := testConfig(t, `
  - {protocol: scgi, address: "127.0.0.1:0", backend: scripts, allow: ["127.0.0.1/32"]}
  - {protocol: http, address: "127.0.0.1:0", backend: scripts, allow: ["127.0.0.1", "::1"]}`)
	logs := &logBuffer{t: t}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
	scgiAddr, httpAddr := a.Addrs()[0].String(), a.Addrs()[1].String()

	for round := range 2 {
		if got := scgiFrom(t, "127.0.0.2", scgiAddr, "/cgi-bin/hello.sh"); got != "" {
			t.Fatalf("round %d: a client from 127.0.0.2 got %q, want the connection closed", round, got)
		}
		// The refused peer did not end the accept loop.
		if got := scgiFrom(t, "127.0.0.1", scgiAddr, "/cgi-bin/hello.sh"); !strings.Contains(got, "Hello") {
			t.Fatalf("round %d: a client from 127.0.0.1 got %q, want the script's response", round, got)
		}
	}
	if n, _ := metricValue(t, a, "junction_decode_errors_total", map[string]string{"protocol": "scgi", "reason": "not_allowed"}); n != 2 {
		t.Errorf("refused scgi connections counted %v times, want 2", n)
	}
	if got := strings.Count(logs.String(), "client=127.0.0.2:"); got != 2 {
		t.Errorf("%d log lines name the refused client, want 2:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "listener="+scgiAddr) {
		t.Errorf("the refusal does not name the listener:\n%s", logs)
	}

	client := func(from string) *http.Client {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	if resp, err := client("127.0.0.2").Get("http://" + httpAddr + "/cgi-bin/hello.sh"); err == nil {
		resp.Body.Close()
		t.Errorf("http from 127.0.0.2: %s, want the connection closed", resp.Status)
	}
	resp, err := client("127.0.0.1").Get("http://" + httpAddr + "/cgi-bin/hello.sh")
	if err != nil {
		t.Fatalf("http from 127.0.0.1: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("http from 127.0.0.1: %s", resp.Status)
	}

	// A reload that changes the list: the socket is handed over.
	next := testConfig(t, fmt.Sprintf(`
  - {protocol: scgi, address: %q, backend: scripts, allow: ["127.0.0.2"]}
  - {protocol: http, address: %q, backend: scripts, allow: ["127.0.0.1", "::1"]}`, scgiAddr, httpAddr))
	if err := a.Reload(next); err != nil {
		t.Fatal(err)
	}
	if got := scgiFrom(t, "127.0.0.1", scgiAddr, "/cgi-bin/hello.sh"); got != "" {
		t.Errorf("after reload a client from 127.0.0.1 got %q, want the connection closed", got)
	}
	if got := scgiFrom(t, "127.0.0.2", scgiAddr, "/cgi-bin/hello.sh"); !strings.Contains(got, "Hello") {
		t.Errorf("after reload a client from 127.0.0.2 was refused")
	}
}

// TestAllowOnInheritedUnixSocket: config can tell a unix socket only by
// its unix: address; an inherited one with an allow list is refused when
// it is taken, naming the key.
func TestAllowOnInheritedUnixSocket(t *testing.T) {
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	f, err := ul.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := testConfig(t, fmt.Sprintf(`
  - {protocol: scgi, address: "fd:%d", backend: scripts, allow: ["127.0.0.1"]}`, f.Fd()))
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Listen()
	if err == nil || !strings.Contains(err.Error(), "listeners[0]: allow:") || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("Listen = %v, want an allow error naming the unix socket", err)
	}
}
