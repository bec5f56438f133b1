package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// appsAnswer is what a client sees of one response, the parts a migration
// from one protocol to another must keep.
type appsAnswer struct {
	Status      int
	ContentType string
	Location    string
	SetCookie   string
	Body        string
}

func (a appsAnswer) String() string {
	return fmt.Sprintf("%d type=%q location=%q set-cookie=%q body=%q", a.Status, a.ContentType, a.Location, a.SetCookie, a.Body)
}

func appsAnswerOf(r httpResult) appsAnswer {
	return appsAnswer{
		Status:      r.Status,
		ContentType: r.Header.Get("Content-Type"),
		Location:    r.Header.Get("Location"),
		SetCookie:   strings.Join(r.Header.Values("Set-Cookie"), " | "),
		Body:        r.Body,
	}
}

// appsEveryProtocolMux answers the URLs of app.cgi exactly as it does, as an
// HTTP application instance: the pool variant of TestAppsEveryProtocol.
// (A Location-only answer is a local redirect only for CGI, so /app/local is
// not served here.)
func appsEveryProtocolMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/app/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<p>page method=%s query=%s</p>\n", r.Method, r.URL.RawQuery)
	})
	mux.HandleFunc("/app/post", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		if _, err := io.Copy(h, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s\n", r.Header.Get("Content-Type"), r.Header.Get("Content-Length"), hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/app/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "page?from=redirect")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusFound)
		fmt.Fprint(w, "moved\n")
	})
	mux.HandleFunc("/app/cookie", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Add("Set-Cookie", "session=abc123; Path=/app; HttpOnly")
		w.Header().Add("Set-Cookie", "theme=dark; Max-Age=3600")
		fmt.Fprint(w, "cookies set\n")
	})
	mux.HandleFunc("/app/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "no page %s\n", strings.TrimPrefix(r.URL.Path, "/app"))
	})
	return mux
}

// TestAppsEveryProtocol is the migration promise: one application behind
// junction's SCGI (nginx scgi_pass), FastCGI (nginx fastcgi_pass), AJP
// (Apache mod_proxy_ajp) and HTTP listeners at once (examples/one-app.yaml)
// answers every URL of the table with the same status, Content-Type,
// Location, Set-Cookie and body through all four. The application is a CGI
// script (testdata/apps/app.cgi), and then an HTTP pool instance answering
// the same URLs.
func TestAppsEveryProtocol(t *testing.T) {
	t.Parallel()
	t.Run("cgi", func(t *testing.T) {
		t.Parallel()
		dir := openTempDir(t)
		copyDir(t, filepath.Join("testdata", "apps"), dir)
		appsEveryProtocol(t, true, "/srv/app/app.cgi", filepath.Join(dir, "app.cgi"),
			"url_prefix: /app}", "url_prefix: /app, allow_root: true}")
	})
	t.Run("http pool", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(appsEveryProtocolMux())
		t.Cleanup(srv.Close)
		appsEveryProtocol(t, false, "{type: cgi, script: /srv/app/app.cgi, url_prefix: /app}",
			fmt.Sprintf("{type: http, instances: [%q]}", srv.Listener.Addr().String()))
	})
}

