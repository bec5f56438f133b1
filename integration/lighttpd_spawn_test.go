package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestLighttpdSpawnsJunction has lighttpd's mod_fastcgi start junction
// itself (bin-path), as it starts php-cgi: lighttpd binds the socket and
// hands it over as fd 0, which junction's "fd:0" FastCGI listener takes.
func TestLighttpdSpawnsJunction(t *testing.T) {
	needJunction(t)
	s := newSite(t)
	sock := filepath.Join(openTempDir(t), "junction.sock")
	cfg := writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`log: {level: info, format: text}
listeners:
  - {protocol: fastcgi, address: "fd:0", backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s}
`, s.Root))
	httpAddr := freeAddr(t)
	host, port, _ := net.SplitHostPort(httpAddr)
	// lighttpd sends SCRIPT_FILENAME = document root + path: the site's
	// directory holds cgi-bin/, junction's root.
	l := startLighttpd(t, fmt.Sprintf(`server.bind = %q
server.port = %s
server.modules += ("mod_fastcgi")
server.max-request-size = 20480
fastcgi.server = ( "/cgi-bin/" => ((
    "socket" => %q,
    "bin-path" => "%s serve -c %s",
    "max-procs" => 1,
    "check-local" => "disable"
)) )
$HTTP["url"] =~ "^/" { server.document-root = %q }
`, host, port, sock, junctionBin, cfg, s.Dir), httpAddr)

	r := httpGet(t, "http://"+httpAddr+"/cgi-bin/env.sh?a=1")
	if r.Status != http.StatusOK {
		t.Fatalf("GET env.sh = %d %q\n%s", r.Status, r.Body, l.Output())
	}
	env := envOf(r.Body)
	for k, want := range map[string]string{"GATEWAY_INTERFACE": "CGI/1.1", "QUERY_STRING": "a=1",
		"SCRIPT_NAME": "/cgi-bin/env.sh", "REQUEST_METHOD": "GET"} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	// junction must not pass its own start-up plumbing on to scripts.
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s = %q reached the script", k, v)
		}
	}

	body := bytes.Repeat([]byte("junction-post "), 70000) // ~1 MB, several FastCGI records
	req, err := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/cgi-bin/post-sha256.py", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r = httpDo(t, req)
	want := fmt.Sprintf("sha256=%x\nlength=%d\n", sha256.Sum256(body), len(body))
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Body, want) {
		t.Errorf("POST = %d %q, want %q", r.Status, r.Body, want)
	}
}
