package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChunkedAJPSpool: Apache mod_proxy_ajp forwards a chunked request
// body as it comes, without a length; a cgi backend with max_body_spool
// spools it and the script reads it whole with CONTENT_LENGTH set, a body
// beyond the bound is 413, and without the key it stays 411. The AJP
// connection serves on after each refusal, and no file is left behind.
func TestChunkedAJPSpool(t *testing.T) {
	t.Parallel()
	needBin(t, "/usr/bin/python3", "python3")
	s := newSite(t)
	spoolDir := filepath.Join(s.Dir, "spool")
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ajpAddr, httpAddr := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: ajp, address: %[1]q, backend: spooled}
routes:
  - {prefix: /small/, backend: small}
  - {prefix: /plain/, backend: plain}
backends:
  spooled: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /cgi-bin/, max_body_spool: 16MiB, spool_dir: %[3]q}
  small: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /small/, max_body_spool: 64KiB, spool_dir: %[3]q}
  plain: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /plain/}
`, ajpAddr, s.Root, spoolDir), ajpAddr)
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf(`Listen %[1]s
LimitRequestBody 0
ProxyPass / ajp://%[2]s/
`, httpAddr, ajpAddr), httpAddr)
	url := func(p string) string { return "http://" + httpAddr + p }
	post := func(t *testing.T, target string, body []byte) httpResult {
		t.Helper()
		// Unknown length: net/http sends it chunked.
		req, _ := http.NewRequest("POST", url(target), io.NopCloser(bytes.NewReader(body)))
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		return httpDo(t, req)
	}
	afterwards := func(t *testing.T) {
		t.Helper()
		if r := httpGet(t, url("/cgi-bin/hello.sh")); r.Status != 200 {
			t.Fatalf("GET after the chunked POST = %d %q", r.Status, r.Body)
		}
		if ents, err := os.ReadDir(spoolDir); err != nil || len(ents) != 0 {
			t.Errorf("spool_dir holds %d entries (%v), want none", len(ents), err)
		}
	}

	t.Run("spooled", func(t *testing.T) {
		body := make([]byte, 5<<20+3)
		rand.Read(body)
		sum := sha256.Sum256(body)
		r := post(t, "/cgi-bin/post-sha256.py", body)
		want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
		if r.Status != 200 || r.Body != want {
			t.Fatalf("chunked POST = %d %q, want %q", r.Status, r.Body, want)
		}
		afterwards(t)
	})
	t.Run("over the bound", func(t *testing.T) {
		r := post(t, "/small/post-sha256.py", make([]byte, 1<<20))
		if r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked POST of 1 MiB over 64KiB = %d %q, want 413", r.Status, r.Body)
		}
		afterwards(t)
	})
	t.Run("without the key", func(t *testing.T) {
		r := post(t, "/plain/post-sha256.py", []byte("chunked body"))
		if r.Status != http.StatusLengthRequired {
			t.Fatalf("chunked POST = %d %q, want 411", r.Status, r.Body)
		}
		afterwards(t)
	})
}

// TestChunkedHTTPStall: spooling a chunked body on junction's own http
// listener keeps the listener's read_timeout for each read: a client that
// stops sending mid-body is cut off (its connection closed), no script
// runs and nothing is left in spool_dir.
func TestChunkedHTTPStall(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	spoolDir := filepath.Join(s.Dir, "spool")
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: http, address: %[1]q, backend: spooled, read_timeout: 1s}
backends:
  spooled: {type: cgi, allow_root: true, root: %[2]q, url_prefix: /cgi-bin/, max_body_spool: 16MiB, spool_dir: %[3]q}
`, addr, s.Root, spoolDir), addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /cgi-bin/post-sha256.py HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"); err != nil {
		t.Fatal(err)
	}
	// Then nothing more: the next read of the body times out.
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The request never arrived whole: no response (not net/http's
	// implicit 200), the connection closed.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	switch {
	case err == nil:
		t.Fatalf("stalled chunked body answered %s, want the connection closed", resp.Status)
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("no answer to a stalled chunked body after 30s: read_timeout not applied")
	}
	if ents, err := os.ReadDir(spoolDir); err != nil || len(ents) != 0 {
		t.Errorf("spool_dir holds %d entries (%v), want none", len(ents), err)
	}
	if !waitFor(10*time.Second, func() bool {
		return strings.Contains(j.Output(), "reading request body of unknown length: read tcp") && strings.Contains(j.Output(), "i/o timeout")
	}) {
		t.Errorf("no log of the failed body:\n%s", tail(j.Output(), 20))
	}
}
