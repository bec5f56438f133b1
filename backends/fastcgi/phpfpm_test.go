package fastcgi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/fastcgi/fpmtest"
)

const phpFPM = fpmtest.Bin

var phpScripts = map[string]string{
	"hello.php": `<?php header("Content-Type: text/plain");
echo "hello|", $_SERVER["SCRIPT_NAME"], "|", $_SERVER["PATH_INFO"] ?? "", "|", $_SERVER["SCRIPT_FILENAME"], "|",
	$_SERVER["DOCUMENT_ROOT"], "|", $_SERVER["QUERY_STRING"], "|", getenv("HTTP_PROXY") === false ? "noproxy" : "PROXY";`,
	"sub/index.php": `<?php echo "index of sub";`,
	"post.php":      `<?php $b = file_get_contents("php://input"); echo strlen($b), " ", hash("sha256", $b);`,
	"nostatus.php":  `<?php echo "no status here";`,
	"status.php":    `<?php http_response_code(418); echo "teapot";`,
	// PHP turns header("Location: …") into "Status: 302" itself: a client
	// redirect. Only a head of a lone Location is a local redirect.
	"location.php": `<?php header("Location: /x");`,
	"local.php":    `<?php ini_set("default_mimetype", ""); header("Location: /x?y=1"); http_response_code(200);`,
	"stderr.php":   `<?php error_log("junction-stderr-marker"); echo "logged";`,
	"stream.php": `<?php header("Content-Type: text/plain");
for ($i = 0; $i < 600; $i++) { echo "tick $i\n"; flush(); usleep(100000); }`,
}

var (
	fpmOnce sync.Once
	fpmAddr string
	fpmRoot string
	fpmErr  error
	fpmStop func()
)

// startFPM starts one php-fpm for the package's tests (one worker, so a
// request that is not ended blocks the next one).
func startFPM(t *testing.T) (addr, root string) {
	t.Helper()
	if _, err := os.Stat(phpFPM); err != nil {
		t.Skipf("backends/fastcgi: %s not installed: %v", phpFPM, err)
	}
	fpmOnce.Do(func() {
		fpmAddr, fpmRoot, fpmStop, fpmErr = runFPM(fpmtest.Pool{Name: "test", Children: 1})
	})
	if fpmErr != nil {
		t.Fatalf("starting php-fpm: %v", fpmErr)
	}
	return fpmAddr, fpmRoot
}

// runFPM starts a php-fpm with pool (Dir is filled in) serving
// phpScripts, and waits until its socket accepts.
func runFPM(pool fpmtest.Pool) (addr, root string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "junction-fpm-")
	if err != nil {
		return "", "", nil, err
	}
	root = filepath.Join(dir, "www")
	for name, src := range phpScripts {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", "", nil, err
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			return "", "", nil, err
		}
	}
	pool.Dir = dir
	pool.Extra += "php_admin_value[output_buffering] = 0\n"
	sock := pool.Socket()
	args, err := pool.Write()
	if err != nil {
		return "", "", nil, err
	}
	cmd := exec.Command(phpFPM, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", "", nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	// Wait for the socket to accept (process start-up, not a timeout
	// being tested).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(pool.Log())
			stop()
			return "", "", nil, fmt.Errorf("php-fpm did not listen: %v\n%s\n%s", err, out.String(), log)
		}
	}
	return "unix:" + sock, root, stop, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fpmStop != nil {
		fpmStop()
	}
	os.Exit(code)
}

// logRecorder collects log records.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{l, as}
}
func (l *logRecorder) WithGroup(string) slog.Handler { return l }

func (l *logRecorder) find(sub string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if strings.Contains(r, sub) {
			return r
		}
	}
	return ""
}

type attrHandler struct {
	*logRecorder
	attrs []slog.Attr
}

func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.attrs...)
	return h.logRecorder.Handle(ctx, r)
}