// appsEveryProtocol runs the table through the four listeners of
// examples/one-app.yaml, with its backend changed by the replacements; cgi
// says whether it is a CGI script (which has local redirects).
func appsEveryProtocol(t *testing.T, cgi bool, backend ...string) {
	t.Helper()
	scgiAddr, fcgiAddr, ajpAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	startJunction(t, appsExample(t, "one-app.yaml", append([]string{
		"127.0.0.1:4000", scgiAddr,
		"127.0.0.1:9000", fcgiAddr,
		"127.0.0.1:8009", ajpAddr,
		"127.0.0.1:8080", httpAddr,
		"secret: s3cret", "secret: " + ajpSecret,
	}, backend...)...), scgiAddr, fcgiAddr, ajpAddr, httpAddr)
	nginxSCGI, nginxFCGI, apacheAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        location /app/ { include /etc/nginx/scgi_params; scgi_pass %[2]s; }
    }
    server {
        listen %[3]s;
        location /app/ { include /etc/nginx/fastcgi_params; fastcgi_pass %[4]s; }
    }`, nginxSCGI, scgiAddr, nginxFCGI, fcgiAddr))
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf(`Listen %[1]s
ProxyPass /app/ ajp://%[2]s/app/ secret=%[3]s
`, apacheAddr, ajpAddr, ajpSecret))

	fronts := []struct{ name, addr string }{
		{"http", httpAddr}, // the reference: junction's own HTTP listener
		{"scgi via nginx", nginxSCGI},
		{"fastcgi via nginx", nginxFCGI},
		{"ajp via apache", apacheAddr},
	}
	post := appsPseudoRandom("every protocol", 256<<10)
	postSum := sha256.Sum256(post)
	cases := []struct {
		name, method, path, ctype, body string
		want                            func(appsAnswer) bool // what the reference must show
	}{
		{"page", "GET", "/app/page?x=1&y=%C3%A9", "", "", func(a appsAnswer) bool {
			return a.Status == 200 && a.ContentType == "text/html; charset=utf-8" &&
				a.Body == "<p>page method=GET query=x=1&y=%C3%A9</p>\n"
		}},
		{"post", "POST", "/app/post", "application/octet-stream", string(post), func(a appsAnswer) bool {
			return a.Status == 200 && a.Body == fmt.Sprintf("application/octet-stream %d %s\n", len(post), hex.EncodeToString(postSum[:]))
		}},
		{"form post", "POST", "/app/post", "application/x-www-form-urlencoded", "name=gopher&x=%26", func(a appsAnswer) bool {
			return a.Status == 200 && strings.HasPrefix(a.Body, "application/x-www-form-urlencoded 17 ")
		}},
		{"redirect", "GET", "/app/redirect", "", "", func(a appsAnswer) bool {
			return a.Status == 302 && a.Location == "page?from=redirect" && a.Body == "moved\n"
		}},
		{"local redirect", "GET", "/app/local", "", "", func(a appsAnswer) bool {
			return a.Status == 200 && a.Location == "" && a.Body == "<p>page method=GET query=from=local</p>\n"
		}},
		{"set-cookie", "GET", "/app/cookie", "", "", func(a appsAnswer) bool {
			return a.Status == 200 && a.SetCookie == "session=abc123; Path=/app; HttpOnly | theme=dark; Max-Age=3600"
		}},
		{"404", "GET", "/app/nowhere", "", "", func(a appsAnswer) bool {
			return a.Status == 404 && a.Body == "no page /nowhere\n"
		}},
		{"head", "HEAD", "/app/page", "", "", func(a appsAnswer) bool {
			return a.Status == 200 && a.ContentType == "text/html; charset=utf-8" && a.Body == ""
		}},
	}
	for _, c := range cases {
		if !cgi && c.name == "local redirect" {
			continue // CGI only (RFC 3875 6.2.2)
		}
		t.Run(c.name, func(t *testing.T) {
			var ref appsAnswer
			for i, f := range fronts {
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				req, err := http.NewRequest(c.method, "http://"+f.addr+c.path, body)
				if err != nil {
					t.Fatal(err)
				}
				if c.ctype != "" {
					req.Header.Set("Content-Type", c.ctype)
				}
				got := appsAnswerOf(httpDo(t, req))
				if i == 0 {
					ref = got
					if !c.want(ref) {
						t.Fatalf("%s: unexpected answer %v", f.name, ref)
					}
					continue
				}
				if got != ref {
					t.Errorf("%s differs from %s:\n got %v\nwant %v", f.name, fronts[0].name, got, ref)
				}
			}
		})
	}
}
