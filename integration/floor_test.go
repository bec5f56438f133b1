package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/protocols/scgi"
)

// The "floor" rows of the end-to-end benchmarks measure a front server
// talking to one of junction's codecs with nothing behind it: a Go
// process serving protocols/scgi or protocols/ajp13 with a handler that
// writes a constant body. No gateway built on that codec can beat it on the
// same machine, so it shows how much of junction's distance to a target is
// the codec and the front server's side of the protocol, and how much is
// junction's own routing and backend hop.
//
// The floor process is the integration test binary itself, re-executed
// with JUNCTION_FLOOR set: TestMain calls runFloor before anything else.

// floorEnv names the variable that turns the test binary into a floor
// server: "PROTOCOL ADDRESS", protocol scgi or ajp13, address host:port or
// unix:/path (e.g. "scgi unix:/tmp/x/floor.sock", "ajp13 127.0.0.1:8009").
const floorEnv = "JUNCTION_FLOOR"

// floorBody is the whole answer of the floor handler.
const floorBody = "floor\n"

// floorBytes is floorBody, converted once rather than per request.
var floorBytes = []byte(floorBody)

// floorHandler answers every request with floorBody, as text/plain with a
// Content-Length, whatever was asked.
func floorHandler(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(floorBody)))
	_, _ = w.Write(floorBytes)
}

// floorServer is the part of the codec servers' method set runFloor needs.
type floorServer interface {
	Serve(net.Listener) error
	Close() error
}

// parseFloorSpec splits a JUNCTION_FLOOR value into the protocol and the
// listen network and address.
func parseFloorSpec(spec string) (proto, network, addr string, err error) {
	proto, where, ok := strings.Cut(strings.TrimSpace(spec), " ")
	where = strings.TrimSpace(where)
	if !ok || where == "" {
		return "", "", "", fmt.Errorf("%s=%q: want \"PROTOCOL ADDRESS\"", floorEnv, spec)
	}
	switch proto {
	case "scgi", "ajp13":
	default:
		return "", "", "", fmt.Errorf("%s=%q: protocol %q is not scgi or ajp13", floorEnv, spec, proto)
	}
	if path, ok := strings.CutPrefix(where, "unix:"); ok {
		if path == "" {
			return "", "", "", fmt.Errorf("%s=%q: empty socket path", floorEnv, spec)
		}
		return proto, "unix", path, nil
	}
	if _, _, err := net.SplitHostPort(where); err != nil {
		return "", "", "", fmt.Errorf("%s=%q: %w", floorEnv, spec, err)
	}
	return proto, "tcp", where, nil
}

func TestParseFloorSpec(t *testing.T) {
	tests := []struct {
		spec, proto, network, addr string
		ok                         bool
	}{
		{"scgi unix:/tmp/f.sock", "scgi", "unix", "/tmp/f.sock", true},
		{"ajp13 127.0.0.1:8009", "ajp13", "tcp", "127.0.0.1:8009", true},
		{" scgi  127.0.0.1:1 ", "scgi", "tcp", "127.0.0.1:1", true},
		{"scgi", "", "", "", false},
		{"http 127.0.0.1:1", "", "", "", false},
		{"scgi unix:", "", "", "", false},
		{"ajp13 8009", "", "", "", false},
	}
	for _, tt := range tests {
		proto, network, addr, err := parseFloorSpec(tt.spec)
		if (err == nil) != tt.ok || proto != tt.proto || network != tt.network || addr != tt.addr {
			t.Errorf("parseFloorSpec(%q) = %q, %q, %q, %v; want %q, %q, %q, ok %v",
				tt.spec, proto, network, addr, err, tt.proto, tt.network, tt.addr, tt.ok)
		}
	}
}

// runFloor serves spec (see floorEnv) until SIGTERM or SIGINT and returns
// the process exit status: 0 after a signal, 2 when it could not serve.
func runFloor(spec string) int {
	proto, network, addr, err := parseFloorSpec(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var srv floorServer
	switch proto {
	case "scgi":
		srv = &scgi.Server{Handler: http.HandlerFunc(floorHandler), Logger: log}
	case "ajp13":
		srv = &ajp13.Server{Handler: http.HandlerFunc(floorHandler), Logger: log}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	l, err := net.Listen(network, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 2
	}
	if network == "unix" {
		// Front servers may run their workers as another user.
		if err := os.Chmod(addr, 0o666); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			return 2
		}
	}
	fmt.Fprintf(os.Stderr, "floor: %s on %s:%s, GOMAXPROCS %d\n", proto, network, addr, runtime.GOMAXPROCS(0))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		srv.Close()
		<-served
		return 0
	case err := <-served:
		fmt.Fprintln(os.Stderr, "floor: serve:", err)
		return 2
	}
}

// startFloor re-executes the test binary as a floor server for proto
// ("scgi" or "ajp13") on addr (host:port or unix:/path), waits until it
// accepts and stops it at the end of the test. It inherits the test's
// environment exactly as startJunction's junction does, so both run with
// the same GOMAXPROCS. Its pid is its process group (for groupCPU).
func startFloor(t testing.TB, proto, addr string) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("floor: test binary: %v", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorEnv+"="+proto+" "+addr)
	p := startCmd(t, "floor-"+proto, cmd, 3*time.Second, true)
	waitListening(t, p, 10*time.Second, addr)
	return p
}

// checkFloorAnswer fails the test unless url answered with floorBody.
func checkFloorAnswer(t testing.TB, url string) {
	t.Helper()
	r := httpGet(t, url)
	if r.Status != http.StatusOK || r.Body != floorBody {
		t.Fatalf("GET %s (floor) = %d %q, want 200 %q", url, r.Status, r.Body, floorBody)
	}
}
