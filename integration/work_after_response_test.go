package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// workAfterScript answers at once, then works after its response (as a
// script that logs or sends mail after answering) and leaves
// ../run/worked-QUERY behind when done. With QUERY_STRING "closed" it
// sends no Content-Length and closes stdout instead, and works longer than
// junction's kill grace (2s).
const workAfterScript = `#!/bin/sh
name=$(printf '%s' "$QUERY_STRING" | tr -cd 'A-Za-z0-9_-')
if [ "$name" = closed ]; then
	printf 'Content-Type: text/plain\r\n\r\nok'
	exec >&-
	sleep 3
else
	printf 'Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok'
	sleep 1
fi
touch "$(dirname "$0")/../run/worked-$name"
`

// TestWorkAfterResponseThroughNginx: a script that has given its whole
// response and goes on working is not killed when nginx (scgi_pass), or an
// HTTP client, closes the connection once it has every byte.
func TestWorkAfterResponseThroughNginx(t *testing.T) {
	s := newSite(t)
	if err := os.WriteFile(filepath.Join(s.Root, "workafter.sh"), []byte(workAfterScript), 0o755); err != nil {
		t.Fatal(err)
	}
	scgi, direct := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %[1]q, backend: scripts}
  - {protocol: http, address: %[2]q, backend: scripts}
backends:
  scripts: {type: cgi, allow_root: true, root: %[3]q, url_prefix: /cgi-bin/, timeout: 30s}
`, scgi, direct, s.Root), scgi, direct)
	front := nginxSCGI(t, scgi)

	worked := func(t *testing.T, name string) {
		t.Helper()
		marker := filepath.Join(s.Run, "worked-"+name)
		if !waitFor(15*time.Second, func() bool { _, err := os.Stat(marker); return err == nil }) {
			t.Errorf("%s: the script was killed after its response: its work never finished", name)
		}
	}

	for _, name := range []string{"length", "closed"} {
		t.Run("nginx scgi_pass "+name, func(t *testing.T) {
			r := httpGet(t, fmt.Sprintf("http://%s/cgi-bin/workafter.sh?%s", front, name))
			if r.Status != 200 || r.Body != "ok" {
				t.Fatalf("GET = %d %q, want 200 ok", r.Status, r.Body)
			}
			worked(t, name)
		})
	}

	t.Run("http client closing after the last byte", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", direct, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /cgi-bin/workafter.sh?http HTTP/1.1\r\nHost: %s\r\n\r\n", direct)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		body := make([]byte, 2)
		_, err = io.ReadFull(resp.Body, body)
		c.Close() // every byte is in: the client goes
		if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("GET = %d %q (%v), want 200 ok", resp.StatusCode, body, err)
		}
		worked(t, "http")
	})
}
