package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// shadowCandidate is the new implementation of the app: an HTTP instance
// answering as the CGI script does, except for /app/differs.
func shadowCandidate(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/app/differs" {
			fmt.Fprintf(w, "rewritten %s\n", r.URL.Path)
			return
		}
		fmt.Fprintf(w, "%s %s %s\n", r.Method, r.URL.RequestURI(), body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// shadowScript is the current implementation: a CGI script.
const shadowScript = `#!/bin/sh
printf 'Content-Type: text/plain\n\n'
body=$(cat)
printf '%s %s %s\n' "$REQUEST_METHOD" "$REQUEST_URI" "$body"
`

// TestShadowThroughNginx: a route whose primary is a CGI script copies
// its requests to an HTTP pool that answers one URL differently. Clients
// get the script's answers; /metrics counts exactly the expected same
// and different pairs; the status page shows the difference; with the
// shadow down, only errors are counted and clients see nothing of it.
func TestShadowThroughNginx(t *testing.T) {
	needJunction(t)
	dir := openTempDir(t)
	script := writeFile(t, dir, "app.sh", shadowScript)
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, candidate string) (web, ops string) {
		addr, ops, web := freeAddr(t), freeAddr(t), freeAddr(t)
		startJunction(t, fmt.Sprintf(`
metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q}
backends:
  current: {type: cgi, allow_root: true, script: %q}
  candidate: {type: http, instances: [%q]}
routes:
  - prefix: /app/
    backend: current
    shadow: {backend: candidate, percent: 100, methods: [GET, HEAD, POST], compare: [status, content_type, body], timeout: 5s}
`, ops, addr, script, candidate), addr, ops)
		startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass %s;
        }
    }
`, web, addr), web)
		return web, ops
	}
	requests := func(t *testing.T, web string) {
		for _, path := range []string{"/app/one", "/app/two?x=1", "/app/differs", "/app/three"} {
			got := httpGet(t, "http://"+web+path)
			if got.Status != 200 || !strings.HasPrefix(got.Body, "GET "+path+" ") {
				t.Fatalf("GET %s = %d %q, want the script's answer", path, got.Status, got.Body)
			}
		}
		req, _ := http.NewRequest("POST", "http://"+web+"/app/form", strings.NewReader("a=1&b=2"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if got := httpDo(t, req); got.Status != 200 || got.Body != "POST /app/form a=1&b=2\n" {
			t.Fatalf("POST = %d %q", got.Status, got.Body)
		}
	}

	t.Run("compare", func(t *testing.T) {
		web, ops := run(t, shadowCandidate(t))
		requests(t, web)
		var m metricsSample
		waitFor(10*time.Second, func() bool {
			m = scrape(t, ops)
			return m.sum("junction_shadow_total", `result="same"`)+m.sum("junction_shadow_total", `result="different"`) >= 5
		})
		for result, want := range map[string]float64{"same": 4, "different": 1, "error": 0, "dropped": 0} {
			if got := m.sum("junction_shadow_total", `route="/app/"`, `result="`+result+`"`); got != want {
				t.Errorf("junction_shadow_total{result=%q} = %v, want %v", result, got, want)
			}
		}
		st := statusJSON(t, ops)
		sh := st["routes"].([]any)[0].(map[string]any)["shadow"].(map[string]any)
		last := sh["last_differences"].([]any)
		if sh["match_rate"].(float64) != 0.8 || len(last) != 1 || last[0].(map[string]any)["request"] != "GET /app/differs HTTP/1.1" {
			t.Errorf("status.json shadow: %v", sh)
		}
		if page := httpGet(t, "http://"+ops+"/status").Body; !strings.Contains(page, "Last differences on /app/") {
			t.Error("the status page does not show the difference")
		}
	})

	t.Run("shadow down", func(t *testing.T) {
		down := freeAddr(t) // nothing listens there
		web, ops := run(t, down)
		requests(t, web)
		var m metricsSample
		waitFor(10*time.Second, func() bool {
			m = scrape(t, ops)
			return m.sum("junction_shadow_total", `result="error"`) >= 5
		})
		for result, want := range map[string]float64{"same": 0, "different": 0, "error": 5, "dropped": 0} {
			if got := m.sum("junction_shadow_total", `route="/app/"`, `result="`+result+`"`); got != want {
				t.Errorf("junction_shadow_total{result=%q} = %v, want %v", result, got, want)
			}
		}
	})
}
