package cgi

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// lifecycleModes are more child behaviours (see child in main_test.go),
// dispatched before TestMain runs.
var lifecycleModes = map[string]func() int{
	"redirect-work":  redirectWork,
	"redirect-flood": redirectFlood,
	"redirect-sleep": redirectSleep,
	"redirect-read5": redirectRead5,
	"trickle":        trickle,
	"trickle-child":  trickleChild,
}

func init() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	if f, ok := lifecycleModes[os.Getenv("HTTP_X_MODE")]; ok {
		os.Exit(f())
	}
}

// redirectWork prints a local redirect first, then does its work: reads
// its body and records it in HTTP_X_MARKER, like a POST handler writing
// to a database. With X-Close: 1 it closes stdout before working.
func redirectWork() int {
	fmt.Fprint(os.Stdout, "Location: /done\n\n")
	if os.Getenv("HTTP_X_CLOSE") == "1" {
		os.Stdout.Close()
	}
	sum := sha256.New()
	n, err := io.Copy(sum, os.Stdin)
	if err != nil {
		return 1
	}
	time.Sleep(200 * time.Millisecond) // the work
	marker := os.Getenv("HTTP_X_MARKER")
	if os.WriteFile(marker+".tmp", fmt.Appendf(nil, "%x %d", sum.Sum(nil), n), 0o644) != nil {
		return 1
	}
	if os.Rename(marker+".tmp", marker) != nil {
		return 1
	}
	return 0
}

// redirectFlood prints a local redirect and then output without end.
func redirectFlood() int {
	writePids(os.Getpid())
	fmt.Fprint(os.Stdout, "Location: /done\n\n")
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for {
		if _, err := os.Stdout.Write(chunk); err != nil {
			return 0
		}
	}
}

// redirectSleep prints a local redirect and never finishes its work.
func redirectSleep() int {
	writePids(os.Getpid())
	fmt.Fprint(os.Stdout, "Location: /done\n\n")
	time.Sleep(time.Hour)
	return 0
}

// redirectRead5 reads five bytes of its body, then redirects and exits.
func redirectRead5() int {
	var b [5]byte
	if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
		return 1
	}
	fmt.Fprint(os.Stdout, "Location: /done\n\n")
	return 0
}

// trickle answers at once and leaves behind a grandchild in its own
// session that keeps stdout open and writes a byte every 50ms for 6s.
func trickle() int {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HTTP_X_MODE=trickle-child")
	cmd.Stdout = os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 1
	}
	writePids(os.Getpid(), cmd.Process.Pid)
	fmt.Fprint(os.Stdout, "Content-Type: text/plain\n\ndone")
	return 0
}

func trickleChild() int {
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stdout.Write([]byte(".")); err != nil {
			return 0
		}
	}
	return 0
}

// TestLocalRedirectLetsScriptFinish: a script that prints a local redirect
// first and works after is neither killed nor cut off from its body, and
// Serve returns once it has exited.
func TestLocalRedirectLetsScriptFinish(t *testing.T) {
	checkLeaks(t)
	body := make([]byte, 256<<10) // more than a pipe holds: feeding goes on after the head
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x %d", sha256.Sum256(body), len(body))
	for _, closeStdout := range []bool{false, true} {
		t.Run(fmt.Sprint("stdout closed ", closeStdout), func(t *testing.T) {
			b, _ := newBackend(t, nil)
			marker := filepath.Join(t.TempDir(), "marker")
			r := request("POST", "/cgi-bin/env.cgi", bytes.NewReader(body), "redirect-work")
			r.Header.Set("X-Marker", marker)
			if closeStdout {
				r.Header.Set("X-Close", "1")
			}
			rec := httptest.NewRecorder()
			err := b.Serve(rec, r)
			var lr *backends.LocalRedirect
			if !errors.As(err, &lr) || lr.Location != "/done" {
				t.Fatalf("err = %v, want a local redirect to /done", err)
			}
			if rec.Body.Len() != 0 || len(rec.Header()) != 0 || rec.Flushed {
				t.Errorf("something was written before a local redirect")
			}
			got, err := os.ReadFile(marker)
			if err != nil {
				t.Fatalf("the script did not finish its work before Serve returned: %v", err)
			}
			if string(got) != want {
				t.Errorf("script saw body %q, want %q", got, want)
			}
		})
	}
}

// TestLocalRedirectBounds: after a local redirect head, too much output
// and running past Timeout still end the script.
func TestLocalRedirectBounds(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		mode    string
		timeout time.Duration
		status  int
		log     string
	}{
		// Time enough to write 4 MiB on a loaded machine.
		{mode: "redirect-flood", timeout: 10 * time.Second, status: http.StatusBadGateway, log: "too much after a local redirect"},
		{mode: "redirect-sleep", timeout: 500 * time.Millisecond, status: http.StatusGatewayTimeout, log: "timed out after a local redirect"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			b, logs := newBackend(t, func(o *Options) { o.Timeout = tt.timeout })
			b.grace = 200 * time.Millisecond
			pidfile := filepath.Join(t.TempDir(), "pid")
			r := request("GET", "/cgi-bin/env.cgi", nil, tt.mode)
			r.Header.Set("X-Pidfile", pidfile)
			rec := httptest.NewRecorder()
			err := b.Serve(rec, r)
			if be := (*backends.Error)(nil); !errors.As(err, &be) || be.Status != tt.status {
				t.Errorf("err = %v, want a backends.Error with status %d", err, tt.status)
			}
			if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
				t.Errorf("wrote %q %v despite the error", rec.Body, rec.Header())
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs)
			}
			if pids := readPids(t, pidfile); !groupGone(pids[0]) {
				t.Errorf("process group %d still alive", pids[0])
			}
		})
	}
}