func TestPHPFPM(t *testing.T) {
	addr, root := startFPM(t)
	logs := &logRecorder{}
	b, err := New(Options{Addr: addr, Root: root, StripPrefix: "/php", Timeout: 20 * time.Second, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		target     string
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{
			name: "hello", target: "/php/hello.php/extra/info?a=b",
			wantStatus: 200,
			wantBody:   "hello|/php/hello.php|/extra/info|" + root + "/hello.php|" + root + "|a=b|noproxy",
			wantHeader: map[string]string{"Content-Type": "text/plain;charset=UTF-8"},
		},
		{name: "index", target: "/php/sub/", wantStatus: 200, wantBody: "index of sub"},
		{name: "no status", target: "/php/nostatus.php", wantStatus: 200, wantBody: "no status here"},
		{name: "explicit status", target: "/php/status.php", wantStatus: 418, wantBody: "teapot"},
		{name: "php location is a client redirect", target: "/php/location.php", wantStatus: 302, wantHeader: map[string]string{"Location": "/x"}},
		{name: "missing script", target: "/php/nope.php", wantStatus: 404, wantBody: "File not found.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Header.Set("Proxy", "http://evil.example:3128")
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, r); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body %q, want %q", rec.Body, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got := strings.ReplaceAll(rec.Header().Get(k), " ", ""); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("local redirect", func(t *testing.T) {
		rec := httptest.NewRecorder()
		err := b.Serve(rec, httptest.NewRequest("GET", "/php/local.php", nil))
		var lr *backends.LocalRedirect
		if !errors.As(err, &lr) || lr.Location != "/x?y=1" {
			t.Fatalf("Serve = %v, want LocalRedirect to /x?y=1", err)
		}
		if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Errorf("something was written: %v %q", rec.Header(), rec.Body)
		}
	})

	t.Run("missing script logs stderr", func(t *testing.T) {
		// php-fpm reports "Primary script unknown" on the STDERR stream.
		if got := logs.find("Primary script unknown"); !strings.Contains(got, "instance="+addr) {
			t.Errorf("no stderr log with the instance; got %q", got)
		}
	})

	t.Run("stderr", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if err := b.Serve(rec, httptest.NewRequest("GET", "/php/stderr.php", nil)); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if rec.Body.String() != "logged" {
			t.Errorf("body %q", rec.Body)
		}
		got := logs.find("junction-stderr-marker")
		if !strings.HasPrefix(got, "WARN") || !strings.Contains(got, "script=/php/stderr.php") || !strings.Contains(got, "instance="+addr) {
			t.Errorf("stderr log %q", got)
		}
	})

	t.Run("POST 10MB", func(t *testing.T) {
		body := make([]byte, 10<<20+3)
		for i := range body {
			body[i] = byte(i*31 + i>>12)
		}
		sum := sha256.Sum256(body)
		rec := httptest.NewRecorder()
		if err := b.Serve(rec, httptest.NewRequest("POST", "/php/post.php", bytes.NewReader(body))); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if want := fmt.Sprintf("%d %s", len(body), hex.EncodeToString(sum[:])); rec.Body.String() != want {
			t.Errorf("body %q, want %q", rec.Body, want)
		}
	})

	t.Run("client cancel ends the script", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fr := &flushWriter{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 1000)}
		done := make(chan error, 1)
		go func() { done <- b.Serve(fr, httptest.NewRequestWithContext(ctx, "GET", "/php/stream.php", nil)) }()
		select {
		case <-fr.flushed:
		case <-time.After(20 * time.Second):
			t.Fatal("no streamed output")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after the response started = %v, want nil", err)
		}
		// The pool has one worker: the next request is served only once
		// php-fpm ended the streaming script (it has 60 s to run), which
		// it does when its writes fail on the closed connection.
		rec := httptest.NewRecorder()
		start := time.Now()
		if err := b.Serve(rec, httptest.NewRequest("GET", "/php/nostatus.php", nil)); err != nil {
			t.Fatalf("next request: %v", err)
		}
		if rec.Code != 200 || time.Since(start) > 15*time.Second {
			t.Errorf("next request: status %d after %v", rec.Code, time.Since(start))
		}
	})

	t.Run("check", func(t *testing.T) {
		for _, hs := range []string{"", "/hello.php"} {
			cb, err := New(Options{Addr: addr, Root: root, StripPrefix: "/php", HealthScript: hs})
			if err != nil {
				t.Fatal(err)
			}
			if err := cb.Check(context.Background()); err != nil {
				t.Errorf("Check (health script %q): %v", hs, err)
			}
		}
		cb, err := New(Options{Addr: addr, Root: root, HealthScript: "/nope.php"})
		if err != nil {
			t.Fatal(err)
		}
		if err := cb.Check(context.Background()); err == nil {
			t.Error("Check of a missing health script passed")
		}
	})
}

