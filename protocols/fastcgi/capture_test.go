package fastcgi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCapture records what real web servers send to a FastCGI application
// and saves it as fuzz seeds under testdata/fuzz. It runs only with
// FASTCGI_CAPTURE=1 (it starts nginx, lighttpd, Apache and cgi-fcgi):
//
//	FASTCGI_CAPTURE=1 go test -run Capture ./protocols/fastcgi
func TestCapture(t *testing.T) {
	if os.Getenv("FASTCGI_CAPTURE") != "1" {
		t.Skip("set FASTCGI_CAPTURE=1 to capture seeds from real peers")
	}
	peers := []struct {
		name string
		run  func(t *testing.T, backend string) // sends the requests
	}{
		{"nginx", captureNginx},
		{"lighttpd", captureLighttpd},
		{"apache", captureApache},
		{"cgi-fcgi", captureCgiFcgi},
	}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			rec := startRecorder(t)
			p.run(t, rec.addr())
			caps := rec.wait(t, 2)
			for i, c := range caps {
				name := fmt.Sprintf("%s-%d", p.name, i+1)
				writeSeed(t, "FuzzRecordReader", name, c)
				writeSeed(t, "FuzzNameValues", name, paramsOf(t, c))
			}
		})
	}
}

func writeSeed(t *testing.T, target, name string, b []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
}

// paramsOf concatenates the PARAMS content of a captured request.
func paramsOf(t *testing.T, b []byte) []byte {
	var out []byte
	rr := newRecordReader(bytes.NewReader(b))
	for {
		r, _, err := rr.next()
		if err != nil {
			return out
		}
		if r.Type == typeParams {
			out = append(out, r.content...)
		}
	}
}

// recorder is a FastCGI application that answers every request with a
// fixed response and keeps the bytes of each request, from BEGIN_REQUEST
// to the empty STDIN record.
type recorder struct {
	ln   net.Listener
	mu   sync.Mutex
	caps [][]byte
	got  chan struct{}
}

func startRecorder(t *testing.T) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, got: make(chan struct{}, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var raw bytes.Buffer
	rr := newRecordReader(io.TeeReader(c, &raw))
	keep := false
	for {
		rec, _, err := rr.next()
		if err != nil {
			return
		}
		if rec.Type == typeBeginRequest && len(rec.content) == 8 {
			keep = rec.content[2]&flagKeepConn != 0
		}
		if rec.Type != typeStdin || len(rec.content) != 0 {
			continue
		}
		r.mu.Lock()
		r.caps = append(r.caps, bytes.Clone(raw.Bytes()))
		r.mu.Unlock()
		raw.Reset()
		w := &recordWriter{c: c}
		w.write(typeStdout, rec.ID, []byte("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\ncaptured\n"))
		w.write(typeStdout, rec.ID, nil)
		w.endRequest(rec.ID, nil, 0, statusRequestComplete)
		r.got <- struct{}{}
		if !keep {
			return
		}
	}
}

func (r *recorder) wait(t *testing.T, n int) [][]byte {
	for range n {
		select {
		case <-r.got:
		case <-time.After(20 * time.Second):
			t.Fatalf("recorder: fewer than %d requests", n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.caps
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startPeer(t *testing.T, addr string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} // nothing of ours in the seeds
	// A file, not a pipe: Wait must not wait for children that inherit it.
	out, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The whole group: Apache's children outlive a killed parent.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("%s output:\n%s", name, b)
		}
	})
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not listen on %s", name, addr)
}

