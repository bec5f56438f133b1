package ajp13

// The capture program: with JUNCTION_AJP_CAPTURE=1, TestCaptureApache starts
// a real Apache httpd (mod_proxy_ajp and mod_jk) in front of a tiny recorder that
// answers every request minimally, sends it a few requests, and writes the
// FORWARD_REQUEST packets Apache sent (mod_proxy_ajp and mod_jk) as fuzz seeds under
// testdata/fuzz/FuzzForwardRequest. Only the seeds are committed.
//
//	JUNCTION_AJP_CAPTURE=1 go test -run TestCaptureApache ./protocols/ajp13/

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCaptureApache(t *testing.T) {
	if os.Getenv("JUNCTION_AJP_CAPTURE") == "" {
		t.Skip("set JUNCTION_AJP_CAPTURE=1 to capture packets from Apache into testdata/fuzz")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var packets [][]byte
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go recordConn(c, func(p []byte) {
				mu.Lock()
				packets = append(packets, append([]byte(nil), p...))
				mu.Unlock()
			})
		}
	}()

	dir := t.TempDir()
	port := freeLoopbackPort(t)
	ajp := ln.Addr().(*net.TCPAddr).Port
	conf := fmt.Sprintf(`ServerRoot %[1]s
Listen 127.0.0.1:%[2]d
PidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
LogLevel warn proxy_ajp:trace8
User www-data
Group www-data
ServerName capture.test
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_ajp_module /usr/lib/apache2/modules/mod_proxy_ajp.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
LoadModule jk_module /usr/lib/apache2/modules/mod_jk.so
JkWorkersFile %[1]s/workers.properties
JkLogFile %[1]s/mod_jk.log
JkShmFile %[1]s/jk.shm
JkMount /jk/* jk
ProxyPass /jk/ !
ProxyPass /secret/ ajp://127.0.0.1:%[3]d/secret/ secret=s3cr3t
ProxyPass / ajp://127.0.0.1:%[3]d/
`, dir, port, ajp)
	workers := fmt.Sprintf("worker.list=jk\nworker.jk.type=ajp13\nworker.jk.host=127.0.0.1\nworker.jk.port=%d\nworker.jk.secret=jks3cr3t\nworker.jk.ping_mode=A\n", ajp)
	if err := os.WriteFile(filepath.Join(dir, "workers.properties"), []byte(workers), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "httpd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("apache2", "-f", filepath.Join(dir, "httpd.conf"), "-DFOREGROUND")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/")

	mu.Lock()
	packets = nil
	mu.Unlock()
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(name string, req *http.Request) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get, _ := http.NewRequest("GET", base+"/app/some%20path/x.cgi?a=1&b=%2F", nil)
	get.Header.Set("Accept", "text/html")
	get.Header.Set("Accept-Language", "en")
	get.Header.Set("Cookie", "JSESSIONID=abc.b")
	get.Header.Set("X-Custom-Header", "custom value")
	get.Header.Set("Referer", "http://example.test/")
	get.SetBasicAuth("user", "pw")
	do("get", get)
	post, _ := http.NewRequest("POST", base+"/post", strings.NewReader(strings.Repeat("body-", 4000)))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	do("post", post)
	chunked, _ := http.NewRequest("POST", base+"/chunked", io.MultiReader(strings.NewReader("chunk one "), strings.NewReader("chunk two")))
	chunked.ContentLength = -1
	do("chunked", chunked)
	prop, _ := http.NewRequest("PROPFIND", base+"/dav/", nil)
	do("propfind", prop)
	odd, _ := http.NewRequest("FROBNICATE", base+"/odd", nil)
	do("stored-method", odd)
	sec, _ := http.NewRequest("GET", base+"/secret/x", nil)
	do("secret", sec)
	jk, _ := http.NewRequest("GET", base+"/jk/a%20b/x.cgi?q=1", nil)
	jk.Header.Set("Cookie", "JSESSIONID=abc.jk")
	jk.SetBasicAuth("user", "pw")
	do("mod_jk get", jk)
	jkPost, _ := http.NewRequest("POST", base+"/jk/post", strings.NewReader(strings.Repeat("jk-", 3000)))
	jkPost.Header.Set("Content-Type", "text/plain")
	do("mod_jk post", jkPost)
	jkOdd, _ := http.NewRequest("FROBNICATE", base+"/jk/odd", nil)
	do("mod_jk stored method", jkOdd)

	mu.Lock()
	defer mu.Unlock()
	out := filepath.Join("testdata", "fuzz", "FuzzForwardRequest")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range packets {
		if len(p) <= headerLen || inType(p[headerLen]) != typeForwardRequest {
			continue // body packets: the seeds are FORWARD_REQUEST packets
		}
		sum := sha256.Sum256(p)
		peer := "mod_proxy_ajp"
		if bytes.Contains(p, []byte("/jk/")) {
			peer = "mod_jk"
		}
		name := filepath.Join(out, fmt.Sprintf("%s-%x", peer, sum[:8]))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", p)
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: % x", name, p[:min(len(p), 64)])
	}
}

// recordConn records every packet Apache sends and answers each request
// with 200, an empty body and END_RESPONSE reuse=1, reading request bodies
// the way junction does.
func recordConn(c net.Conn, record func([]byte)) {
	defer c.Close()
	buf := make([]byte, MaxPacketSize)
	read := func() ([]byte, error) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		p, err := readPacket(c, buf)
		if err == nil {
			record(buf[:headerLen+len(p)])
		}
		return p, err
	}
	for {
		p, err := read()
		if err != nil || len(p) == 0 {
			return
		}
		switch inType(p[0]) {
		case typeCPing:
			c.Write([]byte{'A', 'B', 0, 1, byte(typeCPong)})
			continue
		case typeForwardRequest:
		default:
			return
		}
		f, err := decodeForwardRequest(p, decodeLimits{maxHeaderBytes: 1 << 20, maxHeaders: 1000})
		if err != nil {
			fmt.Fprintln(os.Stderr, "capture: decode:", err)
			return
		}
		var cl int64
		chunkedBody := false
		for _, h := range f.headers {
			if strings.EqualFold(h.name, "Content-Length") {
				fmt.Sscan(h.value, &cl)
			}
			if strings.EqualFold(h.name, "Transfer-Encoding") {
				chunkedBody = true
			}
		}
		first := cl > 0
		for cl > 0 || chunkedBody {
			if !first {
				c.Write([]byte{'A', 'B', 0, 3, byte(typeGetBodyChunk), 0x1f, 0xfa})
			}
			first = false
			p, err := read()
			if err != nil {
				return
			}
			n := 0
			if len(p) >= 2 {
				n = int(p[0])<<8 | int(p[1])
			}
			if n == 0 {
				break
			}
			cl -= int64(n)
		}
		var resp bytes.Buffer
		resp.Write([]byte{'A', 'B', 0, 0, byte(typeSendHeaders), 0, 200, 0, 2, 'O', 'K', 0, 0, 1, 0xA0, 0x03, 0, 1, '0', 0})
		resp.Bytes()[3] = byte(resp.Len() - 4)
		resp.Write([]byte{'A', 'B', 0, 2, byte(typeEndResponse), 1})
		c.Write(resp.Bytes())
	}
}

func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", url)
}
