package integration

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/protocols/fastcgi"
	"github.com/junction-gw/junction/protocols/httpfront"
	"github.com/junction-gw/junction/protocols/scgi"
)

// probeSize is the request body and the early response of the duplex
// probes: far beyond every socket and front-server buffer on the way.
const probeSize = 8 << 20

// probeStall is how long a probe waits for the front server to move
// (send more body, or take more response) before calling it stopped.
const probeStall = 3 * time.Second

// probeResult is what the gateway side of one probe saw.
type probeResult struct {
	mode     string // "head" or "big"
	bodyRead int64  // request body bytes received
	bodyErr  error
	wrote    int64 // early response bytes the front took ("big")
	writeErr error
}

// duplexProbe is an in-process gateway (junction's own codecs, served as a
// library) behind a front server. Its handler answers
//
//   - ?mode=head: a response head and a few bytes at once, flushed, then
//     reads the whole body. A front that stops sending the request body
//     once response bytes arrive leaves it short.
//   - ?mode=big: probeSize response bytes before reading any body. A front
//     that reads no response until it has sent the whole body leaves the
//     write stuck.
//
// Reads and writes give up after probeStall (the codecs' timeouts).
type duplexProbe struct {
	results chan probeResult
}

func (p *duplexProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // net/http only: measure the front, not Go's server
	res := probeResult{mode: r.URL.Query().Get("mode")}
	defer func() { p.results <- res }()
	w.Header().Set("Content-Type", "application/octet-stream")
	switch res.mode {
	case "head":
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write([]byte("probe\n")); err != nil {
			res.writeErr = err
			return
		}
		res.writeErr = rc.Flush()
	case "big":
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for res.wrote < probeSize {
			n, err := w.Write(chunk)
			res.wrote += int64(n)
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				res.writeErr = err
				return
			}
		}
	default:
		http.Error(w, "no mode", http.StatusBadRequest)
		return
	}
	res.bodyRead, res.bodyErr = io.Copy(io.Discard, r.Body)
}

// serveProbe serves p with protocol proto on a new unix socket in dir
// (mode 0666: Apache's workers run as nobody) and returns its path.
func serveProbe(t *testing.T, dir, proto string, p *duplexProbe) string {
	t.Helper()
	sock := filepath.Join(dir, proto+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	serveProbeOn(t, ln, proto, p)
	return sock
}

// serveProbeOn serves p with protocol proto on ln until the test ends.
func serveProbeOn(t *testing.T, ln net.Listener, proto string, p *duplexProbe) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var srv interface {
		Serve(net.Listener) error
		Close() error
	}
	switch proto {
	case "scgi":
		srv = &scgi.Server{Handler: p, ReadTimeout: probeStall, WriteTimeout: probeStall, Logger: log}
	case "fastcgi":
		srv = &fastcgi.Server{Handler: p, ReadTimeout: probeStall, WriteTimeout: probeStall, Logger: log}
	case "ajp":
		srv = &ajp13.Server{Handler: p, ReadTimeout: probeStall, WriteTimeout: probeStall, Logger: log}
	case "http":
		srv = &httpfront.Server{Handler: p, ReadTimeout: probeStall, WriteTimeout: probeStall, Logger: log}
	default:
		t.Fatalf("no probe server for %s", proto)
	}
	go srv.Serve(ln) // returns when closed
	t.Cleanup(func() { srv.Close() })
}

// runProbe posts probeSize bytes to url?mode=MODE and returns what the
// gateway saw.
func runProbe(t *testing.T, p *duplexProbe, url, mode string) probeResult {
	t.Helper()
	c := newHTTPClient(4 * probeStall)
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, err := c.Post(url+"?mode="+mode, "application/octet-stream", bytes.NewReader(make([]byte, probeSize)))
		if err == nil {
			io.Copy(io.Discard, resp.Body) // whatever arrives: the gateway side is measured
			resp.Body.Close()
		}
	})
	defer wg.Wait()
	select {
	case res := <-p.results:
		return res
	case <-time.After(6 * probeStall):
		t.Fatalf("%s?mode=%s: the request never reached the probe", url, mode)
		return probeResult{}
	}
}

