package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	fcgifront "github.com/junction-gw/junction/protocols/fastcgi"
	"github.com/junction-gw/junction/vars"
)

func TestResolve(t *testing.T) {
	b, err := New(Options{Addr: "127.0.0.1:9000", Root: "/srv/www/", StripPrefix: "/app/"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path                 string
		filename, name, info string
		status               int
	}{
		{path: "/app/x.php", filename: "/srv/www/x.php", name: "/app/x.php"},
		{path: "/app/a/b.php/c/d", filename: "/srv/www/a/b.php", name: "/app/a/b.php", info: "/c/d"},
		{path: "/app/", filename: "/srv/www/index.php", name: "/app/index.php"},
		{path: "/app", filename: "/srv/www/index.php", name: "/app/index.php"},
		{path: "/app/dir/", filename: "/srv/www/dir/index.php", name: "/app/dir/index.php"},
		{path: "/app/.php/x", filename: "/srv/www/.php/x", name: "/app/.php/x"},
		{path: "/app/../etc/passwd", status: http.StatusForbidden},
		{path: "/app/x.php/..", status: http.StatusForbidden},
		{path: "/app/x\x00.php", status: http.StatusBadRequest},
		{path: "/apps/x.php", status: http.StatusNotFound},
		{path: "/other", status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.URL.Path = tt.path
			s, err := b.resolve(r)
			if tt.status != 0 {
				if err == nil || backends.Status(err) != tt.status {
					t.Fatalf("resolve = %+v, %v; want status %d", s, err, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if s.Filename != tt.filename || s.Name != tt.name || s.PathInfo != tt.info || s.DocumentRoot != "/srv/www" {
				t.Errorf("resolve = %+v, want %s %s %q", s, tt.filename, tt.name, tt.info)
			}
		})
	}
}

// The parameters go on the wire in the builder's order, DOCUMENT_ROOT is
// Root (also over the front server's) and PATH_TRANSLATED follows it.
func TestParamsDocumentRootIsRoot(t *testing.T) {
	b, err := New(Options{Addr: "127.0.0.1:9000", Root: "/srv/www", SetEnv: map[string]string{"APP_ENV": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/a.php/more", nil)
	r.Header.Set("Proxy", "evil")
	front := vars.Vars{{Name: "DOCUMENT_ROOT", Value: "/var/www/front"}, {Name: "MY_PARAM", Value: "x"}}
	r = r.WithContext(vars.NewContext(r.Context(), front))
	s, err := b.resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	h := decodeHead(t, b.appendHead(nil, r, s, false))
	if want := b.env.Vars(r, s); !slices.Equal(h.params, want) {
		t.Errorf("PARAMS on the wire\n%v\nwant the builder's, in its order\n%v", h.params, want)
	}
	want := map[string]string{
		"DOCUMENT_ROOT": "/srv/www", "SCRIPT_FILENAME": "/srv/www/a.php", "PATH_INFO": "/more",
		"PATH_TRANSLATED": "/srv/www/more", "APP_ENV": "test", "REQUEST_METHOD": "GET", "MY_PARAM": "x",
	}
	for k, v := range want {
		if got := h.params.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"HTTP_PROXY", "PATH"} {
		if v, ok := h.params.Lookup(k); ok {
			t.Errorf("%s sent: %q", k, v)
		}
	}
}

// fakeInstance reads each connection's request up to the end of STDIN
// and then runs respond with the connection, which is closed after it.
func fakeInstance(t *testing.T, respond func(c net.Conn)) string {
	t.Helper()
	addr, _ := keepInstance(t, func(_ int, _ bool, _ []byte, c net.Conn) bool {
		respond(c)
		return false
	})
	return addr
}

// rec encodes one record for request 1.
func rec(typ recType, content string) []byte {
	b := []byte{1, byte(typ), 0, 1, byte(len(content) >> 8), byte(len(content)), 0, 0}
	return append(b, content...)
}

func endRequest(proto byte) []byte {
	return rec(typeEndRequest, string([]byte{0, 0, 0, 0, proto, 0, 0, 0}))
}

func TestFakeInstanceResponses(t *testing.T) {
	tests := []struct {
		name       string
		records    [][]byte
		wantStatus int    // written status, or the error's status
		wantErr    string // "" = written; "local", "overloaded", "error"
		wantBody   string
	}{
		{
			name:       "split head and stderr",
			records:    [][]byte{rec(typeStderr, "warning\n"), rec(typeStdout, "Content-Type: text/plain\r\nX-A: 1"), rec(typeStdout, "\r\n\r\nbo"), rec(typeStdout, "dy"), rec(typeStdout, ""), endRequest(0)},
			wantStatus: 200, wantBody: "body",
		},
		{
			name:    "lone local location",
			records: [][]byte{rec(typeStdout, "Location: /elsewhere?x=1\r\n\r\n"), endRequest(0)},
			wantErr: "local",
		},
		{
			name:    "overloaded",
			records: [][]byte{endRequest(statusOverloaded)},
			wantErr: "overloaded", wantStatus: 503,
		},
		{
			name:    "unknown role",
			records: [][]byte{endRequest(statusUnknownRole)},
			wantErr: "error", wantStatus: 502,
		},
		{
			name:    "connection lost before any output",
			records: nil,
			wantErr: "error", wantStatus: 502,
		},
		{
			name:    "malformed head",
			records: [][]byte{rec(typeStdout, "Bad Header Line\r\n\r\n"), endRequest(0)},
			wantErr: "error", wantStatus: 502,
		},
		{
			name:    "wrong request id",
			records: [][]byte{{1, byte(typeStdout), 0, 2, 0, 0, 0, 0}},
			wantErr: "error", wantStatus: 502,
		},
		{
			name:       "hop-by-hop dropped",
			records:    [][]byte{rec(typeStdout, "Status: 201 Made\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nok"), endRequest(0)},
			wantStatus: 201, wantBody: "ok",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeInstance(t, func(c net.Conn) {
				for _, r := range tt.records {
					if _, err := c.Write(r); err != nil {
						return
					}
				}
			})
			b, err := New(Options{Addr: addr, Root: "/srv", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			err = b.Serve(w, httptest.NewRequest("GET", "/x.php", nil))
			var lr *backends.LocalRedirect
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
				if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody {
					t.Errorf("got %d %q, want %d %q", w.Code, w.Body, tt.wantStatus, tt.wantBody)
				}
				for _, h := range []string{"Connection", "Transfer-Encoding"} {
					if _, ok := w.Header()[h]; ok {
						t.Errorf("%s passed to the client", h)
					}
				}
				return
			case "local":
				if !errors.As(err, &lr) || lr.Location != "/elsewhere?x=1" {
					t.Fatalf("Serve = %v, want a local redirect", err)
				}
			case "overloaded":
				if !errors.Is(err, backends.ErrOverloaded) {
					t.Fatalf("Serve = %v, want ErrOverloaded", err)
				}
			default:
				if err == nil || errors.As(err, &lr) || backends.Status(err) != tt.wantStatus {
					t.Fatalf("Serve = %v, want status %d", err, tt.wantStatus)
				}
			}
			if w.Body.Len() != 0 || len(w.Header()) != 0 {
				t.Errorf("written despite the error: %v %q", w.Header(), w.Body)
			}
		})
	}
}

func TestTimeoutBeforeHead(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	addr := fakeInstance(t, func(net.Conn) { <-release })
	// The instance never answers: the timeout decides whatever its length.
	b, err := New(Options{Addr: addr, Root: "/srv", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/x.php", nil))
	if backends.Status(err) != http.StatusGatewayTimeout {
		t.Fatalf("Serve = %v, want 504", err)
	}
}

func TestShortBody(t *testing.T) {
	addr := fakeInstance(t, func(c net.Conn) {
		c.Write(rec(typeStdout, "Status: 200\r\n\r\nwrongly complete"))
		c.Write(endRequest(0))
	})
	b, err := New(Options{Addr: addr, Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/x.php", strings.NewReader("short"))
	r.ContentLength = 100
	err = b.Serve(httptest.NewRecorder(), r)
	if !errors.Is(err, errShortBody) || backends.Status(err) != http.StatusBadRequest {
		t.Fatalf("Serve = %v, want 400 short body", err)
	}
	r = httptest.NewRequest("POST", "/x.php", strings.NewReader("chunked"))
	r.ContentLength = -1
	if err := b.Serve(httptest.NewRecorder(), r); backends.Status(err) != http.StatusLengthRequired {
		t.Fatalf("Serve = %v, want 411", err)
	}
}

func TestMaxConnsOverloaded(t *testing.T) {
	release := make(chan struct{})
	accepted := make(chan struct{}, 1)
	addr := fakeInstance(t, func(c net.Conn) {
		accepted <- struct{}{}
		<-release
		c.Write(rec(typeStdout, "Status: 204\r\n\r\n"))
		c.Write(endRequest(0))
	})
	b, err := New(Options{Addr: addr, Root: "/srv", MaxConns: 1, DialTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- b.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/x.php", nil)) }()
	<-accepted
	// The only slot is held until release: the wait ends at DialTimeout.
	if err := b.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/x.php", nil)); !errors.Is(err, backends.ErrOverloaded) {
		t.Errorf("second Serve = %v, want ErrOverloaded", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first Serve: %v", err)
	}
}

// junctionInstance serves srv (junction's own FastCGI front end) on a
// loopback port and returns a Backend for it with Root /srv.
func junctionInstance(t *testing.T, srv *fcgifront.Server) *Backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	b, err := New(Options{Addr: l.Addr().String(), Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJunctionInstance uses junction's own FastCGI server as the instance:
// cancellation before the head and the GET_VALUES health check.
func TestJunctionInstance(t *testing.T) {
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	srv := &fcgifront.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait.php" {
			started <- struct{}{}
			<-r.Context().Done()
			cancelled <- struct{}{}
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hi from "+r.URL.Path)
	}), MaxConns: 10}
	b := junctionInstance(t, srv)
	if err := b.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	w := httptest.NewRecorder()
	if err := b.Serve(w, httptest.NewRequest("GET", "/hello.php", nil)); err != nil || w.Body.String() != "hi from /hello.php" {
		t.Errorf("Serve = %v, body %q", err, w.Body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	w = httptest.NewRecorder()
	go func() { done <- b.Serve(w, httptest.NewRequestWithContext(ctx, "GET", "/wait.php", nil)) }()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the instance's request was not cancelled")
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("written despite the error")
	}
}

// A request without a body is framed by junction itself (sendHead): PARAMS
// larger than one record are split, and junction's own strict FastCGI
// front end decodes them intact, on GET and on a body-less POST.
func TestSendHeadSplitsParams(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // more than one record's 65535 bytes
	srv := &fcgifront.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %d %v", r.Method, r.URL.Path, len(r.Header.Get("X-Big")), r.Header.Get("X-Big") == big)
	}), MaxHeaderBytes: 1 << 20}
	b := junctionInstance(t, srv)
	for _, tt := range []struct{ method, want string }{
		{"GET", fmt.Sprintf("GET /big.php %d true", len(big))},
		{"POST", fmt.Sprintf("POST /big.php %d true", len(big))},
	} {
		r := httptest.NewRequest(tt.method, "/big.php", nil)
		r.Header.Set("X-Big", big)
		w := httptest.NewRecorder()
		if err := b.Serve(w, r); err != nil || w.Body.String() != tt.want {
			t.Errorf("%s: Serve = %v, body %.80q, want %q", tt.method, err, w.Body, tt.want)
		}
	}
}

// An instance that closes every connection at once (a crashing or
// overloaded php-fpm): each request fails with a 502 before anything is
// written, whether the write or the read notices, and no descriptor stays
// open.
func TestInstanceClosesAtOnce(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fpm.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b, err := New(Options{Addr: "unix:" + sock, Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(ents)
	}
	before := fds()
	for i := range 50 {
		w := httptest.NewRecorder()
		err := b.Serve(w, httptest.NewRequest("GET", "/a.php", nil))
		var be *backends.Error
		if !errors.As(err, &be) || be.Status != http.StatusBadGateway {
			t.Fatalf("request %d: Serve = %v, want a 502 *backends.Error", i, err)
		}
		if w.Body.Len() != 0 || w.Code != http.StatusOK || len(w.Header()) != 0 {
			t.Fatalf("request %d: something was written: %d %v %q", i, w.Code, w.Header(), w.Body)
		}
	}
	if after := fds(); after > before {
		t.Errorf("%d descriptors open after 50 failed requests, %d before", after, before)
	}
}