// stallingBody gives its first bytes, then blocks until closed, like a
// client that has not sent the rest of its body yet.
type stallingBody struct {
	first  []byte
	closed chan struct{}
	once   sync.Once

	mu    sync.Mutex
	reads int
}

func (s *stallingBody) Read(p []byte) (int, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	if len(s.first) > 0 {
		n := copy(p, s.first)
		s.first = s.first[n:]
		return n, nil
	}
	<-s.closed
	return 0, errors.New("body closed")
}

// Close ends the body, as a codec does when the request ends.
func (s *stallingBody) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *stallingBody) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// deadlineRecorder is a ResponseWriter that supports read deadlines (as
// net/http's does) and records their use.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	body *stallingBody

	mu        sync.Mutex
	deadlines int
}

func (d *deadlineRecorder) SetReadDeadline(time.Time) error {
	d.mu.Lock()
	d.deadlines++
	d.mu.Unlock()
	d.body.Close() // what a deadline does to the blocked read
	return nil
}

// TestEarlyExitLeavesFrontConnection: a script that is done before its
// body is in ends the request without a read deadline on the front
// connection; the read still waiting is left to the codec's end of the
// body and reads nothing more.
func TestEarlyExitLeavesFrontConnection(t *testing.T) {
	body := &stallingBody{first: []byte("12345"), closed: make(chan struct{})}
	reads := -1
	// Registered before checkLeaks, so it runs after the feeder is gone.
	t.Cleanup(func() {
		if n := body.readCount(); reads >= 0 && n != reads {
			t.Errorf("the body was read %d more times after Serve returned", n-reads)
		}
	})
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	r := request("POST", "/cgi-bin/env.cgi", body, "redirect-read5")
	r.ContentLength = 10
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder(), body: body}
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(w, r) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(5 * time.Second):
		body.Close()
		t.Fatal("Serve waits for the rest of a body the script will never read")
	}
	var lr *backends.LocalRedirect
	if !errors.As(err, &lr) {
		t.Errorf("err = %v, want a local redirect", err)
	}
	w.mu.Lock()
	if w.deadlines != 0 {
		t.Errorf("set a read deadline on the front connection %d times", w.deadlines)
	}
	w.mu.Unlock()
	reads = body.readCount()
	body.Close() // the request ends; checkLeaks sees the feeder go
}

// TestKeepAliveAfterEarlyExit runs the same over net/http: the connection
// stays usable for the next request.
func TestKeepAliveAfterEarlyExit(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := b.Serve(w, r)
		var lr *backends.LocalRedirect
		switch {
		case errors.As(err, &lr):
			fmt.Fprint(w, "redirected to "+lr.Location)
		case err != nil:
			http.Error(w, err.Error(), backends.Status(err))
		}
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "POST /cgi-bin/env.cgi HTTP/1.1\r\nHost: x\r\nX-Mode: redirect-read5\r\nContent-Length: 10\r\n\r\n12345")
	// The rest comes after the script is gone (net/http holds the
	// response until the read in progress returns).
	time.Sleep(300 * time.Millisecond)
	fmt.Fprint(c, "67890")
	br := bufio.NewReader(c)
	for i, want := range []string{"redirected to /done", "<html>stats</html>"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != want || resp.Close {
			t.Fatalf("response %d: %q %v (close %v), want %q", i+1, got, err, resp.Close, want)
		}
		if i == 0 {
			fmt.Fprint(c, "GET /cgi-bin/env.cgi HTTP/1.1\r\nHost: x\r\nX-Mode: nostatus\r\n\r\n")
		}
	}
}

// TestEscapedTrickleBounded: a grandchild that left the process group and
// writes a byte now and then cannot hold the response open past the
// script's exit plus grace.
func TestEscapedTrickleBounded(t *testing.T) {
	checkLeaks(t)
	b, logs := newBackend(t, nil)
	b.grace = 300 * time.Millisecond
	pidfile := filepath.Join(t.TempDir(), "pid")
	r := request("GET", "/cgi-bin/env.cgi", nil, "trickle")
	r.Header.Set("X-Pidfile", pidfile)
	rec := httptest.NewRecorder()
	start := time.Now()
	err := b.Serve(rec, r)
	took := time.Since(start)
	pids := readPids(t, pidfile)
	_ = syscall.Kill(pids[1], syscall.SIGKILL) // it left our group on purpose; ESRCH: gone already
	if err != nil {
		t.Fatal(err)
	}
	if took > 2*time.Second {
		t.Errorf("response held open for %v by the escaped grandchild (grace %v)", took, b.grace)
	}
	if !strings.HasPrefix(rec.Body.String(), "done") {
		t.Errorf("body %q, want it to start with done", rec.Body)
	}
	if !strings.Contains(logs.String(), "held open") {
		t.Errorf("no log about the open pipe:\n%s", logs)
	}
}