// frontBehaviour is a front server's measured behaviour with a gateway
// that answers before it has read the request body.
type frontBehaviour struct {
	front, proto string
	// stopsSending: the front sent no more request body once response
	// bytes arrived (nginx).
	stopsSending bool
	sentBefore   int64 // body bytes that arrived in that case
	// readsLate: the front took no response bytes until it had sent the
	// whole body (a blocking writer, Apache).
	readsLate bool
	tookEarly int64
}

// deadlocks reports whether an echo that writes before reading the whole
// body deadlocks behind this front.
func (b frontBehaviour) deadlocks() bool { return b.stopsSending || b.readsLate }

func (b frontBehaviour) String() string {
	var s []string
	if b.stopsSending {
		s = append(s, fmt.Sprintf("stops sending the body once response bytes arrive (%d of %d body bytes sent)", b.sentBefore, probeSize))
	} else {
		s = append(s, "keeps sending the body")
	}
	if b.readsLate {
		s = append(s, fmt.Sprintf("reads no response until the body is sent (took %d of %d early bytes)", b.tookEarly, probeSize))
	} else {
		s = append(s, "reads the response while sending")
	}
	return fmt.Sprintf("%-22s %-8s %s", b.front, b.proto, strings.Join(s, "; "))
}

func measureFront(t *testing.T, p *duplexProbe, front, proto, url string) frontBehaviour {
	t.Helper()
	b := frontBehaviour{front: front, proto: proto}
	head := runProbe(t, p, url, "head")
	if head.writeErr != nil {
		t.Fatalf("%s %s: head probe: writing the head: %v", front, proto, head.writeErr)
	}
	b.stopsSending = head.bodyRead < probeSize
	b.sentBefore = head.bodyRead
	big := runProbe(t, p, url, "big")
	b.readsLate = big.writeErr != nil
	b.tookEarly = big.wrote
	if !b.readsLate && big.bodyRead < probeSize && !b.stopsSending {
		t.Errorf("%s %s: big probe read %d body bytes (%v) though the head probe got all", front, proto, big.bodyRead, big.bodyErr)
	}
	t.Logf("measured: %s", b)
	return b
}