// flushWriter signals every flush.
type flushWriter struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	flushed chan struct{}
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ResponseRecorder.Write(p)
}

func (f *flushWriter) Flush() {
	select {
	case f.flushed <- struct{}{}:
	default:
	}
}

func TestDialError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, addr := range []string{dead, "unix:" + filepath.Join(t.TempDir(), "none.sock")} {
		t.Run(addr, func(t *testing.T) {
			b, err := New(Options{Addr: addr, Root: "/srv"})
			if err != nil {
				t.Fatal(err)
			}
			const payload = "a=1&b=2"
			r := httptest.NewRequest("POST", "/x.php", strings.NewReader(payload))
			rec := httptest.NewRecorder()
			err = b.Serve(rec, r)
			var de *backends.DialError
			if !errors.As(err, &de) || de.Addr != addr {
				t.Fatalf("Serve = %v, want DialError for %s", err, addr)
			}
			if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
				t.Errorf("something was written")
			}
			if rest, _ := readBody(r); rest != payload {
				t.Errorf("body after dial error %q, want unread", rest)
			}
			if err := b.Check(context.Background()); !errors.As(err, &de) {
				t.Errorf("Check = %v, want DialError", err)
			}
		})
	}
}

func readBody(r *http.Request) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.String(), err
}

// TestPHPFPMKeepAlive runs two workers that each exit after five requests
// (pm.max_requests), behind a backend keeping two connections: every
// exit closes a kept connection, which junction notices before reuse (or
// retries, for these idempotent requests), so no request fails; bodies
// still arrive whole over kept connections.
func TestPHPFPMKeepAlive(t *testing.T) {
	if _, err := os.Stat(phpFPM); err != nil {
		t.Skipf("backends/fastcgi: %s not installed: %v", phpFPM, err)
	}
	addr, root, stop, err := runFPM(fpmtest.Pool{Name: "keep", Children: 2, MaxRequests: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	b, err := New(Options{Addr: addr, Root: root, StripPrefix: "/php", KeepAlive: 2, MaxConns: 2, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	errs := make(chan error, 2)
	for g := range 2 {
		go func() {
			for i := range 40 {
				var r *http.Request
				want := "hello|"
				if i%4 == 3 {
					// PUT is idempotent: a body-less one may be resent.
					r = httptest.NewRequest("PUT", "/php/post.php", nil)
					want = "0 " + fmt.Sprintf("%x", sha256.Sum256(nil))
				} else {
					r = httptest.NewRequest("GET", fmt.Sprintf("/php/hello.php?g=%d&i=%d", g, i), nil)
				}
				w := httptest.NewRecorder()
				if err := b.Serve(w, r); err != nil {
					errs <- fmt.Errorf("request %d.%d: %w", g, i, err)
					return
				}
				if w.Code != 200 || !strings.HasPrefix(w.Body.String(), want) {
					errs <- fmt.Errorf("request %d.%d: %d %q", g, i, w.Code, w.Body)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if b.idle.Len() == 0 {
		t.Errorf("no connection kept after the requests")
	}
	// Bodies, each on a connection of its own that is kept after it, and
	// health checks, which take a kept connection.
	for i := range 6 {
		body := strings.Repeat("k", 100<<10+i)
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/php/post.php", strings.NewReader(body))
		if err := b.Serve(w, r); err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256([]byte(body))); w.Body.String() != want {
			t.Fatalf("POST %d: %q, want %q", i, w.Body, want)
		}
		if err := b.Check(context.Background()); err != nil {
			t.Fatalf("Check after POST %d: %v", i, err)
		}
	}
}
