package vars

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	req := func(edit func(r *http.Request)) *http.Request {
		r := &http.Request{Method: "GET", RequestURI: "/a?b=c", Host: "example.org",
			Header: http.Header{"Accept": {"*/*"}, "X-Tab": {"a\tb"}, "User-Agent": {"ü/1"}}}
		if edit != nil {
			edit(r)
		}
		return r
	}
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	tests := []struct {
		name     string
		r        *http.Request
		v        Vars
		wantPart string // "" = valid
	}{
		{"plain", req(nil), pairs("REQUEST_METHOD", "GET", "HTTPS", "on"), ""},
		{"extension method", req(func(r *http.Request) { r.Method = "M-SEARCH" }), nil, ""},
		{"OPTIONS *", req(func(r *http.Request) { r.Method, r.RequestURI = "OPTIONS", "*" }), nil, ""},
		{"empty header value", req(func(r *http.Request) { r.Header["X-Empty"] = []string{""} }), nil, ""},
		{"method with CR LF", req(func(r *http.Request) { r.Method = "GET\r\nX: y" }), nil, "method"},
		{"method with space", req(func(r *http.Request) { r.Method = "GET /" }), nil, "method"},
		{"empty method", req(func(r *http.Request) { r.Method = "" }), nil, "method"},
		{"target with LF", req(func(r *http.Request) { r.RequestURI = "/a\nb" }), nil, "request target"},
		{"target with NUL", req(func(r *http.Request) { r.RequestURI = "/a\x00" }), nil, "request target"},
		{"target with DEL", req(func(r *http.Request) { r.RequestURI = "/a\x7f" }), nil, "request target"},
		{"empty target", req(func(r *http.Request) { r.RequestURI = "" }), nil, "request target"},
		{"host with CR", req(func(r *http.Request) { r.Host = "a\rb" }), nil, "host"},
		{"header name with space", req(func(r *http.Request) { r.Header["X A"] = []string{"v"} }), nil, "header name"},
		{"header name with colon", req(func(r *http.Request) { r.Header["X:A"] = []string{"v"} }), nil, "header name"},
		{"empty header name", req(func(r *http.Request) { r.Header[""] = []string{"v"} }), nil, "header name"},
		{"header value with CR LF", req(func(r *http.Request) { r.Header["X-A"] = []string{"ok", "v\r\nX-B: w"} }), nil, "header value"},
		{"header value with NUL", req(func(r *http.Request) { r.Header["X-A"] = []string{"v\x00"} }), nil, "header value"},
		{"variable with LF", req(nil), pairs("DOCUMENT_ROOT", "/srv\n/etc"), "variable"},
		{"variable with NUL", req(nil), pairs("MY_PARAM", "a\x00"), "variable"},
		{"HTTP_ variable with CR", req(nil), pairs("HTTP_X_A", "v\r"), "variable"},
		{"HTTP_ name not a token", req(nil), pairs("HTTP_X A", "v"), "header name"},
		{"bare HTTP_ name", req(nil), pairs("HTTP_", "v"), ""},
		{"PEM certificate", req(nil), pairs("SSL_CLIENT_CERT", pem, "SSL_SERVER_CERT", pem, "SSL_CLIENT_CERT_CHAIN_0", pem), ""},
		{"nginx $ssl_client_cert (tab continuation)", req(nil), pairs("SSL_CLIENT_CERT", strings.ReplaceAll(pem, "\n", "\n\t")), ""},
		{"PEM with CR", req(nil), pairs("SSL_CLIENT_CERT", strings.ReplaceAll(pem, "\n", "\r\n")), "variable"},
		{"PEM with NUL", req(nil), pairs("SSL_CLIENT_CERT", pem+"\x00"), "variable"},
		{"LF only in the PEM names", req(nil), pairs("SSL_CLIENT_S_DN", "CN=a\nCN=b"), "variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.r, tt.v)
			var ie *InvalidError
			switch {
			case tt.wantPart == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.wantPart != "" && (!errors.As(err, &ie) || ie.Part != tt.wantPart):
				t.Errorf("Validate = %v, want an invalid %s", err, tt.wantPart)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "vars: invalid ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestRequestValidates: Request applies Validate's rules to the request
// it builds, and every error it returns is an *InvalidError (a 400).
func TestRequestValidates(t *testing.T) {
	base := []string{"REQUEST_METHOD", "GET", "REQUEST_URI", "/", "SERVER_NAME", "h"}
	tests := []struct {
		name     string
		v        Vars
		wantPart string
	}{
		{"valid", pairs(base...), ""},
		{"method with CR LF", pairs("REQUEST_METHOD", "GET\r\nX: y", "REQUEST_URI", "/"), "method"},
		{"no method", pairs("REQUEST_URI", "/"), "method"},
		{"header value with CR LF", pairs(append(base, "HTTP_X_A", "v\r\nX-B: w")...), "variable"},
		{"repeated header, one bad", pairs(append(base, "HTTP_X_A", "ok", "HTTP_X_A", "b\nad")...), "variable"},
		{"header name not a token", pairs(append(base, "HTTP_X(A)", "v")...), "header name"},
		{"content type with LF", pairs(append(base, "CONTENT_TYPE", "text/plain\nX: y")...), "variable"},
		{"host with CR", pairs("REQUEST_METHOD", "GET", "REQUEST_URI", "/", "HTTP_HOST", "a\rb"), "host"},
		{"server name with LF", pairs("REQUEST_METHOD", "GET", "REQUEST_URI", "/", "SERVER_NAME", "a\nb"), "host"},
		{"target with CR", pairs("REQUEST_METHOD", "GET", "REQUEST_URI", "/a\rb"), "request target"},
		{"relative target", pairs("REQUEST_METHOD", "GET", "REQUEST_URI", "x"), "request target"},
		{"bad length", pairs(append(base, "CONTENT_LENGTH", "-1")...), "variable"},
		{"repeated variable", pairs(append(base, "SERVER_NAME", "i")...), "variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Request(context.Background(), tt.v, http.NoBody)
			var ie *InvalidError
			switch {
			case tt.wantPart == "" && err != nil:
				t.Errorf("Request: %v", err)
			case tt.wantPart != "" && (!errors.As(err, &ie) || ie.Part != tt.wantPart):
				t.Errorf("Request: %v, want an invalid %s", err, tt.wantPart)
			}
		})
	}
}

func TestCheckVar(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{
		{"A", "", true},
		{"A", "\t\x01\x7fü", true}, // only CR, LF and NUL are refused
		{"A", "\r", false},
		{"A", "\n", false},
		{"A", "\x00", false},
		{"SSL_CLIENT_CERT", "a\nb", true},
		{"SSL_CLIENT_CERT", "a\rb", false},
		{"SSL_CLIENT_CERT_CHAIN_12", "a\nb", true},
		{"SSL_CLIENT_CERTX", "a\nb", false},
		{"HTTP_X_Y", "v", true},
		{"HTTP_X.Y", "v", true},
		{"HTTP_X/Y", "v", false},
	} {
		if err := CheckVar(tt.name, tt.value); (err == nil) != tt.ok {
			t.Errorf("CheckVar(%q, %q) = %v, want ok %v", tt.name, tt.value, err, tt.ok)
		}
	}
}

// TestValidateAllocs: the check that runs on every request allocates
// nothing.
func TestValidateAllocs(t *testing.T) {
	v := pairs("CONTENT_LENGTH", "0", "REQUEST_METHOD", "GET", "REQUEST_URI", "/a?b", "SERVER_PROTOCOL", "HTTP/1.1",
		"HTTP_HOST", "h", "HTTP_ACCEPT", "*/*", "HTTP_USER_AGENT", "t/1", "HTTP_COOKIE", "a=1", "REMOTE_ADDR", "192.0.2.1")
	r, err := Request(context.Background(), v, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Validate(r, v) }); n != 0 {
		t.Errorf("Validate allocates %v times", n)
	}
}

// BenchmarkValidate checks what nginx sends for a browser's GET
// (fastcgi_params and the usual headers).
func BenchmarkValidate(b *testing.B) {
	v := pairs("QUERY_STRING", "page=2&sort=name", "REQUEST_METHOD", "GET", "CONTENT_TYPE", "", "CONTENT_LENGTH", "",
		"SCRIPT_NAME", "/app/index.php", "REQUEST_URI", "/app/index.php?page=2&sort=name", "DOCUMENT_URI", "/app/index.php",
		"DOCUMENT_ROOT", "/var/www/html", "SERVER_PROTOCOL", "HTTP/1.1", "REQUEST_SCHEME", "https", "HTTPS", "on",
		"GATEWAY_INTERFACE", "CGI/1.1", "SERVER_SOFTWARE", "nginx/1.26.3", "REMOTE_ADDR", "198.51.100.23", "REMOTE_PORT", "51234",
		"SERVER_ADDR", "192.0.2.10", "SERVER_PORT", "443", "SERVER_NAME", "www.example.test", "REDIRECT_STATUS", "200",
		"SCRIPT_FILENAME", "/var/www/html/app/index.php",
		"HTTP_HOST", "www.example.test", "HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		"HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5", "HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd",
		"HTTP_COOKIE", "PHPSESSID=0123456789abcdef0123456789abcdef; theme=dark; consent=yes",
		"HTTP_REFERER", "https://www.example.test/app/", "HTTP_UPGRADE_INSECURE_REQUESTS", "1",
		"HTTP_SEC_FETCH_DEST", "document", "HTTP_SEC_FETCH_MODE", "navigate", "HTTP_SEC_FETCH_SITE", "same-origin",
		"HTTP_SEC_FETCH_USER", "?1", "HTTP_PRIORITY", "u=0, i")
	r, err := Request(context.Background(), v, http.NoBody)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("vars", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := validate(r, v, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vars+headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(r, v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