// TestFrontServersDuplex measures, for each front server and protocol
// junction serves, whether an exchange that answers before reading the
// whole request body can deadlock, and checks the response_buffering
// "auto" table against it. Run it after upgrading a front server:
//
//	go test ./integration -run TestFrontServersDuplex -v
func TestFrontServersDuplex(t *testing.T) {
	p := &duplexProbe{results: make(chan probeResult, 4)}
	dir := openTempDir(t)
	socks := map[string]string{}
	for _, proto := range []string{"scgi", "fastcgi", "ajp", "http"} {
		socks[proto] = serveProbe(t, dir, proto, p)
	}
	var measured []frontBehaviour

	t.Run("nginx", func(t *testing.T) {
		needBin(t, nginxBin, "nginx-light")
		addr := freeAddr(t)
		startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        client_max_body_size 20m;
        location /scgi/ { include /etc/nginx/scgi_params; scgi_pass unix:%[2]s; }
        location /fastcgi/ { include /etc/nginx/fastcgi_params; fastcgi_pass unix:%[3]s; }
        location /http/ { proxy_pass http://unix:%[4]s:/; proxy_http_version 1.1; }
    }
`, addr, socks["scgi"], socks["fastcgi"], socks["http"]))
		for _, proto := range []string{"scgi", "fastcgi", "http"} {
			measured = append(measured, measureFront(t, p, "nginx "+map[string]string{
				"scgi": "scgi_pass", "fastcgi": "fastcgi_pass", "http": "proxy_pass"}[proto], proto,
				"http://"+addr+"/"+proto+"/probe"))
		}
	})
	t.Run("apache", func(t *testing.T) {
		addr := freeAddr(t)
		startApache(t, []string{"proxy", "proxy_scgi", "proxy_fcgi", "proxy_ajp", "proxy_http"}, fmt.Sprintf(`Listen %[1]s
LimitRequestBody 0
ProxyPass /scgi/ "unix:%[2]s|scgi://localhost/scgi/"
ProxyPass /fastcgi/ "unix:%[3]s|fcgi://localhost/fastcgi/"
ProxyPass /ajp/ "unix:%[4]s|ajp://localhost/ajp/"
ProxyPass /http/ "unix:%[5]s|http://localhost/http/"
`, addr, socks["scgi"], socks["fastcgi"], socks["ajp"], socks["http"]))
		for _, proto := range []string{"scgi", "fastcgi", "ajp", "http"} {
			measured = append(measured, measureFront(t, p, "apache mod_proxy_"+map[string]string{
				"scgi": "scgi", "fastcgi": "fcgi", "ajp": "ajp", "http": "http"}[proto], proto,
				"http://"+addr+"/"+proto+"/probe"))
		}
	})
	t.Run("mod_jk", func(t *testing.T) {
		// mod_jk reaches its workers over TCP.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveProbeOn(t, ln, "ajp", p)
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		addr := freeAddr(t)
		workers := writeFile(t, dir, "workers.properties", fmt.Sprintf(
			"worker.list=probe\nworker.probe.type=ajp13\nworker.probe.host=%s\nworker.probe.port=%s\n", host, port))
		startApache(t, append([]string{"jk"}, ajpModules...), fmt.Sprintf(`Listen %[1]s
LimitRequestBody 0
JkWorkersFile %[2]s
JkLogFile %[3]s/mod_jk.log
JkShmFile %[3]s/jk.shm
JkMount /ajp/* probe
`, addr, workers, dir))
		measured = append(measured, measureFront(t, p, "apache mod_jk", "ajp", "http://"+addr+"/ajp/probe"))
	})
	t.Run("lighttpd", func(t *testing.T) {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		startLighttpd(t, fmt.Sprintf(`server.bind = "127.0.0.1"
server.port = %[1]d
server.modules += ("mod_scgi", "mod_fastcgi", "mod_proxy")
server.max-request-size = 20480
scgi.server = ( "/scgi/" => (( "socket" => %[2]q, "check-local" => "disable" )) )
fastcgi.server = ( "/fastcgi/" => (( "socket" => %[3]q, "check-local" => "disable" )) )
$HTTP["url"] =~ "^/http/" { proxy.server = ( "" => (( "host" => %[4]q )) ) }
`, port, socks["scgi"], socks["fastcgi"], socks["http"]), addr)
		for _, proto := range []string{"scgi", "fastcgi", "http"} {
			measured = append(measured, measureFront(t, p, "lighttpd mod_"+map[string]string{
				"scgi": "scgi", "fastcgi": "fastcgi", "http": "proxy"}[proto], proto,
				"http://"+addr+"/"+proto+"/probe"))
		}
	})

	var report strings.Builder
	deadlocks := map[string][]string{}
	for _, b := range measured {
		fmt.Fprintf(&report, "\n  %s → deadlocks: %v", b, b.deadlocks())
		if b.deadlocks() {
			deadlocks[b.proto] = append(deadlocks[b.proto], b.front)
		}
	}
	t.Logf("front servers answered early:%s", report.String())
	if t.Failed() || len(measured) == 0 {
		return
	}
	for _, proto := range []string{"scgi", "fastcgi", "ajp", "http"} {
		l := config.Listener{Protocol: proto, ResponseBuffering: config.ResponseBufferingAuto}
		switch holds := l.HoldsResponses(); {
		case len(deadlocks[proto]) > 0 && !holds:
			t.Errorf("response_buffering auto does not hold %s responses, but %s deadlock", proto, strings.Join(deadlocks[proto], ", "))
		case len(deadlocks[proto]) == 0 && holds && proto != "http":
			// http holds anyway: net/http's own HTTP/1 server discards an
			// unread body once the response starts.
			t.Errorf("response_buffering auto holds %s responses, but no front server measured needs it", proto)
		}
	}
}
