package cgi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/internal/syncbuf"
	"github.com/junction-gw/junction/vars"
)

func newBackend(t testing.TB, mod func(*Options)) (*Backend, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	o := Options{
		Name:      "test",
		Root:      testRoot,
		URLPrefix: "/cgi-bin/",
		Timeout:   10 * time.Second,
		SetEnv:    map[string]string{childEnv: "1"},
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b, logs
}

// openFDs counts junction's open descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkLeaks fails the test when goroutines or descriptors outlive it.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	if _, err := devNull(); err != nil { // opened once, on first use
		t.Fatal(err)
	}
	fds := openFDs(t)
	t.Cleanup(func() {
		// Scripts finished in the background (after their response)
		// close their pipes a moment after they exit.
		deadline := time.Now().Add(3 * time.Second)
		for openFDs(t) > fds && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := openFDs(t); n > fds {
			t.Errorf("leaked descriptors: %d open, %d before", n, fds)
		}
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("leaked goroutines: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// groupGone reports whether process group pgid has no members left. Killed
// grandchildren are reaped by init, so allow it a moment.
func groupGone(pgid int) bool {
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
			return true
		}
	}
	return false
}

func request(method, target string, body io.Reader, mode string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	if mode != "" {
		r.Header.Set("X-Mode", mode)
	}
	return r
}

func withVars(r *http.Request, kv ...string) *http.Request {
	var v vars.Vars
	for i := 0; i+1 < len(kv); i += 2 {
		v = append(v, vars.Var{Name: kv[i], Value: kv[i+1]})
	}
	return r.WithContext(vars.NewContext(r.Context(), v))
}

func envOf(t *testing.T, body string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestEnvironment(t *testing.T) {
	checkLeaks(t)
	t.Setenv("JUNCTION_SECRET", "do not pass")
	b, _ := newBackend(t, nil)
	r := request("GET", "http://example.org/cgi-bin/env.cgi/extra/path?a+b", nil, "env")
	r.RemoteAddr = "192.0.2.9:1234"
	r.Header["Proxy"] = []string{"http://evil:3128"}
	r.Header["X-Foo"] = []string{"dash"}
	r.Header["X_foo"] = []string{"underscore"}
	r = withVars(r, "LD_PRELOAD", "/tmp/evil.so", "BASH_FUNC_x%%", "() { :; }", "PATH", "/tmp",
		"SSL_CLIENT_S_DN", "CN=alice", "SCRIPT_NAME", "/cgi-bin/env.cgi", "PATH_INFO", "/extra/path",
		"HTTPS", "on", "DOCUMENT_ROOT", "/var/www", "PYTHONPATH", "/tmp")
	rec := httptest.NewRecorder()
	if err := b.Serve(rec, r); err != nil {
		t.Fatal(err)
	}
	env := envOf(t, rec.Body.String())
	want := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "SCRIPT_NAME": "/cgi-bin/env.cgi", "PATH_INFO": "/extra/path",
		"SCRIPT_FILENAME": testRoot + "/env.cgi", "PATH_TRANSLATED": "/var/www/extra/path",
		"QUERY_STRING": "a+b", "REQUEST_METHOD": "GET", "REMOTE_ADDR": "192.0.2.9", "REMOTE_PORT": "1234",
		"HTTP_X_FOO": "dash", "SSL_CLIENT_S_DN": "CN=alice", "HTTPS": "on", "PATH": "/usr/local/bin:/usr/bin:/bin",
		"REDIRECT_STATUS": "200", "ARGC": "1", "CWD": testRoot, childEnv: "1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"HTTP_PROXY", "LD_PRELOAD", "BASH_FUNC_x%%", "PYTHONPATH", "JUNCTION_SECRET", "HOME"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s = %q passed to the script", k, v)
		}
	}
	if env["PGID"] != env["PID"] || env["PGID"] == fmt.Sprint(syscall.Getpgrp()) {
		t.Errorf("script not in its own process group: pid %s pgid %s", env["PID"], env["PGID"])
	}
}

