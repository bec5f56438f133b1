package integration

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAllowNginx: nginx connects to junction's SCGI listener from
// 127.0.0.1. With allow [127.0.0.2] junction closes nginx's connection at
// accept, so nginx answers 502 and junction logs the refusal; with
// [127.0.0.1/32] the request is served.
func TestAllowNginx(t *testing.T) {
	root := newSite(t).Root
	for _, tt := range []struct {
		allow string
		want  int
	}{
		{`["127.0.0.2"]`, 502},
		{`["127.0.0.1/32"]`, 200},
	} {
		t.Run(tt.allow, func(t *testing.T) {
			addr, web := freeAddr(t), freeAddr(t)
			j := startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q, backend: scripts, allow: %s}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/}
`, addr, tt.allow, root), addr)
			startNginx(t, fmt.Sprintf(`
    server {
        listen %s;
        location / {
            include /etc/nginx/scgi_params;
            scgi_pass %s;
        }
    }
`, web, addr), web)
			got := httpGet(t, "http://"+web+"/cgi-bin/hello.sh")
			if got.Status != tt.want {
				t.Fatalf("GET through nginx = %d %q, want %d", got.Status, got.Body, tt.want)
			}
			refused := strings.Contains(j.Output(), "client=127.0.0.1:")
			if tt.want == 502 && !waitFor(5*time.Second, func() bool { return strings.Contains(j.Output(), "client=127.0.0.1:") }) {
				t.Errorf("junction did not log the refused client:\n%s", j.Output())
			}
			if tt.want == 200 && (refused || !strings.Contains(got.Body, "Hello from sh")) {
				t.Errorf("allowed client: body %q, junction log:\n%s", got.Body, j.Output())
			}
		})
	}
}

// TestAllowWarning: an SCGI or FastCGI listener that any host can reach
// and that has no allow list is reported by junction check and at every
// start; loopback, unix and restricted listeners are not.
func TestAllowWarning(t *testing.T) {
	root := newSite(t).Root
	// As root, scripts need a user of their own (or another warning).
	user := ""
	if os.Geteuid() == 0 {
		user = `, user: "65534"`
	}
	conf := writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`listeners:
  - {protocol: scgi, address: "0.0.0.0:4000", backend: scripts}
  - {protocol: fastcgi, address: "[::]:9000", backend: scripts}
  - {protocol: scgi, address: "0.0.0.0:4001", backend: scripts, allow: [10.0.0.0/8]}
  - {protocol: scgi, address: "127.0.0.1:4002", backend: scripts}
  - {protocol: http, address: "0.0.0.0:8080", backend: scripts}
  - {protocol: scgi, address: "unix:%s/j.sock", backend: scripts}
backends:
  scripts: {type: cgi, root: %q%s}
`, t.TempDir(), root, user))
	out, err := junctionCommand(t, "check", "-c", conf).CombinedOutput()
	want := "warning: listeners[0].allow: scgi listener on 0.0.0.0:4000 accepts any client; set allow\n" +
		"warning: listeners[1].allow: fastcgi listener on [::]:9000 accepts any client; set allow\n" +
		"ok\n"
	if err != nil || string(out) != want {
		t.Errorf("junction check: %v\n%s\nwant:\n%s", err, out, want)
	}

	port := strconv.Itoa(freePort(t))
	j := startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: scgi, address: "0.0.0.0:%s", backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %q}
`, port, root), net.JoinHostPort("127.0.0.1", port))
	line := "warning: listeners[0].allow: scgi listener on 0.0.0.0:" + port + " accepts any client; set allow"
	if !strings.Contains(j.Output(), line) {
		t.Errorf("junction serve did not warn %q:\n%s", line, j.Output())
	}
}