// captureRequests sends a GET with ordinary browser headers and a small
// form POST through the web server at addr.
func captureRequests(t *testing.T, base string) {
	cl := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", base+"/cgi-bin/env.sh/extra/path?q=1&r=two", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) junction-capture")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-GB,en;q=0.5")
	req.Header.Add("Cookie", "a=1")
	req.Header.Add("Cookie", "b="+strings.Repeat("c", 150)) // a value past 127 bytes: 4-byte length
	for _, r := range []*http.Request{req, mustPost(t, base+"/cgi-bin/post.sh")} {
		resp, err := cl.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func mustPost(t *testing.T, url string) *http.Request {
	req, err := http.NewRequest("POST", url, strings.NewReader("name=junction&body="+strings.Repeat("z", 300)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func captureNginx(t *testing.T, backend string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := fmt.Sprintf(`daemon off; master_process off; user root root;
pid %[1]s/nginx.pid; error_log %[1]s/error.log info;
events {}
http {
  access_log off; client_body_temp_path %[1]s; fastcgi_temp_path %[1]s;
  proxy_temp_path %[1]s; scgi_temp_path %[1]s; uwsgi_temp_path %[1]s;
  server {
    listen %[2]s;
    location /cgi-bin/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_split_path_info ^(/cgi-bin/[^/]+)(/.*)$;
      fastcgi_param SCRIPT_FILENAME /srv/www$fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_pass %[3]s;
    }
  }
}
`, dir, addr, backend)
	file := filepath.Join(dir, "nginx.conf")
	os.WriteFile(file, []byte(conf), 0o644)
	startPeer(t, addr, "nginx", "-c", file, "-p", dir)
	captureRequests(t, "http://"+addr)
}

func captureLighttpd(t *testing.T, backend string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	bhost, bport, _ := net.SplitHostPort(backend)
	conf := fmt.Sprintf(`server.document-root = %[1]q
server.errorlog = "%[1]s/error.log"
server.bind = %[2]q
server.port = %[3]s
server.modules += ("mod_fastcgi")
fastcgi.server = ( "/cgi-bin/" => (( "host" => %[4]q, "port" => %[5]s, "check-local" => "disable" )) )
`, dir, host, port, bhost, bport)
	file := filepath.Join(dir, "lighttpd.conf")
	os.WriteFile(file, []byte(conf), 0o644)
	startPeer(t, addr, "lighttpd", "-D", "-f", file)
	captureRequests(t, "http://"+addr)
}

func captureApache(t *testing.T, backend string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	mods := "/usr/lib/apache2/modules"
	conf := fmt.Sprintf(`ServerRoot %[1]q
LoadModule mpm_event_module %[4]s/mod_mpm_event.so
LoadModule authz_core_module %[4]s/mod_authz_core.so
LoadModule proxy_module %[4]s/mod_proxy.so
LoadModule proxy_fcgi_module %[4]s/mod_proxy_fcgi.so
ServerName 127.0.0.1
Listen %[2]s
PidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
Mutex file:%[1]s default
DocumentRoot %[1]s
User nobody
Group nogroup
ProxyPass /cgi-bin/ fcgi://%[3]s/srv/www/cgi-bin/
`, dir, addr, backend, mods)
	file := filepath.Join(dir, "httpd.conf")
	os.WriteFile(file, []byte(conf), 0o644)
	startPeer(t, addr, "apache2", "-f", file, "-DFOREGROUND")
	captureRequests(t, "http://"+addr)
}

func captureCgiFcgi(t *testing.T, backend string) {
	for _, body := range []string{"", "a=1&b=2"} {
		cmd := exec.Command("cgi-fcgi", "-bind", "-connect", backend)
		method := "GET"
		if body != "" {
			method = "POST"
		}
		cmd.Env = []string{"REQUEST_METHOD=" + method, "SCRIPT_FILENAME=/srv/www/cgi-bin/env.sh",
			"SCRIPT_NAME=/cgi-bin/env.sh", "QUERY_STRING=x=1", "REQUEST_URI=/cgi-bin/env.sh?x=1",
			"SERVER_PROTOCOL=HTTP/1.1", "CONTENT_LENGTH=" + fmt.Sprint(len(body)), "CONTENT_TYPE=application/x-www-form-urlencoded"}
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cgi-fcgi: %v\n%s", err, out)
		}
	}
}