func TestResolve(t *testing.T) {
	b, _ := newBackend(t, nil)
	tests := []struct {
		name     string
		target   string
		vars     []string
		status   int
		sname    string
		pathInfo string
		file     string
	}{
		{name: "script", target: "/cgi-bin/env.cgi", sname: "/cgi-bin/env.cgi", file: "env.cgi"},
		{name: "path info walk", target: "/cgi-bin/sub/deep.cgi/x/y", sname: "/cgi-bin/sub/deep.cgi", pathInfo: "/x/y", file: "sub/deep.cgi"},
		{name: "trailing slash path info", target: "/cgi-bin/env.cgi/", sname: "/cgi-bin/env.cgi", pathInfo: "/", file: "env.cgi"},
		{name: "symlink inside root", target: "/cgi-bin/link-in.cgi", sname: "/cgi-bin/link-in.cgi", file: "env.cgi"},
		{name: "symlink leaving root", target: "/cgi-bin/link-out.cgi", status: 403},
		{name: "dir symlink leaving root", target: "/cgi-bin/linkdir-out/evil.cgi", status: 403},
		{name: "dotdot", target: "/cgi-bin/../outside/evil.cgi", status: 403},
		{name: "dotdot in path info", target: "/cgi-bin/env.cgi/../../etc/passwd", status: 403},
		{name: "encoded dotdot", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/%2e%2e/outside/evil.cgi"}, status: 403},
		{name: "encoded NUL", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/env.cgi%00.txt"}, status: 400},
		{name: "double encoded stays encoded", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/%252e%252e/x"}, status: 404},
		{name: "missing", target: "/cgi-bin/missing.cgi", status: 404},
		{name: "jsessionid from AJP", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/env.cgi;jsessionid=xyz.b"},
			sname: "/cgi-bin/env.cgi", file: "env.cgi"},
		{name: "JSESSIONID any case, path info kept", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/env.cgi;JSessionID=1.a/more?q=1"},
			sname: "/cgi-bin/env.cgi", pathInfo: "/more", file: "env.cgi"},
		{name: "jsessionid on the request path", target: "/cgi-bin/sub/deep.cgi;jsessionid=abc", sname: "/cgi-bin/sub/deep.cgi", file: "sub/deep.cgi"},
		{name: "encoded semicolon stays", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/env.cgi%3Bjsessionid=x"}, status: 404},
		{name: "other path parameter stays", target: "/x", vars: []string{"REQUEST_URI", "/cgi-bin/env.cgi;v=1"}, status: 404},
		{name: "file as directory", target: "/cgi-bin/plain.txt/x", status: 403},
		{name: "not executable", target: "/cgi-bin/plain.txt", status: 403},
		{name: "directory", target: "/cgi-bin/sub/dir/", status: 404},
		{name: "outside prefix", target: "/other/env.cgi", status: 404},
		{name: "document uri", target: "/x", vars: []string{"DOCUMENT_URI", "/cgi-bin/env.cgi/d"}, sname: "/cgi-bin/env.cgi", pathInfo: "/d", file: "env.cgi"},
		{name: "front script name", target: "/x", vars: []string{"SCRIPT_NAME", "/cgi-bin/sub", "PATH_INFO", "/deep.cgi/p"},
			sname: "/cgi-bin/sub/deep.cgi", pathInfo: "/p", file: "sub/deep.cgi"},
		{name: "filename honoured", target: "/app/pi", vars: []string{"SCRIPT_FILENAME", testRoot + "/env.cgi", "SCRIPT_NAME", "/app", "PATH_INFO", "/pi"},
			sname: "/app", pathInfo: "/pi", file: "env.cgi"},
		{name: "filename derives names", target: "/cgi-bin/env.cgi/q", vars: []string{"SCRIPT_FILENAME", testRoot + "/env.cgi"},
			sname: "/cgi-bin/env.cgi", pathInfo: "/q", file: "env.cgi"},
		{name: "filename outside", target: "/x", vars: []string{"SCRIPT_FILENAME", testOutside + "/evil.cgi"}, status: 403},
		{name: "filename via symlink outside", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/link-out.cgi"}, status: 403},
		{name: "filename dotdot", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/../outside/evil.cgi"}, status: 403},
		{name: "filename missing", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/missing.cgi"}, status: 404},
		{name: "filename missing outside", target: "/x", vars: []string{"SCRIPT_FILENAME", "/nonexistent/x.cgi"}, status: 403},
		{name: "filename relative", target: "/x", vars: []string{"SCRIPT_FILENAME", "env.cgi"}, status: 403},
		{name: "filename NUL", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/env.cgi\x00"}, status: 400},
		{name: "filename not executable", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/plain.txt"}, status: 403},
		{name: "filename directory", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/sub"}, status: 403},
		{name: "filename deep", target: "/cgi-bin/sub/deep.cgi", vars: []string{"SCRIPT_FILENAME", testRoot + "/sub/deep.cgi"},
			sname: "/cgi-bin/sub/deep.cgi", file: "sub/deep.cgi"},
		{name: "filename via symlink inside", target: "/cgi-bin/link-in.cgi", vars: []string{"SCRIPT_FILENAME", testRoot + "/link-in.cgi"},
			sname: "/cgi-bin/env.cgi", file: "env.cgi"},
		{name: "filename via symlinked directory outside", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/linkdir-out/evil.cgi"}, status: 403},
		{name: "filename file as directory", target: "/x", vars: []string{"SCRIPT_FILENAME", testRoot + "/env.cgi/x"}, status: 404},
		{name: "filename unclean", target: "/cgi-bin/env.cgi", vars: []string{"SCRIPT_FILENAME", testRoot + "//./env.cgi"},
			sname: "/cgi-bin/env.cgi", file: "env.cgi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.vars != nil {
				r = withVars(r, tt.vars...)
			}
			s, err := b.resolve(r)
			if tt.status != 0 {
				if err == nil || backends.Status(err) != tt.status {
					t.Fatalf("err = %v (status %d), want status %d; resolved %+v", err, backends.Status(err), tt.status, s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.sname || s.PathInfo != tt.pathInfo || s.Filename != filepath.Join(testRoot, tt.file) {
				t.Errorf("got %q %q %q, want %q %q %q", s.Name, s.PathInfo, s.Filename, tt.sname, tt.pathInfo, tt.file)
			}
		})
	}
}

func TestSingleScript(t *testing.T) {
	b, _ := newBackend(t, func(o *Options) { o.Script = testRoot + "/env.cgi"; o.Root = ""; o.URLPrefix = "/app/" })
	tests := []struct {
		target, vars1, sname, pathInfo string
		status                         int
	}{
		{target: "/app/x/y", sname: "/app", pathInfo: "/x/y"},
		{target: "/app", sname: "/app", pathInfo: ""},
		{target: "/elsewhere", sname: "/app", pathInfo: "/elsewhere"},
		{target: "/app/../x", status: 403},
	}
	for _, tt := range tests {
		s, err := b.resolve(httptest.NewRequest("GET", tt.target, nil))
		if tt.status != 0 {
			if backends.Status(err) != tt.status {
				t.Errorf("%s: err %v, want %d", tt.target, err, tt.status)
			}
			continue
		}
		if err != nil || s.Name != tt.sname || s.PathInfo != tt.pathInfo || s.DocumentRoot != testRoot {
			t.Errorf("%s: %+v %v", tt.target, s, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"no root":        {},
		"missing root":   {Root: "/nonexistent/junction"},
		"root is a file": {Root: testRoot + "/plain.txt"},
		"script not exe": {Script: testRoot + "/plain.txt"},
		"bad prefix":     {Root: testRoot, URLPrefix: "cgi-bin"},
		"unknown user":   {Root: testRoot, User: "no-such-user-junction"},
		"bad set_env":    {Root: testRoot, SetEnv: map[string]string{"A=B": "x"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if os.Geteuid() != 0 {
		if _, err := New(Options{Root: testRoot, User: "root"}); err == nil {
			t.Error("run as root without being root: New succeeded")
		}
	}
}

func TestResponses(t *testing.T) {
	checkLeaks(t)
	b, logs := newBackend(t, nil)
	tests := []struct {
		name, target, mode string
		status             int // of the error when errStatus, else of the response
		errStatus          bool
		body               string
		header             http.Header
		log                string
	}{
		{name: "no status", target: "/cgi-bin/env.cgi", mode: "nostatus", status: 200, body: "<html>stats</html>",
			header: http.Header{"Content-Type": {"text/html"}}},
		{name: "client redirect with status", target: "/cgi-bin/env.cgi", mode: "redirect-status", status: 302,
			header: http.Header{"Location": {"/other"}}},
		{name: "nph", target: "/cgi-bin/nph-raw.cgi", mode: "nph", status: 299, body: "raw body", header: http.Header{"X-Nph": {"1"}}},
		{name: "exit 3 without output", target: "/cgi-bin/env.cgi", mode: "exit3", status: 502, errStatus: true, log: "exit status 3"},
		{name: "malformed head", target: "/cgi-bin/env.cgi", mode: "malformed", status: 502, errStatus: true, log: "bad response head"},
		{name: "huge head", target: "/cgi-bin/env.cgi", mode: "huge", status: 502, errStatus: true, log: "too large"},
		{name: "stderr", target: "/cgi-bin/env.cgi", mode: "stderr", status: 200, body: "ok", log: "first problem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := b.Serve(rec, request("GET", tt.target, nil, tt.mode))
			if tt.errStatus {
				if err == nil || backends.Status(err) != tt.status {
					t.Fatalf("err = %v, want status %d", err, tt.status)
				}
				if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
					t.Errorf("wrote %q %v despite the error", rec.Body, rec.Header())
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if rec.Code != tt.status || rec.Body.String() != tt.body {
					t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.status, tt.body)
				}
				for k, v := range tt.header {
					if rec.Header().Get(k) != v[0] {
						t.Errorf("%s = %q, want %q", k, rec.Header().Get(k), v[0])
					}
				}
			}
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs)
			}
		})
	}
	// Stderr lines are bounded and the last unterminated line is logged.
	if l := logs.String(); strings.Contains(l, strings.Repeat("L", maxStderrLine+1)) || !strings.Contains(l, "last words") {
		t.Errorf("stderr logging wrong:\n%.2000s", l)
	}
}

func TestLocalRedirect(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	rec := httptest.NewRecorder()
	err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "redirect"))
	var lr *backends.LocalRedirect
	if !errors.As(err, &lr) || lr.Location != "/other?x=1" {
		t.Fatalf("err = %v, want local redirect to /other?x=1", err)
	}
	if rec.Body.Len() != 0 || len(rec.Header()) != 0 || rec.Flushed {
		t.Errorf("something was written before a local redirect")
	}
}

func TestBodies(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	big := make([]byte, 10<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	want := fmt.Sprintf("%x %d", sum, len(big))
	for _, mode := range []string{"sha", "early"} {
		t.Run(mode, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, request("POST", "/cgi-bin/env.cgi", bytes.NewReader(big), mode)); err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); !strings.HasSuffix(got, want) {
				t.Errorf("body ends %q, want %q", got[max(0, len(got)-80):], want)
			}
		})
	}
	t.Run("short body", func(t *testing.T) {
		r := request("POST", "/cgi-bin/env.cgi", io.NopCloser(strings.NewReader("only ten b")), "sha")
		r.ContentLength = 1000
		err := b.Serve(httptest.NewRecorder(), r)
		if backends.Status(err) != http.StatusBadRequest {
			t.Fatalf("err = %v, want 400", err)
		}
	})
	t.Run("unknown length", func(t *testing.T) {
		r := request("POST", "/cgi-bin/env.cgi", strings.NewReader("x"), "sha")
		r.ContentLength = -1
		if err := b.Serve(httptest.NewRecorder(), r); backends.Status(err) != http.StatusLengthRequired {
			t.Fatalf("err = %v, want 411", err)
		}
	})
}

// readPids waits for the script to write its pid file.
func readPids(t *testing.T, file string) []int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var pids []int
		for _, f := range strings.Fields(strings.Trim(string(data), "[]")) {
			var n int
			fmt.Sscan(f, &n)
			pids = append(pids, n)
		}
		return pids
	}
	t.Fatal("script never wrote its pid file")
	return nil
}

func TestTimeout(t *testing.T) {
	checkLeaks(t)
	for _, mode := range []string{"sleep", "ignoreterm", "headsleep"} {
		t.Run(mode, func(t *testing.T) {
			// Long enough for the script to start on a loaded machine
			// (and under the race detector).
			b, logs := newBackend(t, func(o *Options) { o.Timeout = time.Second })
			b.grace = 200 * time.Millisecond
			pidfile := filepath.Join(t.TempDir(), "pid")
			r := request("GET", "/cgi-bin/env.cgi", nil, mode)
			r.Header.Set("X-Pidfile", pidfile)
			rec := httptest.NewRecorder()
			err := b.Serve(rec, r)
			pids := readPids(t, pidfile)
			if mode == "headsleep" {
				if err != nil || rec.Body.String() != "partial" {
					t.Errorf("err %v body %q, want the partial response", err, rec.Body)
				}
				if !strings.Contains(logs.String(), "timed out") {
					t.Errorf("no timeout log:\n%s", logs)
				}
			} else if backends.Status(err) != http.StatusGatewayTimeout {
				t.Errorf("err = %v, want 504", err)
			}
			if !groupGone(pids[0]) {
				t.Errorf("process group %d still alive", pids[0])
			}
		})
	}
}

func TestClientCancel(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := request("GET", "/cgi-bin/env.cgi", nil, "sleep").WithContext(ctx)
	r.Header.Set("X-Pidfile", pidfile)
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(httptest.NewRecorder(), r) }()
	pids := readPids(t, pidfile)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the client went away")
	}
	if !groupGone(pids[0]) {
		t.Errorf("process group %d still alive", pids[0])
	}
}

func TestOverloaded(t *testing.T) {
	checkLeaks(t)
	for _, queue := range []int{0, 1} {
		t.Run(fmt.Sprint("queue ", queue), func(t *testing.T) {
			b, _ := newBackend(t, func(o *Options) { o.MaxConcurrent = 1; o.MaxQueue = queue; o.QueueTimeout = 100 * time.Millisecond })
			pidfile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancel(context.Background())
			r := request("GET", "/cgi-bin/env.cgi", nil, "sleep").WithContext(ctx)
			r.Header.Set("X-Pidfile", pidfile)
			errc := make(chan error, 1)
			go func() { errc <- b.Serve(httptest.NewRecorder(), r) }()
			readPids(t, pidfile)
			start := time.Now()
			err := b.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "nostatus"))
			if !errors.Is(err, backends.ErrOverloaded) {
				t.Errorf("err = %v, want ErrOverloaded", err)
			}
			if waited := time.Since(start); queue == 1 && waited < 100*time.Millisecond {
				t.Errorf("queued request gave up after %v, before QueueTimeout", waited)
			}
			cancel()
			<-errc
			// The slot is free again.
			if err := b.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "nostatus")); err != nil {
				t.Errorf("after release: %v", err)
			}
		})
	}
}

func TestGrandchildHoldingStdout(t *testing.T) {
	checkLeaks(t)
	for _, mode := range []string{"grandchild", "escape"} {
		t.Run(mode, func(t *testing.T) {
			b, logs := newBackend(t, nil)
			b.grace = 300 * time.Millisecond
			pidfile := filepath.Join(t.TempDir(), "pid")
			r := request("GET", "/cgi-bin/env.cgi", nil, mode)
			r.Header.Set("X-Pidfile", pidfile)
			rec := httptest.NewRecorder()
			start := time.Now()
			if err := b.Serve(rec, r); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			pids := readPids(t, pidfile)
			if mode == "escape" {
				// It left our process group on purpose; clean up after it.
				_ = syscall.Kill(pids[1], syscall.SIGKILL)
				if !strings.Contains(logs.String(), "held open") {
					t.Errorf("no log about the open pipe:\n%s", logs)
				}
			} else if !groupGone(pids[0]) {
				t.Errorf("process group %d still alive", pids[0])
			}
			if rec.Body.String() != "done" || took > 5*time.Second {
				t.Errorf("body %q after %v", rec.Body, took)
			}
		})
	}
}

// flushRecorder records what was written at each flush and opens a gate
// file at the first flush, which the streaming script waits for.
type flushRecorder struct {
	*httptest.ResponseRecorder
	gate    string
	flushed []string
}

func (f *flushRecorder) Flush() {
	f.flushed = append(f.flushed, f.Body.String())
	if len(f.flushed) == 1 {
		_ = os.WriteFile(f.gate, nil, 0o644)
	}
	f.ResponseRecorder.Flush()
}

func TestStreaming(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	fr := &flushRecorder{ResponseRecorder: httptest.NewRecorder(), gate: filepath.Join(t.TempDir(), "gate")}
	r := request("GET", "/cgi-bin/env.cgi", nil, "stream")
	r.Header.Set("X-Gate", fr.gate)
	if err := b.Serve(fr, r); err != nil {
		t.Fatal(err)
	}
	// The script only writes "two" after the gate opened, which happens at
	// the first flush: so "one" reached the client while the script ran.
	// ("two" may arrive after the exit, when the end of the response
	// sends it without a flush of its own.)
	if len(fr.flushed) < 1 || fr.flushed[0] != "one\n" || fr.Body.String() != "one\ntwo\n" {
		t.Errorf("flushes %q, body %q", fr.flushed, fr.Body)
	}
}

func BenchmarkServeHello(b *testing.B) {
	be, root := benchBackend(b)
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		if err := be.Serve(rec, httptest.NewRequest("GET", "/hello.cgi", nil)); err != nil || rec.Body.String() != "hi" {
			b.Fatalf("%v %q", err, rec.Body)
		}
	}
	_ = root
}

