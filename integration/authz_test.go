package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends/fastcgi/fpmtest"
)

// authzStartFPM runs a php-fpm of its own (three workers, unix socket in a
// temp dir) serving testdata/authz, where check.php is the authorizer. It
// returns the instance address and the script's path.
func authzStartFPM(t *testing.T) (addr, script string) {
	t.Helper()
	needBin(t, phpFPMBin, "php8.2-fpm")
	dir := t.TempDir()
	root := filepath.Join(dir, "auth")
	copyDir(t, filepath.Join("testdata", "authz"), root)
	pool := fpmtest.Pool{Dir: dir, Name: "authz", Children: 3}
	args, err := pool.Write()
	if err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, phpFPMBin, args, pool.Log(), pool.Config())
	if !waitFor(10*time.Second, func() bool {
		_, err := os.Stat(pool.Socket())
		return err == nil || p.Exited()
	}) || p.Exited() {
		p.dump(t)
		t.Fatalf("php-fpm did not create %s (exited: %v)", pool.Socket(), p.Exited())
	}
	return "unix:" + pool.Socket(), filepath.Join(root, "check.php")
}

// authzRequest builds a request to url with an optional bearer token and
// body.
func authzRequest(t *testing.T, method, url, token string, body []byte) *http.Request {
	t.Helper()
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequest(method, url, bytes.NewReader(body))
	} else {
		req, err = http.NewRequest(method, url, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// TestAuthorizerPHPFPM puts php-fpm running check.php in the FastCGI
// Authorizer role in front of a CGI script and an HTTP pool, with nginx
// (scgi_pass) in front of junction: allowed requests reach the backend
// with the authorizer's variables and their body intact, denials and
// redirects reach the client as check.php wrote them, an authorizer that
// is down is a 502 and one that does not answer within its timeout a 504.
func TestAuthorizerPHPFPM(t *testing.T) {
	fpm, check := authzStartFPM(t)
	appAddr, _ := startAppInstance(t, "app1")
	s := newSite(t)
	scgi, fcgi, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	down := "unix:" + filepath.Join(t.TempDir(), "nobody.sock")
	access := filepath.Join(t.TempDir(), "access.log")
	j := startJunction(t, fmt.Sprintf(`
log: {access: combined, access_file: %[9]q}
listeners:
  - {protocol: scgi, address: %[1]q}
  - {protocol: fastcgi, address: %[8]q}
metrics: {address: %[2]q}
routes:
  - prefix: /cgi/
    backend: scripts
    authorizer: {instances: [%[3]q], script: %[4]q, keepalive: 1}
  - prefix: /pool/
    backend: app
    authorizer: {instances: [%[3]q], script: %[4]q}
  - prefix: /down/
    backend: scripts
    authorizer: {instances: [%[5]q], script: /srv/auth/check.php}
  - prefix: /slow/
    backend: scripts
    authorizer: {instances: [%[3]q], script: %[4]q, timeout: 1s}
backends:
  scripts: {type: cgi, root: %[6]q, url_prefix: /cgi/, allow_root: true}
  app: {type: http, instances: [%[7]q], strip_prefix: /pool}
`, scgi, metricsAddr, fpm, check, down, s.Root, appAddr, fcgi, access), scgi, fcgi, metricsAddr)
	front := nginxSCGI(t, scgi)
	url := func(target string) string { return "http://" + front + target }

	// nginx fastcgi_pass with kept connections: a denial leaves the
	// request body unread on a connection nginx goes on using.
	fcgiFront := freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    upstream authz_junction { server %s; keepalive 4; }
    server {
        listen %s;
        client_max_body_size 20m;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass authz_junction;
            fastcgi_keep_conn on;
        }
    }
`, fcgi, fcgiFront))
	t.Run("nginx fastcgi_pass keep-conn", func(t *testing.T) {
		furl := func(target string) string { return "http://" + fcgiFront + target }
		big := bytes.Repeat([]byte("unread "), 3<<20/7)
		for i := range 3 {
			r := httpDo(t, authzRequest(t, "POST", furl("/cgi/env.sh"), "bad", big))
			if r.Status != 403 || r.Body != "<h1>denied by check.php</h1>\n" {
				t.Fatalf("denied POST %d = %d %q", i, r.Status, r.Body)
			}
			body := make([]byte, 1<<20)
			rand.Read(body)
			sum := sha256.Sum256(body)
			r = httpDo(t, authzRequest(t, "POST", furl("/cgi/post-sha256.py"), "good", body))
			want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
			if r.Status != 200 || r.Body != want {
				t.Fatalf("allowed POST %d = %d %q, want %q", i, r.Status, r.Body, want)
			}
			r = httpDo(t, authzRequest(t, "GET", furl("/pool/headers"), "good", nil))
			if h := headerLines(r.Body); r.Status != 200 || h["Variable-Remote_user"] != "alice" {
				t.Fatalf("GET /pool/headers %d = %d %q", i, r.Status, r.Body)
			}
		}
	})

	t.Run("cgi allowed with variables", func(t *testing.T) {
		req := authzRequest(t, "GET", url("/cgi/env.sh"), "good", nil)
		req.Header.Set("Variable-REMOTE_USER", "mallory") // forged by the client
		r := httpDo(t, req)
		if r.Status != 200 {
			t.Fatalf("GET env.sh = %d %q", r.Status, r.Body)
		}
		env := envOf(r.Body)
		for k, want := range map[string]string{
			"REMOTE_USER": "alice", "AUTHZ_ROLE": "AUTHORIZER", "AUTHZ_STDIN": "0",
			"AUTHZ_CONTENT_LENGTH": "(unset)", "AUTHZ_METHOD": "GET",
		} {
			if env[k] != want {
				t.Errorf("%s = %q, want %q", k, env[k], want)
			}
		}
		if v, ok := env["HTTP_VARIABLE_REMOTE_USER"]; ok {
			t.Errorf("the client's forged Variable- header reached the script: %q", v)
		}
	})

	t.Run("cgi POST body after authorization", func(t *testing.T) {
		body := make([]byte, 3<<20)
		rand.Read(body)
		sum := sha256.Sum256(body)
		r := httpDo(t, authzRequest(t, "POST", url("/cgi/post-sha256.py"), "good", body))
		want := fmt.Sprintf("sha256=%s\nlength=%d\ncontent_length=%d\n", hex.EncodeToString(sum[:]), len(body), len(body))
		if r.Status != 200 || r.Body != want {
			t.Fatalf("POST 3 MiB = %d %q, want %q", r.Status, r.Body, want)
		}
	})

	t.Run("cgi denied", func(t *testing.T) {
		big := bytes.Repeat([]byte("unread "), 3<<20/7) // a body the denial leaves unread
		for _, tt := range []struct {
			token string
			body  []byte
		}{{"", []byte("a body nobody reads")}, {"bad", big}} {
			token := tt.token
			r := httpDo(t, authzRequest(t, "POST", url("/cgi/env.sh"), token, tt.body))
			if r.Status != 403 || r.Body != "<h1>denied by check.php</h1>\n" {
				t.Errorf("token %q: %d %q, want check.php's 403 page", token, r.Status, r.Body)
			}
			if got := r.Header.Get("X-Authz-Reason"); got != "missing or bad token" {
				t.Errorf("token %q: X-Authz-Reason = %q", token, got)
			}
			if got := r.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("token %q: Content-Type = %q", token, got)
			}
		}
	})

	t.Run("redirect passed through", func(t *testing.T) {
		r := httpDo(t, authzRequest(t, "GET", url("/cgi/redirect/x?y=1"), "", nil))
		if r.Status != 302 {
			t.Fatalf("GET = %d %q, want 302", r.Status, r.Body)
		}
		if got, want := r.Header.Get("Location"), "/login?next=%2Fcgi%2Fredirect%2Fx%3Fy%3D1"; got != want {
			t.Errorf("Location = %q, want %q (relative, unchanged)", got, want)
		}
	})

	t.Run("http pool allowed with variables as headers", func(t *testing.T) {
		req := authzRequest(t, "GET", url("/pool/headers"), "good", nil)
		req.Header.Set("Variable-Remote_user", "mallory")
		r := httpDo(t, req)
		if r.Status != 200 || !strings.HasPrefix(r.Body, "app1 headers\n") {
			t.Fatalf("GET /pool/headers = %d %q", r.Status, r.Body)
		}
		h := headerLines(r.Body)
		for k, want := range map[string]string{"Variable-Remote_user": "alice", "Variable-Authz_role": "AUTHORIZER"} {
			if h[k] != want {
				t.Errorf("%s = %q, want %q (headers: %v)", k, h[k], want, h)
			}
		}
		if strings.Contains(r.Body, "mallory") {
			t.Errorf("the client's forged Variable- header reached the app:\n%s", r.Body)
		}
	})

	t.Run("http pool POST body after authorization", func(t *testing.T) {
		body := make([]byte, 2<<20)
		rand.Read(body)
		sum := sha256.Sum256(body)
		r := httpDo(t, authzRequest(t, "POST", url("/pool/upload"), "good", body))
		if want := fmt.Sprintf("app1 %d %s\n", len(body), hex.EncodeToString(sum[:])); r.Status != 200 || r.Body != want {
			t.Fatalf("POST = %d %q, want %q", r.Status, r.Body, want)
		}
	})

	t.Run("http pool denied", func(t *testing.T) {
		r := httpDo(t, authzRequest(t, "GET", url("/pool/headers"), "bad", nil))
		if r.Status != 403 || r.Body != "<h1>denied by check.php</h1>\n" || r.Header.Get("X-Authz-Reason") == "" {
			t.Fatalf("GET = %d %q %v, want check.php's 403", r.Status, r.Body, r.Header)
		}
	})

	t.Run("authorizer down", func(t *testing.T) {
		r := httpDo(t, authzRequest(t, "GET", url("/down/env.sh"), "good", nil))
		if r.Status != 502 {
			t.Fatalf("GET = %d %q, want 502", r.Status, r.Body)
		}
		if strings.Contains(r.Body, "nobody.sock") {
			t.Errorf("the error page names the authorizer: %q", r.Body)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(j.Output(), "nobody.sock") }) {
			t.Errorf("junction did not log the unreachable authorizer:\n%s", tail(j.Output(), 20))
		}
	})

	t.Run("authorizer too slow", func(t *testing.T) {
		r := httpDo(t, authzRequest(t, "GET", url("/slow/env.sh"), "good", nil))
		if r.Status != 504 {
			t.Fatalf("GET = %d %q, want 504", r.Status, r.Body)
		}
	})

	// The access log's user is the one the backend was told of: the
	// authorizer's Variable-REMOTE_USER, not the front server's (nginx
	// sends no REMOTE_USER here, and the token is no Basic auth).
	t.Run("access log user", func(t *testing.T) {
		for _, tt := range []struct {
			target, token string
			status        int
			user          string
		}{
			{"/cgi/env.sh?authzlog=cgi", "good", 200, "alice"},
			{"/pool/headers?authzlog=pool", "good", 200, "alice"},
			{"/cgi/env.sh?authzlog=denied", "bad", 403, "-"},
		} {
			if r := httpDo(t, authzRequest(t, "GET", url(tt.target), tt.token, nil)); r.Status != tt.status {
				t.Fatalf("GET %s = %d %q, want %d", tt.target, r.Status, r.Body, tt.status)
			}
			want := fmt.Sprintf(` - %s [`, tt.user)
			var line string
			if !waitFor(5*time.Second, func() bool {
				line = authzlogLine(access, `"GET `+tt.target+` `)
				return line != ""
			}) {
				t.Fatalf("no access log line for %s", tt.target)
			}
			if !strings.Contains(line, want) {
				t.Errorf("access log line for %s has not the user %q:\n%s", tt.target, tt.user, line)
			}
		}
	})

	t.Run("status page", func(t *testing.T) {
		var snap struct {
			Routes []struct {
				Pattern    string `json:"pattern"`
				Authorizer *struct {
					Script                  string `json:"script"`
					Allowed, Denied, Errors int64
				} `json:"authorizer"`
			} `json:"routes"`
		}
		if err := json.Unmarshal([]byte(httpGet(t, "http://"+metricsAddr+"/status.json").Body), &snap); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range snap.Routes {
			if az := r.Authorizer; az != nil {
				got[r.Pattern] = fmt.Sprintf("%s allowed>0 %v denied>0 %v errors>0 %v", az.Script, az.Allowed > 0, az.Denied > 0, az.Errors > 0)
			}
		}
		for pattern, want := range map[string]string{
			"/cgi/*":  check + " allowed>0 true denied>0 true errors>0 false",
			"/pool/*": check + " allowed>0 true denied>0 true errors>0 false",
			"/down/*": "/srv/auth/check.php allowed>0 false denied>0 false errors>0 true",
			"/slow/*": check + " allowed>0 false denied>0 false errors>0 true",
		} {
			if got[pattern] != want {
				t.Errorf("status.json %s authorizer: %q, want %q", pattern, got[pattern], want)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := httpGet(t, "http://"+metricsAddr+"/metrics").Body
		for _, want := range []string{
			`junction_authorizer_requests_total{outcome="allowed",route="/cgi/"}`,
			`junction_authorizer_requests_total{outcome="denied",route="/cgi/"}`,
			`junction_authorizer_requests_total{outcome="allowed",route="/pool/"}`,
			`junction_authorizer_requests_total{outcome="error",route="/down/"}`,
		} {
			re := regexp.MustCompile(regexp.QuoteMeta(want) + ` ([1-9][0-9]*)`)
			if !re.MatchString(m) {
				t.Errorf("metrics lack %s > 0", want)
			}
		}
	})
}

// authzlogLine returns the line of the access log file at path that
// contains sub, or "" when there is none yet.
func authzlogLine(path, sub string) string {
	b, _ := os.ReadFile(path) // not there yet: no line yet
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
