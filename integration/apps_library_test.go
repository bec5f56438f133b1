package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/protocols/fastcgi"
	"github.com/junction-gw/junction/protocols/scgi"
	"github.com/junction-gw/junction/vars"
)

// appsLibraryMux is the plain http.ServeMux the library test serves through
// each codec: nothing in it knows about SCGI, FastCGI or AJP except that it
// reads one front-server variable from the request context.
func appsLibraryMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /lib/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "page %s q=%s\n", r.URL.Path, r.URL.Query().Get("q"))
	})
	mux.HandleFunc("POST /lib/post", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("GET /lib/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "page?q=moved") // relative: the client resolves it
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("GET /lib/cookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "lib", Value: "v1", Path: "/lib/", HttpOnly: true})
		http.SetCookie(w, &http.Cookie{Name: "second", Value: "v2", Path: "/"})
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "cookies set")
	})
	mux.HandleFunc("GET /lib/vars", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		v, ok := vars.Lookup(r.Context(), "APP_FRONT")
		fmt.Fprintf(w, "APP_FRONT=%s sent=%v\n", v, ok)
	})
	return mux
}

// appsServeLibrary serves a codec server (its Serve and Close methods) on a
// fresh loopback listener inside the test process and stops it at the end
// of the test, when Serve must return the codec's ErrServerClosed.
func appsServeLibrary(t *testing.T, serve func(net.Listener) error, shutdown func() error, closed error) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	t.Cleanup(func() {
		if err := shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, closed) {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// TestAppsLibrary serves a plain http.ServeMux through each codec used as a
// Go library (no junction binary, no backend) behind its real front server:
// nginx scgi_pass, nginx fastcgi_pass and Apache mod_proxy_ajp. Each front
// server also sends one custom variable (scgi_param, fastcgi_param, an AJP
// request attribute is not allowed through, so Apache's path shows it absent).
func TestAppsLibrary(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux := appsLibraryMux()

	scgiSrv := &scgi.Server{Handler: mux, Logger: logger}
	scgiAddr := appsServeLibrary(t, scgiSrv.Serve, scgiSrv.Close, scgi.ErrServerClosed)
	fcgiSrv := &fastcgi.Server{Handler: mux, Logger: logger}
	fcgiAddr := appsServeLibrary(t, fcgiSrv.Serve, fcgiSrv.Close, fastcgi.ErrServerClosed)
	ajpSrv := &ajp13.Server{Handler: mux, Secret: ajpSecret, Logger: logger}
	ajpAddr := appsServeLibrary(t, ajpSrv.Serve, ajpSrv.Close, ajp13.ErrServerClosed)

	nginxSCGI, nginxFCGI, apacheAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        client_max_body_size 0;
        location /lib/ {
            include /etc/nginx/scgi_params;
            scgi_param APP_FRONT nginx-scgi;
            scgi_pass %[2]s;
        }
    }
    server {
        listen %[3]s;
        client_max_body_size 0;
        location /lib/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param APP_FRONT nginx-fastcgi;
            fastcgi_pass %[4]s;
        }
    }`, nginxSCGI, scgiAddr, nginxFCGI, fcgiAddr))
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf(`Listen %[1]s
LimitRequestBody 0
ProxyPass /lib/ ajp://%[2]s/lib/ secret=%[3]s
`, apacheAddr, ajpAddr, ajpSecret))

	body := appsPseudoRandom("library post", 3<<20)
	sum := sha256.Sum256(body)
	fronts := []struct{ name, addr, front string }{
		{"nginx-scgi", nginxSCGI, "APP_FRONT=nginx-scgi sent=true\n"},
		{"nginx-fastcgi", nginxFCGI, "APP_FRONT=nginx-fastcgi sent=true\n"},
		{"apache-ajp", apacheAddr, "APP_FRONT= sent=false\n"},
	}
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			url := func(p string) string { return "http://" + f.addr + p }
			r := httpGet(t, url("/lib/page?q=1"))
			if r.Status != 200 || r.Body != "page /lib/page q=1\n" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("page: %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
			}
			r = httpGet(t, url("/lib/redirect"))
			if r.Status != 302 || r.Header.Get("Location") != "page?q=moved" {
				t.Errorf("redirect: %d Location %q", r.Status, r.Header.Get("Location"))
			}
			r = httpGet(t, url("/lib/cookie"))
			if got := strings.Join(r.Header.Values("Set-Cookie"), " | "); r.Status != 200 ||
				got != "lib=v1; Path=/lib/; HttpOnly | second=v2; Path=/" {
				t.Errorf("cookie: %d Set-Cookie %q", r.Status, got)
			}
			if r = httpGet(t, url("/lib/missing")); r.Status != 404 {
				t.Errorf("missing: %d %q", r.Status, r.Body)
			}
			if r = httpGet(t, url("/lib/vars")); r.Body != f.front {
				t.Errorf("vars: %d %q, want %q", r.Status, r.Body, f.front)
			}
			req, err := http.NewRequest(http.MethodPost, url("/lib/post"), strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%d %s\n", len(body), hex.EncodeToString(sum[:]))
			if r = httpDo(t, req); r.Status != 200 || r.Body != want {
				t.Errorf("post: %d %q, want %q", r.Status, r.Body, want)
			}
		})
	}
}
