package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/fcgiwire"
)

// fcgiRawPost sends one POST to a FastCGI listener as a web server would,
// but with a STDIN stream of its own choosing (which no web server would
// send), and returns the STDOUT stream junction answered with.
func fcgiRawPost(t *testing.T, addr, uri string, contentLength int, stdin []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var params []byte
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", uri}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"CONTENT_LENGTH", fmt.Sprint(contentLength)}, {"CONTENT_TYPE", "application/octet-stream"},
		{"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"}, {"REMOTE_ADDR", "127.0.0.1"}, {"REMOTE_PORT", "40000"},
		{"HTTP_HOST", "localhost"},
	} {
		params = fcgiwire.AppendPair(params, kv[0], kv[1])
	}
	in := fcgiwire.AppendBeginRequest(nil, 1, fcgiwire.RoleResponder, 0)
	in = fcgiwire.AppendRecord(in, fcgiwire.TypeParams, 1, params, fcgiwire.PadFor(len(params)))
	in = fcgiwire.AppendRecord(in, fcgiwire.TypeParams, 1, nil, 0)
	in = fcgiwire.AppendRecord(in, fcgiwire.TypeStdin, 1, stdin, fcgiwire.PadFor(len(stdin)))
	in = fcgiwire.AppendRecord(in, fcgiwire.TypeStdin, 1, nil, 0)
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	for {
		var h [fcgiwire.HeaderLen]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("reading the answer to %s (%d of %d bytes): %v after %q", uri, len(stdin), contentLength, err, stdout.String())
		}
		hdr := fcgiwire.ParseHeader(h[:])
		content := make([]byte, int(hdr.ContentLength)+int(hdr.PaddingLength))
		if _, err := io.ReadFull(c, content); err != nil {
			t.Fatal(err)
		}
		content = content[:hdr.ContentLength]
		switch hdr.Type {
		case fcgiwire.TypeStdout:
			stdout.Write(content)
		case fcgiwire.TypeEndRequest:
			if st := binary.BigEndian.Uint32(content); st != 0 {
				t.Logf("END_REQUEST appStatus %d", st)
			}
			return stdout.String()
		}
	}
}

// TestFastCGIBodyLengthMismatchIs400: a STDIN stream that ends before
// CONTENT_LENGTH, or carries more than it, is the client's failure all the
// way through: the FastCGI front end fails the body's read, and the CGI
// backend and the HTTP pool backend answer 400 (never 502), without
// counting it against the instance (fail_threshold 1 would eject it at
// the first failure). The same body of the right length is served.
func TestFastCGIBodyLengthMismatchIs400(t *testing.T) {
	app, _ := startAppInstance(t, "a1")
	s := newSite(t)
	addr := freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: fastcgi, address: %q, backend: scripts}
routes:
  - {prefix: /app/, backend: app}
backends:
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/}
  app:
    type: http
    instances: [%q]
    health: {fail_threshold: 1, eject_base: 30s}
`, addr, s.Root, app), addr)

	body := []byte(strings.Repeat("0123456789", 100))
	for _, target := range []string{"/cgi-bin/post-sha256.py", "/app/upload"} {
		for _, tc := range []struct {
			name   string
			length int
			stdin  []byte
			status string
		}{
			{"exact", len(body), body, "Status: 200"},
			{"short", len(body) + 500, body, "Status: 400"},
			{"more STDIN", len(body) - 1, body, "Status: 400"},
			{"one byte more", len(body), append(bytes.Clone(body), 'x'), "Status: 400"},
		} {
			t.Run(strings.TrimPrefix(target, "/")+"/"+tc.name, func(t *testing.T) {
				out := fcgiRawPost(t, addr, target, tc.length, tc.stdin)
				if !strings.HasPrefix(out, tc.status) {
					t.Errorf("%d bytes of STDIN for CONTENT_LENGTH %d: answered %q, want %s", len(tc.stdin), tc.length, out, tc.status)
				}
			})
		}
	}
	// The instance still serves: nothing was counted against it.
	if out := fcgiRawPost(t, addr, "/app/after", len(body), body); !strings.HasPrefix(out, "Status: 200") {
		t.Errorf("after the clients' failures the instance answered %q", out)
	}
	for _, line := range strings.Split(j.Output(), "\n") {
		if strings.Contains(line, "instance ejected") {
			t.Errorf("an instance was ejected: %s", line)
		}
		if strings.Contains(line, "request failed") && !strings.Contains(line, "status=400") {
			t.Errorf("a body of the wrong length was not logged as the client's failure (400): %s", line)
		}
	}
}
