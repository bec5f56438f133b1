package cgienv

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/junction-gw/junction/vars"
)

func envMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("bad entry %q", kv)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("duplicate %s", k)
		}
		m[k] = v
	}
	return m
}

func TestEnv(t *testing.T) {
	fakeEnv := map[string]string{"LANG": "C.UTF-8", "SECRET": "junction's own", "PATH": "/opt/bin"}
	lookup := func(k string) (string, bool) { v, ok := fakeEnv[k]; return v, ok }
	script := Script{Filename: "/srv/cgi/app.cgi", Name: "/cgi-bin/app.cgi", PathInfo: "/x/y", DocumentRoot: "/srv/cgi"}

	tests := []struct {
		name   string
		opts   Options
		req    func() *http.Request
		script Script
		want   map[string]string // "" value with key present = must be absent
	}{
		{
			name: "plain http get",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "http://example.org:8080/cgi-bin/app.cgi/x/y?a=1&b", nil)
				r.RemoteAddr = "192.0.2.1:4321"
				r.Header.Set("User-Agent", "t/1")
				r.Header.Add("Accept", "a")
				r.Header.Add("Accept", "b")
				r.Header.Add("Cookie", "c=1")
				r.Header.Add("Cookie", "d=2")
				return r
			},
			script: script,
			want: map[string]string{
				"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "QUERY_STRING": "a=1&b",
				"SCRIPT_NAME": "/cgi-bin/app.cgi", "SCRIPT_FILENAME": "/srv/cgi/app.cgi",
				"PATH_INFO": "/x/y", "PATH_TRANSLATED": "/srv/cgi/x/y", "DOCUMENT_ROOT": "/srv/cgi",
				"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "4321", "REMOTE_HOST": "192.0.2.1",
				"SERVER_NAME": "example.org", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
				"SERVER_SOFTWARE": "junction/test", "REQUEST_URI": "/cgi-bin/app.cgi/x/y?a=1&b",
				"REDIRECT_STATUS": "200", "REQUEST_SCHEME": "http", "HTTP_HOST": "example.org:8080",
				"HTTP_USER_AGENT": "t/1", "HTTP_ACCEPT": "a, b", "HTTP_COOKIE": "c=1; d=2",
				"PATH": DefaultPath, "SECRET": "-", "LANG": "-", "HTTPS": "-", "CONTENT_LENGTH": "-",
			},
		},
		{
			name: "httpoxy and collisions",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.Header["Proxy"] = []string{"http://evil:3128"}
				r.Header["X-Foo"] = []string{"dash"}
				r.Header["X_foo"] = []string{"underscore"}
				r.Header["Content_type"] = []string{"x"}
				r.Header["X.dot"] = []string{"x"}
				return r
			},
			want: map[string]string{"HTTP_PROXY": "-", "HTTP_X_FOO": "dash", "HTTP_CONTENT_TYPE": "-", "CONTENT_TYPE": "-"},
		},
		{
			name: "post with body",
			req: func() *http.Request {
				r := httptest.NewRequest("POST", "/", strings.NewReader("hello"))
				r.Header.Set("Content-Type", "text/plain")
				return r
			},
			want: map[string]string{"CONTENT_LENGTH": "5", "CONTENT_TYPE": "text/plain",
				"HTTP_CONTENT_TYPE": "-", "HTTP_CONTENT_LENGTH": "-", "PATH_INFO": "", "PATH_TRANSLATED": "-"},
		},
		{
			name: "tls",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "https://example.org/", nil)
				r.TLS = &tls.ConnectionState{}
				return r
			},
			want: map[string]string{"HTTPS": "on", "SERVER_PORT": "443", "REQUEST_SCHEME": "https"},
		},
		{
			name: "pass and set env",
			opts: Options{PassEnv: []string{"LANG", "MISSING"}, SetEnv: map[string]string{"PATH": "/x", "APP_MODE": "prod"}},
			req:  func() *http.Request { return httptest.NewRequest("GET", "/", nil) },
			want: map[string]string{"LANG": "C.UTF-8", "PATH": "/x", "APP_MODE": "prod", "MISSING": "-", "SECRET": "-"},
		},
		{
			name: "pass PATH",
			opts: Options{PassEnv: []string{"PATH"}},
			req:  func() *http.Request { return httptest.NewRequest("GET", "/", nil) },
			want: map[string]string{"PATH": "/opt/bin"},
		},
		{
			name: "front server values",
			req: func() *http.Request {
				r := httptest.NewRequest("POST", "/real?q=1", strings.NewReader("abc"))
				v := vars.Vars{
					{Name: "SERVER_ADDR", Value: "10.0.0.1"}, {Name: "SERVER_PORT", Value: "8443"},
					{Name: "SERVER_NAME", Value: "front.example"}, {Name: "REMOTE_ADDR", Value: "198.51.100.7"},
					{Name: "REMOTE_PORT", Value: "555"}, {Name: "HTTPS", Value: "on"},
					{Name: "DOCUMENT_ROOT", Value: "/var/www"}, {Name: "SSL_CLIENT_S_DN", Value: "CN=x"},
					{Name: "REMOTE_USER", Value: "alice"}, {Name: "AUTH_TYPE", Value: "Basic"},
					{Name: "MY_PARAM", Value: "custom"}, {Name: "SERVER_SOFTWARE", Value: "nginx/1.2"},
					// Junction's decisions.
					{Name: "SCRIPT_FILENAME", Value: "/etc/passwd"}, {Name: "SCRIPT_NAME", Value: "/evil"},
					{Name: "PATH_INFO", Value: "/evil"}, {Name: "PATH_TRANSLATED", Value: "/evil"},
					{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "QUERY_STRING", Value: "evil"},
					{Name: "CONTENT_LENGTH", Value: "99"}, {Name: "GATEWAY_INTERFACE", Value: "CGI/9"},
					// Dangerous.
					{Name: "LD_PRELOAD", Value: "/tmp/x.so"}, {Name: "BASH_FUNC_x%%", Value: "() { :; }"},
					{Name: "PATH", Value: "/tmp"}, {Name: "PYTHONPATH", Value: "/tmp"}, {Name: "PERL5OPT", Value: "-d"},
					{Name: "http_proxy", Value: "http://evil"}, {Name: "HTTPS_PROXY", Value: "http://evil"},
					{Name: "GLIBC_TUNABLES", Value: "x"}, {Name: "PHPRC", Value: "/tmp"}, {Name: "IFS", Value: "x"},
					// HTTP_* only from r.Header.
					{Name: "HTTP_PROXY", Value: "http://evil"}, {Name: "HTTP_X_INJECTED", Value: "x"},
					// Invalid names and values.
					{Name: "BAD-NAME", Value: "x"}, {Name: "1ABC", Value: "x"}, {Name: "NUL_VALUE", Value: "a\x00b"},
				}
				return r.WithContext(vars.NewContext(r.Context(), v))
			},
			script: Script{Filename: "/srv/a.cgi", Name: "/a.cgi", PathInfo: "/p"},
			want: map[string]string{
				"SERVER_ADDR": "10.0.0.1", "SERVER_PORT": "8443", "SERVER_NAME": "front.example",
				"REMOTE_ADDR": "198.51.100.7", "REMOTE_PORT": "555", "REMOTE_HOST": "198.51.100.7",
				"HTTPS": "on", "DOCUMENT_ROOT": "/var/www", "PATH_TRANSLATED": "/var/www/p",
				"SSL_CLIENT_S_DN": "CN=x", "REMOTE_USER": "alice", "AUTH_TYPE": "Basic", "MY_PARAM": "custom",
				"SERVER_SOFTWARE": "junction/test", "SCRIPT_FILENAME": "/srv/a.cgi", "SCRIPT_NAME": "/a.cgi",
				"PATH_INFO": "/p", "REQUEST_METHOD": "POST", "QUERY_STRING": "q=1", "CONTENT_LENGTH": "3",
				"GATEWAY_INTERFACE": "CGI/1.1", "PATH": DefaultPath,
				"LD_PRELOAD": "-", "BASH_FUNC_x%%": "-", "PYTHONPATH": "-", "PERL5OPT": "-", "http_proxy": "-",
				"HTTPS_PROXY": "-", "GLIBC_TUNABLES": "-", "PHPRC": "-", "IFS": "-", "HTTP_PROXY": "-",
				"HTTP_X_INJECTED": "-", "BAD-NAME": "-", "1ABC": "-", "NUL_VALUE": "-",
			},
		},
		{
			name: "own document root",
			opts: Options{OwnDocumentRoot: true},
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/a.php/p", nil)
				v := vars.Vars{{Name: "DOCUMENT_ROOT", Value: "/var/www"}, {Name: "MY_PARAM", Value: "custom"}}
				return r.WithContext(vars.NewContext(r.Context(), v))
			},
			script: Script{Filename: "/app/a.php", Name: "/a.php", PathInfo: "/p", DocumentRoot: "/app"},
			want:   map[string]string{"DOCUMENT_ROOT": "/app", "PATH_TRANSLATED": "/app/p", "MY_PARAM": "custom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.LookupEnv = lookup
			tt.opts.ServerSoftware = "junction/test"
			b, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			env := b.Env(tt.req(), tt.script)
			if !slices.IsSorted(env) {
				t.Errorf("not sorted: %q", env)
			}
			m := envMap(t, env)
			for k, want := range tt.want {
				got, ok := m[k]
				switch {
				case want == "-" && ok:
					t.Errorf("%s = %q, want absent", k, got)
				case want != "-" && (!ok || got != want):
					t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{
		{PassEnv: []string{"BAD=NAME"}},
		{SetEnv: map[string]string{"": "x"}},
		{SetEnv: map[string]string{"A": "x\x00y"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestDenied(t *testing.T) {
	for name, want := range map[string]bool{
		"LD_PRELOAD": true, "ld_library_path": true, "BASH_FUNC_foo%%": true, "PATH": true,
		"PYTHONSTARTUP": true, "PERL5LIB": true, "RUBYOPT": true, "MALLOC_CHECK_": true,
		"NODE_OPTIONS": true, "TMPDIR": true, "HOME": true, "ftp_proxy": true,
		"SSL_CLIENT_CERT": false, "HTTPS": false, "SERVER_ADDR": false, "MY_PARAM": false,
		// Loader, runtime and TLS hooks beyond the obvious ones.
		"SSLKEYLOGFILE": true, "OPENSSL_MODULES": true, "OPENSSL_CONF": true, "openssl_engines": true,
		"CORECLR_PROFILER_PATH": true, "DOTNET_STARTUP_HOOKS": true, "COMPlus_EnableDiagnostics": true,
		"COMPLUS_ZapDisable": true, "ASPNETCORE_HOSTINGSTARTUPASSEMBLIES": true, "MONO_ENV_OPTIONS": true,
		"BASH_LOADABLES_PATH": true, "BASH_ENV": true, "BASH_XTRACEFD": true, "ZDOTDIR": true, "FPATH": true,
		"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true, "JDK_JAVA_OPTIONS": true, "JAVA_HOME": true,
		"LUA_INIT": true, "LUA_CPATH": true, "TCLLIBPATH": true, "TCL_LIBRARY": true, "R_PROFILE_USER": true,
		"PHPRC": true, "PHP_INI_SCAN_DIR": true, "GEM_HOME": true, "BUNDLE_GEMFILE": true, "ERL_AFLAGS": true,
		"HOSTALIASES": true, "RESOLV_HOST_CONF": true, "RESOLV_MULTI": true, "LOCALDOMAIN": true,
		"NLSPATH": true, "GCONV_PATH": true, "LOCPATH": true, "MALLOC_ARENA_MAX": true, "GLIBC_TUNABLES": true,
		"GODEBUG": true, "GOMEMLIMIT": true, "LIBMYSQL_PLUGIN_DIR": true, "SASL_PATH": true,
		"XDG_CONFIG_HOME": true, "CURL_HOME": true, "LDAPTLS_CACERT": true, "NODE_EXTRA_CA_CERTS": true,
		"GST_PLUGIN_SYSTEM_PATH": true, "LESSOPEN": true, "TERMINFO": true,
		// Near misses stay.
		"SSL_SESSION_ID": false, "REMOTE_USER": false, "REDIRECT_URL": false, "RESOLVED": false,
		"DOTNET": false, "JAVASCRIPT_ON": false, "GOOGLE_ID": false, "PHP_VALUE": false,
	} {
		if got := Denied(name); got != want {
			t.Errorf("Denied(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	b, _ := New(Options{})
	r := httptest.NewRequest("GET", "/", nil)
	for i := 0; i < 20; i++ {
		r.Header.Set("X-H"+strings.Repeat("a", i), "v")
	}
	first := b.Env(r, Script{})
	for i := 0; i < 10; i++ {
		if got := b.Env(r, Script{}); !slices.Equal(got, first) {
			t.Fatalf("run %d differs", i)
		}
	}
}

func BenchmarkEnv(b *testing.B) {
	bl, _ := New(Options{})
	r := httptest.NewRequest("GET", "http://example.org/cgi-bin/app.cgi/x?y=1", nil)
	r.Header.Set("User-Agent", "bench/1")
	r.Header.Set("Accept", "*/*")
	r.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		bl.Env(r, Script{Filename: "/srv/app.cgi", Name: "/cgi-bin/app.cgi", PathInfo: "/x", DocumentRoot: "/srv"})
	}
}
