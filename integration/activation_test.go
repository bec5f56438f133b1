package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemdActivation starts junction the way systemd does for a socket
// unit: the listening sockets already bound, passed as fds 3 and up, with
// LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (the pid is only known after
// fork, hence the shell that sets it and execs junction in its place).
// One listener selects its socket by name, the other by the address it was
// bound to; nginx then reaches the scripts through the inherited SCGI
// socket.
func TestSystemdActivation(t *testing.T) {
	needJunction(t)
	needBin(t, nginxBin, "nginx-light")
	s := newSite(t)
	sock := filepath.Join(openTempDir(t), "scgi.sock")
	scgiLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer scgiLn.Close()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer httpLn.Close()
	var files []*os.File
	for _, l := range []interface{ File() (*os.File, error) }{scgiLn.(*net.UnixListener), httpLn.(*net.TCPListener)} {
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}

	cfg := writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`log: {level: info, format: text}
listeners:
  - {protocol: scgi, address: "systemd:junction-scgi", backend: scripts}
  - {protocol: http, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, timeout: 30s}
`, httpLn.Addr().String(), s.Root))
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" serve -c "$1"`, junctionBin, cfg)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=2", "LISTEN_FDNAMES=junction-scgi:junction-http")
	cmd.ExtraFiles = files
	j := startCmd(t, "junction", cmd, 5*time.Second, true)
	// The test still holds both sockets while junction starts, so binding
	// them again would fail (address in use): junction must adopt them.
	waitFor(10*time.Second, func() bool { return j.Exited() || junctionSaysListening(j) })
	if j.Exited() || !junctionSaysListening(j) {
		t.Fatalf("junction did not start on the inherited sockets: %v\n%s", j.err, j.Output())
	}
	// From here on only junction holds them.
	for _, f := range files {
		f.Close()
	}
	scgiLn.(*net.UnixListener).SetUnlinkOnClose(false)
	scgiLn.Close()
	httpLn.Close()

	nginxAddr := freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        location / { include /etc/nginx/scgi_params; scgi_pass unix:%s; }
    }
`, nginxAddr, sock), nginxAddr)

	for _, url := range []string{"http://" + nginxAddr + "/cgi-bin/env.sh", "http://" + httpLn.Addr().String() + "/cgi-bin/env.sh"} {
		r := httpGet(t, url)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s = %d %q\n%s", url, r.Status, r.Body, j.Output())
		}
		env := envOf(r.Body)
		if env["SCRIPT_NAME"] != "/cgi-bin/env.sh" || env["GATEWAY_INTERFACE"] != "CGI/1.1" {
			t.Errorf("GET %s: environment %v", url, env)
		}
		for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			if v, ok := env[k]; ok {
				t.Errorf("GET %s: %s=%q reached the script", url, k, v)
			}
		}
	}
}

// junctionSaysListening reports whether junction logged both listeners.
func junctionSaysListening(j *proc) bool {
	return strings.Count(j.Output(), "msg=listening") >= 2
}