// BenchmarkRawExec is the ceiling: fork+exec of the same script, reading
// its output, with nothing else.
func BenchmarkRawExec(b *testing.B) {
	_, root := benchBackend(b)
	for b.Loop() {
		cmd := execCommand(root + "/hello.cgi")
		if out, err := cmd.Output(); err != nil || !strings.HasSuffix(string(out), "hi") {
			b.Fatalf("%v %q", err, out)
		}
	}
}

func benchBackend(b *testing.B) (*Backend, string) {
	root := b.TempDir()
	script := "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi'\n"
	if err := os.WriteFile(root+"/hello.cgi", []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	be, err := New(Options{Name: "bench", Root: root, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return be, root
}

// fakeObserver records what the backend reported.
type fakeObserver struct {
	mu       sync.Mutex
	spawned  []time.Duration
	exited   []int
	signaled []string
	timedOut int
}

func (f *fakeObserver) Spawned(d time.Duration) {
	f.mu.Lock()
	f.spawned = append(f.spawned, d)
	f.mu.Unlock()
}
func (f *fakeObserver) Exited(code int) {
	f.mu.Lock()
	f.exited = append(f.exited, code)
	f.mu.Unlock()
}
func (f *fakeObserver) Signaled(sig string) {
	f.mu.Lock()
	f.signaled = append(f.signaled, sig)
	f.mu.Unlock()
}
func (f *fakeObserver) TimedOut() { f.mu.Lock(); f.timedOut++; f.mu.Unlock() }

func TestObserver(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		mode         string
		wantExited   []int
		wantSignaled []string
		wantTimedOut int
	}{
		{mode: "nostatus", wantExited: []int{0}},
		{mode: "exit3", wantExited: []int{3}},
		{mode: "sleep", wantSignaled: []string{"SIGTERM"}, wantTimedOut: 1},
		{mode: "ignoreterm", wantSignaled: []string{"SIGKILL"}, wantTimedOut: 1},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			obs := &fakeObserver{}
			b, _ := newBackend(t, func(o *Options) { o.Observer = obs; o.Timeout = 1500 * time.Millisecond })
			// Long enough for a loaded machine to deliver SIGTERM to a
			// script that does not ignore it.
			b.grace = time.Second
			r := request("GET", "/cgi-bin/env.cgi", nil, tt.mode)
			pidfile := filepath.Join(t.TempDir(), "pid")
			r.Header.Set("X-Pidfile", pidfile)
			_ = b.Serve(httptest.NewRecorder(), r) // the outcome is what the observer saw
			// A script whose output ended may be reaped just after Serve.
			if err := b.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.spawned) != 1 || obs.spawned[0] <= 0 {
				t.Errorf("spawned %v, want one positive start latency", obs.spawned)
			}
			if !slices.Equal(obs.exited, tt.wantExited) || !slices.Equal(obs.signaled, tt.wantSignaled) || obs.timedOut != tt.wantTimedOut {
				t.Errorf("exited %v signaled %q timed out %d; want %v %q %d",
					obs.exited, obs.signaled, obs.timedOut, tt.wantExited, tt.wantSignaled, tt.wantTimedOut)
			}
		})
	}
}
