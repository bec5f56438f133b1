package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
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
