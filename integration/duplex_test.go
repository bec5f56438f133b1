package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// echoTimeout bounds one echo exchange. A deadlocked exchange never ends
// by itself (nginx's own timeouts are 60s), so this is what turns a hang
// into a failure; a healthy 8 MiB echo takes well under a second.
const echoTimeout = 20 * time.Second

// startEchoInstance serves, from the test process on the unix socket
// sock, an HTTP application instance that echoes a request body while it reads it: it sends its
// head, then writes and flushes every chunk as soon as it has read it
// (http.ResponseController.EnableFullDuplex).
func startEchoInstance(t testing.TB, sock string) string {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, rerr := r.Body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			}
			if rerr != nil {
				return
			}
		}
	})}
	go srv.Serve(ln) // returns ErrServerClosed after Close
	t.Cleanup(func() { srv.Close() })
	return "unix:" + sock
}

// checkEcho posts size random bytes to url and checks that exactly those
// bytes come back (length and SHA-256) within echoTimeout.
func checkEcho(t testing.TB, url string, size int) {
	t.Helper()
	body := make([]byte, size)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(body)
	c := newHTTPClient(echoTimeout)
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %d bytes to %s: %v (after %v)", size, url, err, time.Since(start).Round(time.Millisecond))
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("POST %d bytes to %s: %d %s, echo broke after %d bytes (%v): %v",
			size, url, resp.StatusCode, resp.Status, n, time.Since(start).Round(time.Millisecond), err)
	}
	if resp.StatusCode != http.StatusOK || n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("POST %d bytes to %s: %d, echoed %d bytes with sha256 %x, want 200, %d bytes, %s",
			size, url, resp.StatusCode, n, h.Sum(nil), size, hex.EncodeToString(want[:]))
	}
}

// TestFullDuplexNginxUnix sends uploads through nginx (scgi_pass and
// fastcgi_pass over unix sockets) to a CGI script and to an HTTP app
// instance that both echo the body while they read it. nginx stops sending
// the request body once response bytes arrive, and waits for the response
// meanwhile: unless junction holds the response until it has read the
// whole body, the exchange deadlocks after a few hundred KiB (over TCP the
// socket buffers hide it for small bodies).
func TestFullDuplexNginxUnix(t *testing.T) {
	s := newSite(t)
	dir := openTempDir(t)
	app := startEchoInstance(t, filepath.Join(dir, "app.sock"))
	scgiSock, fcgiSock := filepath.Join(dir, "scgi.sock"), filepath.Join(dir, "fcgi.sock")
	smallSock := filepath.Join(dir, "small.sock")
	startJunction(t, fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: scgi, address: "unix:%[1]s", backend: scripts}
  - {protocol: fastcgi, address: "unix:%[2]s", backend: scripts}
  - {protocol: scgi, address: "unix:%[5]s", backend: scripts, max_spool_bytes: 1048576}
routes:
  - {prefix: /app/, backend: app}
backends:
  scripts: {type: cgi, allow_root: true, root: %[3]q, url_prefix: /cgi-bin/, timeout: 30s}
  app: {type: http, instances: [%[4]q]}
`, scgiSock, fcgiSock, s.Root, app, smallSock), "unix:"+scgiSock, "unix:"+fcgiSock, "unix:"+smallSock)

	fronts := map[string]string{"scgi_pass": freeAddr(t), "fastcgi_pass": freeAddr(t), "small": freeAddr(t)}
	startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        client_max_body_size 20m;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass unix:%[2]s;
        }
    }
    server {
        listen %[3]s;
        client_max_body_size 20m;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:%[4]s;
        }
    }
    server {
        listen %[5]s;
        client_max_body_size 20m;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass unix:%[6]s;
        }
    }
`, fronts["scgi_pass"], scgiSock, fronts["fastcgi_pass"], fcgiSock, fronts["small"], smallSock))

	for _, pass := range []string{"scgi_pass", "fastcgi_pass"} {
		for _, target := range []struct{ name, path string }{
			{"cgi", "/cgi-bin/echo-stdin.sh"},
			{"http-pool", "/app/echo"},
		} {
			for _, mib := range []int{1, 8} {
				t.Run(fmt.Sprintf("%s/%s/%dMiB", pass, target.name, mib), func(t *testing.T) {
					checkEcho(t, "http://"+fronts[pass]+target.path, mib<<20)
				})
			}
		}
	}

	// max_spool_bytes 1 MiB: an 8 MiB echo cannot be held. It is refused
	// with 503 before anything reaches nginx, and the listener serves the
	// next request as usual.
	t.Run("max_spool_bytes", func(t *testing.T) {
		url := "http://" + fronts["small"] + "/cgi-bin/echo-stdin.sh"
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(make([]byte, 8<<20)))
		if err != nil {
			t.Fatal(err)
		}
		r := httpDo(t, req)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("8 MiB echo beyond max_spool_bytes = %d %q (Retry-After %q), want 503 with Retry-After",
				r.Status, tail(r.Body, 200), r.Header.Get("Retry-After"))
		}
		checkEcho(t, url, 512<<10)
	})
}
